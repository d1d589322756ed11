//! Locks that shut the gate: the kill switch (locks on users, targets,
//! sources, sessions or everything), the automatic rules that raise them, and
//! blocked source networks kept by the admin, all cached here for decisions
//! that must not wait on anything.

mod lines;
mod locks;
pub mod rules;
mod terminate;
mod webhook;

/// Parsed with the rest of `[lockdown]`; re-exported for the admin commands.
pub use crate::config::parse_cidr;
pub use crate::lock_state::{Locks, Rules, SourceBlocks};
pub use lines::LineAssembler;
pub use locks::{
    Lifter, LockError, LockOutcome, LockSpec, check, create, kill_reason, lift, list, refresh,
    store_pending,
};
pub use rules::{RuleError, Seen};
pub use terminate::{Terminated, terminate};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_match_networks_until_they_expire() {
        let b = SourceBlocks::default();
        b.replace(vec![
            (parse_cidr("10.1.2.3/24").unwrap(), None),
            (parse_cidr("2001:db8::1").unwrap(), Some(100)),
        ]);
        assert!(b.is_blocked("10.1.2.200".parse().unwrap(), 0));
        assert!(!b.is_blocked("10.1.3.1".parse().unwrap(), 0));
        assert!(b.is_blocked("2001:db8::1".parse().unwrap(), 99));
        assert!(!b.is_blocked("2001:db8::1".parse().unwrap(), 100));
        assert_eq!(
            parse_cidr("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert!(parse_cidr("nope").is_err());
        // The IPv4-mapped form names the IPv4 network it stands for.
        let mapped = parse_cidr("::ffff:10.1.2.0/120").unwrap();
        assert_eq!(mapped.to_string(), "10.1.2.0/24");
        assert_eq!(
            parse_cidr("::ffff:10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            parse_cidr("::ffff:0:0/95").unwrap().to_string(),
            "::fffe:0:0/95"
        );
    }
}
