//! `[cluster]`: this node's name and how long a silent node counts as alive.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node_name: Option<String>,
    node_expiry: Option<String>,
    on_db_outage: Option<String>,
}

/// What a node does with its live sessions while the database does not
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDbOutage {
    /// They go on, recorded to their files; their rows are written when
    /// the database answers again (until the node must fence itself).
    Keep,
    /// They end at once, telling the user why.
    End,
}

/// Several `serve` nodes on one PostgreSQL (issue 19).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's name in the `nodes` table; `None`: a stable random id
    /// kept in the data directory (`node-id`).
    pub node_name: Option<String>,
    /// A node whose heartbeat is older than this is gone: whichever node
    /// notices first closes its sessions and seals its recordings.
    pub node_expiry: Duration,
    /// `on_db_outage` ("keep" or "end", default "keep").
    pub on_db_outage: OnDbOutage,
}

impl RawCluster {
    pub(super) fn check(self, problems: &mut Vec<String>) -> ClusterConfig {
        if let Some(n) = &self.node_name
            && (n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            problems.push(format!(
                "cluster.node_name = {n:?}: expected 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let expiry = match self.node_expiry.as_deref() {
            None => 30,
            Some(text) => match super::parse_duration(text) {
                Ok(s) if (3..=3600).contains(&s) => s,
                Ok(s) => {
                    problems.push(format!(
                        "cluster.node_expiry = {s}s: expected between 3s and 1h"
                    ));
                    30
                }
                Err(e) => {
                    problems.push(format!("cluster.node_expiry: {e}"));
                    30
                }
            },
        };
        let on_db_outage = match self.on_db_outage.as_deref() {
            None | Some("keep") => OnDbOutage::Keep,
            Some("end") => OnDbOutage::End,
            Some(other) => {
                problems.push(format!(
                    "cluster.on_db_outage = {other:?}: expected \"keep\" or \"end\""
                ));
                OnDbOutage::Keep
            }
        };
        ClusterConfig {
            node_name: self.node_name,
            node_expiry: Duration::from_secs(expiry),
            on_db_outage,
        }
    }
}
