//! The policy half of `ssh -J alice@bastion root@web01`: what a
//! direct-tcpip destination names, and whether the user may jump to it
//! now, decided before the channel is accepted; then the nested login's
//! session, audited and admitted like a direct one. No SSH library here:
//! `gateway::jump` is the russh adapter that serves the nested connection
//! once this says yes.

use super::{Destination, Session};
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::names::{LoginRequest, Name, NameError, TargetRequest, escape_for_log};
use crate::policy::Grant;
use crate::registry::KillNote;
use crate::store::{StoreError, TargetRecord};
use jiff::Timestamp;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a direct-tcpip destination names.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Not an SSH target: the ordinary forwarding rules apply.
    NotSsh,
    Target(TargetRecord),
    /// An address several SSH targets share; the message says what to do.
    Ambiguous(String),
}

/// What to do with a direct-tcpip open on an outer (not nested) connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Jump {
    /// Not an SSH target the user holds a grant on: an ordinary forward.
    NotSsh,
    /// Serve a nested connection for this target.
    Serve(TargetRecord),
    /// Refused before the channel is accepted, with the text for the client.
    Refuse(String),
}

/// A target by name (on port 22 or its own port), else by its configured
/// host and port. An exact-case name beats a case-folded one.
pub fn pick(candidates: Vec<TargetRecord>, host: &str, port: u32) -> Lookup {
    let by_name = |exact: bool| {
        candidates.iter().find(|t| {
            let same = if exact {
                t.name == host
            } else {
                t.name.eq_ignore_ascii_case(host)
            };
            same && (port == 22 || port == u32::from(t.port))
        })
    };
    if let Some(t) = by_name(true).or_else(|| by_name(false)) {
        return Lookup::Target(t.clone());
    }
    let at: Vec<&TargetRecord> = candidates
        .iter()
        .filter(|t| t.host.eq_ignore_ascii_case(host) && port == u32::from(t.port))
        .collect();
    match at.as_slice() {
        [] => Lookup::NotSsh,
        [t] => Lookup::Target((*t).clone()),
        many => Lookup::Ambiguous(format!(
            "portcullis: {}:{port} is the address of several targets ({}); jump to one by name",
            escape_for_log(host),
            many.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The SSH target `host:port` names among those `user` holds a grant on.
/// Targets without a grant are not candidates at all, so a destination
/// the user may not reach is "not a target" exactly like one that does not
/// exist: the same refusal text, no nested handshake, no certificate.
pub async fn find(
    app: &App,
    user: &str,
    host: &str,
    port: u32,
) -> Result<(Lookup, Vec<Grant>), StoreError> {
    // Names and hosts are short; anything longer names no target.
    if host.is_empty() || host.len() > 255 {
        return Ok((Lookup::NotSsh, Vec::new()));
    }
    let groups = app.store.groups_of(user).await?;
    let grants = crate::grants::access::grants_for(&app.store, user, &groups).await?;
    let granted: Vec<TargetRecord> = app
        .store
        .targets_named_or_at(host)
        .await?
        .into_iter()
        .filter(|t| {
            grants
                .iter()
                .any(|g| g.target == t.name && !g.logins.is_empty())
        })
        .collect();
    Ok((pick(granted, host, port), grants))
}

/// The decision on what [`find`] found, at `now`. A grant outside its
/// window is refused here, by a user who knows the target; the login is
/// known only inside the nested connection and is decided there.
pub fn decide(found: Result<(Lookup, Vec<Grant>), StoreError>, now: Timestamp) -> Jump {
    match found {
        Ok((Lookup::NotSsh, _)) => Jump::NotSsh,
        Ok((Lookup::Target(target), grants)) => {
            match crate::policy::decide(&grants, &target.name, None, now, now) {
                Ok(_) => Jump::Serve(target),
                Err(deny) => Jump::Refuse(format!("portcullis: {deny}")),
            }
        }
        Ok((Lookup::Ambiguous(msg), _)) => Jump::Refuse(msg),
        Err(e) => {
            // Fail closed: an SSH target must never be reached as raw bytes.
            tracing::error!(error = %e, "cannot look up a jump destination; refusing");
            Jump::Refuse(
                "portcullis: the destination cannot be checked right now; try again later".into(),
            )
        }
    }
}

/// Whether `user` may jump to `host:port` now ([`find`], then [`decide`]).
pub async fn check(app: &App, user: &str, host: &str, port: u32) -> Jump {
    decide(
        find(app, user, host, port).await,
        crate::grants::access::now(),
    )
}

/// Why a nested login names nothing usable.
#[derive(Debug)]
pub enum NestedLoginError {
    /// The inner username is not a valid login name.
    Malformed(NameError),
    /// The outer user's or the target's stored name does not parse.
    StoredName(NameError),
}

/// The login a nested connection resolves: the outer user on the jump's
/// target, with the inner username as the upstream login unless it is the
/// user's own name (then the grant's default). It never picks a user.
pub fn nested_login(
    outer_user: &str,
    target: &str,
    username: &str,
) -> Result<LoginRequest, NestedLoginError> {
    let login = if username == outer_user {
        None
    } else {
        Some(Name::parse(username).map_err(NestedLoginError::Malformed)?)
    };
    let user = Name::parse(outer_user).map_err(NestedLoginError::StoredName)?;
    let target = Name::parse(target).map_err(NestedLoginError::StoredName)?;
    Ok(LoginRequest {
        user,
        target: Some(TargetRequest { target, login }),
    })
}

/// The outer connection a nested one runs in.
pub struct Via<'a> {
    pub user: &'a str,
    /// The outer connection's session id.
    pub session: &'a str,
    /// The target the jump was granted to.
    pub target: &'a str,
}

/// The session of a nested login: the inner username checked
/// ([`nested_login`]), the outer user still existing, `jump.opened` audited
/// durably, then the destination resolved as for `USER+LOGIN+TARGET` from
/// the outer client's address. `None`: refused (the reason is logged).
pub async fn nested_session(
    app: &Arc<App>,
    via: Via<'_>,
    username: &str,
    peer: SocketAddr,
    cancel: CancellationToken,
) -> Option<Session> {
    let req = match nested_login(via.user, via.target, username) {
        Ok(req) => req,
        Err(NestedLoginError::Malformed(e)) => {
            tracing::info!(source = %peer, username = %escape_for_log(username), reason = %e,
                "jump: malformed login refused");
            return None;
        }
        Err(NestedLoginError::StoredName(e)) => {
            tracing::error!(user = %via.user, target = %via.target, reason = %e, "jump: stored name unusable");
            return None;
        }
    };
    let groups = match app.store.user(via.user).await {
        Ok(Some(rec)) => rec.groups,
        Ok(None) => {
            tracing::warn!(user = %via.user, "jump: user no longer exists; refused");
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "jump: user lookup failed; refused");
            return None;
        }
    };
    let event = AuditEvent::JumpOpened {
        user: via.user.to_string(),
        source: peer.to_string(),
        target: via.target.to_string(),
        login_sent: username.to_string(),
        via_session: via.session.to_string(),
    };
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(error = %e, "audit write failed; jump refused");
        return None;
    }
    Some(Session::resolve(app.clone(), &req, groups, peer, cancel).await)
}

/// Admits a nested session like a direct one: the connection's kill note,
/// the locks (a locked user gets in only to read why, and the kill switch
/// finds it by target), its row from login on and its registry entry, so
/// it is listed and ends by its id.
pub async fn admit_nested(session: &mut Session, kill: Arc<KillNote>, via_session: &str) {
    session.kill = kill;
    if let Err(refusal) = session.lock_check() {
        session.destination = Destination::Refused(refusal.user);
    }
    session.open_row().await;
    session.register();
    tracing::info!(source = %session.source, user = %session.user, via = %via_session,
        "jump: nested login accepted");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, host: &str, port: u16) -> TargetRecord {
        TargetRecord {
            name: name.into(),
            host: host.into(),
            port,
            host_key: String::new(),
        }
    }

    #[test]
    fn names_and_addresses_select_targets() {
        let all = || {
            vec![
                t("web01", "10.0.0.5", 2222),
                t("WEB01", "10.0.0.6", 22),
                t("db", "10.0.0.7", 22),
                t("db2", "10.0.0.7", 22),
            ]
        };
        let name = |l: Lookup| match l {
            Lookup::Target(t) => t.name,
            other => panic!("{other:?}"),
        };
        // By name: port 22 (what `ssh -J` sends) or the target's own port.
        assert_eq!(name(pick(all(), "web01", 22)), "web01");
        assert_eq!(name(pick(all(), "web01", 2222)), "web01");
        assert_eq!(name(pick(all(), "WEB01", 22)), "WEB01");
        assert_eq!(name(pick(vec![t("Web9", "h", 22)], "web9", 22)), "Web9");
        // A name on another port is not that target's SSH service.
        assert_eq!(pick(all(), "web01", 80), Lookup::NotSsh);
        // By configured address and port.
        assert_eq!(name(pick(all(), "10.0.0.5", 2222)), "web01");
        assert_eq!(pick(all(), "10.0.0.5", 22), Lookup::NotSsh);
        assert!(matches!(
            pick(all(), "10.0.0.7", 22),
            Lookup::Ambiguous(m) if m.contains("db, db2")
        ));
        assert_eq!(pick(all(), "intranet", 443), Lookup::NotSsh);
    }

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().expect("a timestamp")
    }

    #[test]
    fn a_granted_target_is_served_and_a_grant_out_of_its_window_refused() {
        let web = || Lookup::Target(t("web01", "10.0.0.5", 22));
        let standing = Grant::standing("g1", "user alice", "web01", &["root"]);
        assert_eq!(
            decide(Ok((web(), vec![standing.clone()])), now()),
            Jump::Serve(t("web01", "10.0.0.5", 22))
        );
        let mut expired = standing;
        expired.valid_until = Some("2026-05-01T00:00:00Z".parse().expect("a timestamp"));
        let Jump::Refuse(why) = decide(Ok((web(), vec![expired])), now()) else {
            panic!("an expired grant served a jump");
        };
        assert!(why.starts_with("portcullis: "), "{why}");
        // No grant for it at all (the caller filters, but the decision
        // itself must not serve on someone else's grant).
        let other = Grant::standing("g2", "user alice", "db01", &["root"]);
        assert!(matches!(
            decide(Ok((web(), vec![other])), now()),
            Jump::Refuse(_)
        ));
    }

    #[test]
    fn not_a_target_is_forwarded_and_ambiguity_or_a_store_error_refused() {
        assert_eq!(decide(Ok((Lookup::NotSsh, vec![])), now()), Jump::NotSsh);
        assert_eq!(
            decide(Ok((Lookup::Ambiguous("two".into()), vec![])), now()),
            Jump::Refuse("two".into())
        );
        let Jump::Refuse(why) = decide(Err(StoreError::AuditKeyMissing), now()) else {
            panic!("a store error let a jump through");
        };
        assert!(!why.contains("key"), "the store error leaked: {why}");
    }

    #[test]
    fn a_nested_login_never_picks_another_user() {
        let req = nested_login("alice", "web01", "root").expect("a login");
        assert_eq!(req.user.as_str(), "alice");
        let t = req.target.expect("a target");
        assert_eq!(t.target.as_str(), "web01");
        assert_eq!(t.login.expect("a login").as_str(), "root");
        // The user's own name: the grant's default login.
        let own = nested_login("alice", "web01", "alice").expect("a login");
        assert!(own.target.expect("a target").login.is_none());
        assert!(matches!(
            nested_login("alice", "web01", "bob+web02"),
            Err(NestedLoginError::Malformed(_))
        ));
    }

    async fn jump_rows(app: &App) -> Vec<crate::audit::AuditEntry> {
        let q = crate::audit::AuditQuery {
            kind: Some("jump.opened".into()),
            ..Default::default()
        };
        crate::audit::query(&app.store, &q)
            .await
            .expect("the trail")
    }

    /// A nested login is audited before it resolves, only for a user that
    /// still exists and a well-formed login; a lock on the user holds for
    /// it as for a direct login, and it is listed under its own id.
    #[tokio::test]
    async fn a_nested_session_is_audited_resolved_and_admitted_like_a_direct_one() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let app = crate::session::tests::test_app(&dir).await;
        crate::session::tests::granted(&app, "shell").await;
        let peer: SocketAddr = "192.0.2.7:50000".parse().expect("an address");
        let via = |user| Via {
            user,
            session: "outer1",
            target: "web01",
        };
        let cancel = CancellationToken::new;
        assert!(
            nested_session(&app, via("ghost"), "root", peer, cancel())
                .await
                .is_none()
        );
        assert!(
            nested_session(&app, via("alice"), "bad+login", peer, cancel())
                .await
                .is_none()
        );
        assert!(jump_rows(&app).await.is_empty(), "a refusal was audited");

        let mut s = nested_session(&app, via("alice"), "root", peer, cancel())
            .await
            .expect("a session");
        assert!(
            matches!(&s.destination, Destination::Target { allow, .. } if allow.login == "root")
        );
        let rows = jump_rows(&app).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].detail["via_session"], "outer1", "{:?}", rows[0]);

        let spec = crate::lockdown::LockSpec {
            scope: crate::policy::LockScope::User("alice".into()),
            reason: "incident".into(),
            author: "test:responder".into(),
            expires_ms: None,
        };
        crate::lockdown::create(&app, spec).await.expect("a lock");
        admit_nested(&mut s, Arc::default(), "outer1").await;
        assert!(matches!(s.destination, Destination::Refused(_)));
        assert_eq!(app.registry.get(&s.id).expect("listed").kind, "connection");
    }
}
