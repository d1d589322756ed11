//! From a client's `host:port` to a target the user may reach now.
//!
//! Only targets the user holds a grant on are candidates, so a refusal says
//! nothing about targets the user cannot see. A TCP target is then decided
//! by `policy::decide` (validity, windows, maximum session length counted
//! from the login) and needs the grant's `local-forward` permission.

use super::ForwardError;
use super::matching::{self, Candidate};
use crate::grants::access;
use crate::policy::{self, Allow, ChannelKind};
use crate::store::{KindedTarget, Store, TargetKind, TargetRecord};
use jiff::Timestamp;
use std::net::IpAddr;
use std::time::Duration;

/// What a forwarding request names.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// An SSH target: ProxyJump (`ssh -J`), terminated at the bastion.
    Ssh(TargetRecord),
    /// A TCP target the user may reach now.
    Tcp { target: KindedTarget, allow: Allow },
    /// Nothing the user may reach; the text is safe to show.
    Refused(String),
}

/// Longest wait for the addresses of a configured host name.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn resolve(
    store: &Store,
    user: &str,
    started: Timestamp,
    host: &str,
    port: u32,
) -> Result<Resolved, ForwardError> {
    let groups = store.groups_of(user).await?;
    let grants = access::grants_for(store, user, &groups).await?;
    let granted: Vec<KindedTarget> = store
        .kinded_targets()
        .await?
        .into_iter()
        .filter(|t| grants.iter().any(|g| g.target == t.target.name))
        .collect();
    let mut candidates = Vec::with_capacity(granted.len());
    for t in &granted {
        candidates.push(candidate(t, host, port).await);
    }
    let asked = super::show(host, port);
    let Some(best) = matching::best(host, port, &candidates) else {
        return Ok(Resolved::Refused(format!(
            "portcullis: {asked} is not a target you are granted"
        )));
    };
    let Some(target) = granted.into_iter().find(|t| t.target.name == best.name) else {
        return Ok(Resolved::Refused(format!(
            "portcullis: {asked} is not a target you are granted"
        )));
    };
    if target.kind == TargetKind::Ssh {
        return Ok(Resolved::Ssh(target.target));
    }
    Ok(
        match policy::decide(&grants, &target.target.name, None, access::now(), started) {
            Err(deny) => Resolved::Refused(format!("portcullis: {deny}")),
            Ok(allow) if !allow.permissions.allows_channel(&ChannelKind::DirectTcpip) => {
                Resolved::Refused(format!(
                    "portcullis: your grant for {} does not allow port forwarding",
                    target.target.name
                ))
            }
            Ok(allow) => Resolved::Tcp { target, allow },
        },
    )
}

/// The candidate for `t`; its addresses are looked up only when the client
/// gave an IP literal for this port (the configured name, never the client's).
async fn candidate(t: &KindedTarget, host: &str, port: u32) -> Candidate {
    let r = &t.target;
    let addrs = if port == u32::from(r.port) && matching::needs_addresses(host) {
        addresses(&r.host, r.port).await
    } else {
        Vec::new()
    };
    Candidate {
        name: r.name.clone(),
        host: r.host.clone(),
        port: r.port,
        addrs,
    }
}

async fn addresses(host: &str, port: u16) -> Vec<IpAddr> {
    if let Some(ip) = matching::ip_literal(host) {
        return vec![ip];
    }
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
        _ => {
            tracing::warn!(host = %host, "configured target host does not resolve");
            Vec::new()
        }
    }
}
