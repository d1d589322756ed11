//! In-memory state of sign-ins under way, `now` passed in: the started
//! OIDC flows by their `state` (taken once), and the SSH sign-in links by
//! their token (opened once, completed once, both within the TTL).
//!
//! A link is issued to one SSH connection past its public key, for one
//! bastion user; it carries the connection's source and a short code the
//! page shows, so the person at the browser can see it is their terminal's.

use super::{Identity, SsoError};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// At most this many flows (console sign-ins anyone may start) are kept;
/// past it the oldest are dropped.
pub const MAX_FLOWS: usize = 10_000;

/// What a finished sign-in is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Console,
    Ssh { link: String },
}

/// A started OIDC sign-in, waiting for its callback.
pub struct Flow {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub purpose: Purpose,
    /// SHA-256 of the browser-binding cookie set when the flow started.
    pub binding: String,
    pub created: Instant,
}

/// Where a link's sign-in stands, as its SSH connection sees it.
#[derive(Debug, Clone)]
pub enum LinkState {
    Waiting,
    Done(Box<Identity>),
    Failed(String),
}

/// What the link page shows.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub user: String,
    pub source: String,
    pub code: String,
    pub provider: String,
}

struct Link {
    view: LinkView,
    created: Instant,
    opened: bool,
    tx: watch::Sender<LinkState>,
}

#[derive(Default)]
pub struct Table {
    flows: HashMap<String, Flow>,
    links: HashMap<String, Link>,
}

impl Table {
    fn prune(&mut self, ttl: Duration, now: Instant) {
        self.flows
            .retain(|_, f| now.saturating_duration_since(f.created) < ttl);
        self.links.retain(|_, l| {
            let live = now.saturating_duration_since(l.created) < ttl;
            if !live {
                l.tx.send_replace(LinkState::Failed("the sign-in link expired".into()));
            }
            live
        });
        // Anyone may start a console sign-in, so only those count against
        // the cap and only those are dropped: a flood of them must not evict
        // the sign-in of an SSH link, which only a connection past its
        // public key can start (and the pre-auth caps bound).
        let console = |f: &Flow| f.purpose == Purpose::Console;
        while self.flows.values().filter(|f| console(f)).count() >= MAX_FLOWS {
            let Some(oldest) = self
                .flows
                .iter()
                .filter(|(_, f)| console(f))
                .min_by_key(|(_, f)| f.created)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.flows.remove(&oldest);
        }
    }

    pub fn put_flow(&mut self, state: String, flow: Flow, ttl: Duration, now: Instant) {
        self.prune(ttl, now);
        self.flows.insert(state, flow);
    }

    /// The flow of this `state`, once, within the TTL.
    pub fn take_flow(&mut self, state: &str, ttl: Duration, now: Instant) -> Option<Flow> {
        self.prune(ttl, now);
        self.flows.remove(state)
    }

    pub fn issue(
        &mut self,
        token: String,
        view: LinkView,
        ttl: Duration,
        now: Instant,
    ) -> watch::Receiver<LinkState> {
        self.prune(ttl, now);
        let (tx, rx) = watch::channel(LinkState::Waiting);
        self.links.insert(
            token,
            Link {
                view,
                created: now,
                opened: false,
                tx,
            },
        );
        rx
    }

    /// The page's view of a link not yet opened and not expired.
    pub fn view(&mut self, token: &str, ttl: Duration, now: Instant) -> Result<LinkView, SsoError> {
        self.prune(ttl, now);
        match self.links.get(token) {
            None => Err(SsoError::Link("this sign-in link is unknown or expired")),
            Some(l) if l.opened => Err(SsoError::Link("this sign-in link was already used")),
            // Its SSH connection is gone: nothing would use the sign-in.
            Some(l) if l.tx.is_closed() => {
                Err(SsoError::Link("the SSH connection of this link has ended"))
            }
            Some(l) => Ok(l.view.clone()),
        }
    }

    /// Marks the link opened (single use) and returns its view.
    pub fn open(&mut self, token: &str, ttl: Duration, now: Instant) -> Result<LinkView, SsoError> {
        let v = self.view(token, ttl, now)?;
        if let Some(l) = self.links.get_mut(token) {
            l.opened = true;
        }
        Ok(v)
    }

    /// The user an opened link is for (the callback's check).
    pub fn user_of(
        &mut self,
        token: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<String, SsoError> {
        self.prune(ttl, now);
        match self.links.get(token) {
            Some(l) if l.opened => Ok(l.view.user.clone()),
            _ => Err(SsoError::Link("this sign-in link is unknown or expired")),
        }
    }

    /// Ends a link with its outcome; the link is gone afterwards.
    pub fn complete(&mut self, token: &str, state: LinkState) {
        if let Some(l) = self.links.remove(token) {
            l.tx.send_replace(state);
        }
    }

    /// The SSH connection gave up on its link.
    pub fn forget(&mut self, token: &str) {
        self.links.remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> LinkView {
        LinkView {
            user: "bob".into(),
            source: "127.0.0.1:5000".into(),
            code: "ABC-123".into(),
            provider: "corp".into(),
        }
    }

    #[test]
    fn a_link_opens_once_and_expires() {
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut t = Table::default();
        let rx = t.issue("tok".into(), view(), ttl, t0);
        assert!(t.view("tok", ttl, t0).is_ok());
        assert!(t.open("tok", ttl, t0).is_ok());
        assert!(t.open("tok", ttl, t0).is_err(), "replayed link");
        assert_eq!(t.user_of("tok", ttl, t0).unwrap(), "bob");
        let _ = t.issue("tok2".into(), view(), ttl, t0);
        let later = t0 + ttl + Duration::from_secs(1);
        assert!(t.open("tok2", ttl, later).is_err(), "expired link");
        assert!(matches!(&*rx.borrow(), LinkState::Failed(_)));
        assert!(t.user_of("nope", ttl, t0).is_err());
        let rx3 = t.issue("tok3".into(), view(), ttl, t0);
        drop(rx3);
        assert!(t.open("tok3", ttl, t0).is_err(), "connection gone");
    }

    #[test]
    fn a_flow_is_taken_once_within_the_ttl() {
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut t = Table::default();
        let flow = |p: &str| Flow {
            provider: p.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            purpose: Purpose::Console,
            binding: "b".into(),
            created: t0,
        };
        t.put_flow("s".into(), flow("a"), ttl, t0);
        assert!(t.take_flow("s", ttl, t0).is_some());
        assert!(t.take_flow("s", ttl, t0).is_none(), "state replayed");
        t.put_flow("s2".into(), flow("a"), ttl, t0);
        assert!(t.take_flow("s2", ttl, t0 + ttl).is_none(), "state expired");
    }

    #[test]
    fn a_flood_of_console_sign_ins_does_not_evict_an_ssh_links_sign_in() {
        let ttl = Duration::from_secs(600);
        let t0 = Instant::now();
        let mut t = Table::default();
        let flow = |purpose: Purpose, at: Instant| Flow {
            provider: "corp".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            purpose,
            binding: "b".into(),
            created: at,
        };
        let ssh = Purpose::Ssh { link: "tok".into() };
        t.put_flow("ssh".into(), flow(ssh, t0), ttl, t0);
        for i in 0..MAX_FLOWS + 5 {
            let at = t0 + Duration::from_millis(1 + i as u64);
            t.put_flow(format!("c{i}"), flow(Purpose::Console, at), ttl, at);
        }
        let now = t0 + Duration::from_secs(20);
        assert!(
            t.take_flow("ssh", ttl, now).is_some(),
            "the SSH sign-in was evicted"
        );
        assert!(
            t.take_flow("c0", ttl, now).is_none(),
            "the console cap is gone"
        );
        assert!(
            t.take_flow(&format!("c{}", MAX_FLOWS + 4), ttl, now)
                .is_some()
        );
    }
}
