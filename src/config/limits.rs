//! `[limits]`: login grace, pre-auth caps, the second-factor budget,
//! per-connection caps, channel buffers and the shutdown grace.

use super::{bounded, secs};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    login_grace_secs: Option<u64>,
    max_auth_attempts: Option<u32>,
    max_unauthenticated: Option<u32>,
    max_unauthenticated_per_source: Option<u32>,
    max_unauthenticated_per_network: Option<u32>,
    second_factor_failures: Option<u32>,
    second_factor_window_secs: Option<u64>,
    channel_buffer_bytes: Option<usize>,
    max_channels_per_connection: Option<u32>,
    max_remote_forwards_per_connection: Option<u32>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub login_grace: Duration,
    pub max_auth_attempts: u32,
    pub max_unauthenticated: u32,
    pub max_unauthenticated_per_source: u32,
    /// Per IPv4 /24 or IPv6 /64: one network cannot take every place.
    pub max_unauthenticated_per_network: u32,
    /// Codes checked per user per window, whatever the source (then
    /// growing delays; see `auth::budget`).
    pub second_factor_failures: u32,
    pub second_factor_window: Duration,
    /// Bytes one channel may hold in flight inside the bastion before its
    /// reader stops pulling (see `bridge`).
    pub channel_buffer_bytes: usize,
    /// Channels of every kind one client connection may hold open (its
    /// nested `ssh -J` connections included).
    pub max_channels_per_connection: u32,
    /// `ssh -R` listeners one client connection may hold.
    pub max_remote_forwards_per_connection: u32,
    /// How long live sessions may go on after SIGTERM before they are
    /// ended (the door is closed at once).
    pub shutdown_grace: Duration,
}

impl RawLimits {
    pub(super) fn check(self, problems: &mut Vec<String>) -> Limits {
        let l = self;
        Limits {
            login_grace: secs(
                problems,
                "limits.login_grace_secs",
                l.login_grace_secs,
                30,
                1..=600,
            ),
            max_auth_attempts: bounded(
                problems,
                "limits.max_auth_attempts",
                l.max_auth_attempts,
                6,
                1..=20,
            ),
            max_unauthenticated: bounded(
                problems,
                "limits.max_unauthenticated",
                l.max_unauthenticated,
                256,
                1..=100_000,
            ),
            max_unauthenticated_per_source: bounded(
                problems,
                "limits.max_unauthenticated_per_source",
                l.max_unauthenticated_per_source,
                32,
                1..=100_000,
            ),
            max_unauthenticated_per_network: bounded(
                problems,
                "limits.max_unauthenticated_per_network",
                l.max_unauthenticated_per_network,
                64,
                1..=100_000,
            ),
            second_factor_failures: bounded(
                problems,
                "limits.second_factor_failures",
                l.second_factor_failures,
                10,
                1..=100,
            ),
            second_factor_window: secs(
                problems,
                "limits.second_factor_window_secs",
                l.second_factor_window_secs,
                900,
                10..=86_400,
            ),
            channel_buffer_bytes: {
                let v = l.channel_buffer_bytes.unwrap_or(8 << 20);
                if !(64 << 10..=1 << 30).contains(&v) {
                    problems.push(format!(
                        "limits.channel_buffer_bytes = {v}: expected between 65536 and 1073741824"
                    ));
                }
                v
            },
            max_channels_per_connection: bounded(
                problems,
                "limits.max_channels_per_connection",
                l.max_channels_per_connection,
                64,
                2..=10_000,
            ),
            max_remote_forwards_per_connection: bounded(
                problems,
                "limits.max_remote_forwards_per_connection",
                l.max_remote_forwards_per_connection,
                16,
                1..=1000,
            ),
            shutdown_grace: secs(
                problems,
                "limits.shutdown_grace_secs",
                l.shutdown_grace_secs,
                30,
                0..=3600,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    #[test]
    fn the_shutdown_grace_defaults_to_30_s_and_is_bounded() {
        let c = Config::embedded(None);
        assert_eq!(c.limits.shutdown_grace, Duration::from_secs(30));
        let e = Config::parse("[limits]\nshutdown_grace_secs = 7200\n", None).unwrap_err();
        assert!(
            e.iter().any(|p| p.contains("limits.shutdown_grace_secs")),
            "{e:?}"
        );
        let c = Config::parse("[limits]\nshutdown_grace_secs = 0\n", None).unwrap();
        assert_eq!(c.limits.shutdown_grace, Duration::ZERO);
    }
}
