//! The lifecycle of a live thing through `Live`/`Lease` with a real `App`
//! on a temporary SQLite store: the kill switch reaching it by its id, its
//! deadline ending it, its registry entry gone once it ends.

use super::live::{Live, Spec};
use super::*;
use crate::audit::ChainKey;
use crate::lockdown::{self, LockError, Terminated};
use crate::names::Name;
use crate::store::Store;
use crate::vault::Vault;
use std::time::Duration;

/// A bastion's shared state with defaults, on a SQLite file in `dir`, with
/// no listener: what a connection's code sees.
pub(crate) async fn test_app(dir: &tempfile::TempDir) -> Arc<App> {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&url)
        .await
        .expect("a SQLite store")
        .attach_audit(Arc::new(ChainKey::from_bytes([9; 32])))
        .await
        .expect("the audit chain");
    let config = crate::config::Config::embedded(Some(dir.path()));
    let key = crate::castfile::SigningKey::from_bytes(&[5; 32]);
    App::new(config, store, Vault::from_key([7; 32]), key)
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// `alice`, SSH target `web01` and a grant of `allow` on it as `root`;
/// the grant's id.
pub(crate) async fn granted(app: &Arc<App>, allow: &str) -> String {
    let o = crate::ops::Ops::new(app.store.clone(), "test:admin");
    let user = crate::ops::NewUser {
        name: "alice".into(),
        password: None,
        keys: vec![KEY.into()],
        service: false,
    };
    crate::ops::add_user(&o, user).await.expect("alice");
    let web = crate::ops::NewSshTarget {
        name: "web01".into(),
        host: "10.0.0.5".into(),
        port: 22,
        host_key: KEY.into(),
    };
    crate::ops::add_ssh_target(&o, web).await.expect("web01");
    grant(app, allow).await
}

/// One more grant of `allow` on `web01` as `root` for `alice`; its id.
async fn grant(app: &Arc<App>, allow: &str) -> String {
    let spec = crate::grants::GrantSpec {
        user: Some("alice".into()),
        group: None,
        target: "web01".into(),
        logins: vec!["root".into()],
        from: None,
        until: None,
        for_: None,
        window: None,
        tz: "UTC".into(),
        max_session: None,
        allow: allow.into(),
        exec_allow: vec![],
        exec_deny: vec![],
    };
    let g = crate::grants::add(&app.store, &spec, "test:admin")
        .await
        .expect("a grant");
    g.id
}

/// A logged-in plain `alice` connection (no target: a menu).
async fn alice(app: &Arc<App>) -> Session {
    let req = LoginRequest {
        user: Name::parse("alice").expect("a name"),
        target: None,
    };
    let source = "192.0.2.7:50000".parse().expect("an address");
    Session::resolve(app.clone(), &req, vec![], source, CancellationToken::new()).await
}

/// A forward through `web01` as `root`, which its grant must keep allowing.
fn spec(id: &str, deadline: Option<(Timestamp, policy::EndCause)>) -> Spec {
    Spec {
        id: id.into(),
        kind: "forward",
        target: "web01".into(),
        login: "root".into(),
        deadline,
        channel: Some((policy::ChannelKind::DirectTcpip, "port forwarding")),
        bytes: Arc::default(),
    }
}

#[tokio::test]
async fn a_kill_through_the_registry_cancels_the_live_thing_and_names_why() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    granted(&app, "shell,local-forward").await;
    let s = alice(&app).await;
    let cancel = CancellationToken::new();
    let live = Live::open(&s, spec("f1", None), cancel.clone());
    let listed = app.registry.get("f1").expect("listed while it lives");
    assert_eq!((listed.kind, listed.user.as_str()), ("forward", "alice"));

    // The one door every admin takes: a session lock on its id.
    let what = lockdown::terminate(&app, "f1", "test:responder", "incident 9")
        .await
        .expect("terminated");
    assert_eq!(what, Terminated::Forward);
    tokio::time::timeout(Duration::from_secs(5), cancel.cancelled())
        .await
        .expect("the kill cancelled the live thing's token");
    let reason = live.finish("cancelled by the client".into());
    assert!(
        reason.starts_with("killed: ") && reason.contains("incident 9"),
        "{reason}"
    );
    assert!(app.registry.get("f1").is_none(), "left in the registry");
    // Its id is no longer live anywhere: a second terminate finds nothing.
    let again = lockdown::terminate(&app, "f1", "test:responder", "again").await;
    assert!(
        matches!(again, Err(LockError::NoSuchSession(_))),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_kill_of_another_id_leaves_it_running() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    granted(&app, "shell,local-forward").await;
    let s = alice(&app).await;
    let (mine, other) = (CancellationToken::new(), CancellationToken::new());
    let live = Live::open(&s, spec("f1", None), mine.clone());
    let _other = Live::open(&s, spec("f2", None), other.clone());
    lockdown::terminate(&app, "f2", "test:responder", "just f2")
        .await
        .expect("terminated");
    tokio::time::timeout(Duration::from_secs(5), other.cancelled())
        .await
        .expect("f2 ended");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!mine.is_cancelled(), "a kill of f2 ended f1");
    assert_eq!(live.finish("done".into()), "done");
}

#[tokio::test]
async fn the_deadline_ends_it_with_its_cause() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    granted(&app, "shell,local-forward").await;
    let s = alice(&app).await;
    let cancel = CancellationToken::new();
    // The watcher reads the wall clock for the deadline (as in service).
    let at = Timestamp::now() + jiff::SignedDuration::from_millis(300);
    let deadline = Some((at, policy::EndCause::GrantExpires));
    let live = Live::open(&s, spec("f3", deadline), cancel.clone());
    tokio::time::timeout(Duration::from_secs(5), cancel.cancelled())
        .await
        .expect("the deadline ended it");
    let reason = live.finish("cancelled by the client".into());
    assert_eq!(reason, "the grant expires");
    assert!(app.registry.get("f3").is_none());
}

#[tokio::test]
async fn a_dropped_lease_leaves_the_registry_and_a_kill_wins_over_other_reasons() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    granted(&app, "shell,local-forward").await;
    let s = alice(&app).await;
    let cancel = CancellationToken::new();
    let entry = |id: &str| crate::registry::LiveSession {
        id: id.into(),
        user: s.user.clone(),
        target: String::new(),
        login: String::new(),
        source: s.source.to_string(),
        source_ip: s.source.ip(),
        started_ms: 0,
        cancel: cancel.clone(),
        kill: Arc::default(),
        notices: None,
        kind: "agent",
        bytes: Arc::new(Counters::default()),
    };
    {
        let _lease = Lease::open(&app, entry("a1"));
        assert!(app.registry.get("a1").is_some());
    }
    assert!(app.registry.get("a1").is_none(), "a dropped lease stayed");
    let lease = Lease::open(&app, entry("a2"));
    lease.cancel_on_kill();
    assert_eq!(lease.end_reason("eof".into()), "eof");
    let killed = app.registry.kill_where(
        |l| (l.id == "a2").then(|| "by hand".into()),
        std::time::Instant::now(),
    );
    assert_eq!(killed, vec!["a2".to_string()]);
    tokio::time::timeout(Duration::from_secs(5), cancel.cancelled())
        .await
        .expect("the kill cancelled the token");
    assert_eq!(lease.end_reason("eof".into()), "killed: by hand");
}

/// The watcher re-decides the grant every 2 s: a grant removed, or one
/// that no longer allows forwarding, ends the thing with why; the registry
/// entry goes with it.
#[tokio::test]
async fn a_revoked_or_narrowed_grant_ends_it_within_the_recheck() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    let wide = granted(&app, "shell,local-forward").await;
    let s = alice(&app).await;
    let (c1, c2) = (CancellationToken::new(), CancellationToken::new());
    let narrowed = Live::open(&s, spec("n1", None), c1.clone());
    // Narrow: a shell-only grant first, so access itself stays.
    let narrow = grant(&app, "shell").await;
    crate::grants::remove(&app.store, &wide, "test:admin")
        .await
        .expect("removed");
    tokio::time::timeout(Duration::from_secs(5), c1.cancelled())
        .await
        .expect("the narrowed grant ended it");
    let why = narrowed.finish("eof".into());
    assert_eq!(why, "grant withdrawn: port forwarding no longer allowed");
    assert!(app.registry.get("n1").is_none());
    // Revoked outright.
    let revoked = Live::open(&s, spec("r1", None), c2.clone());
    crate::grants::remove(&app.store, &narrow, "test:admin")
        .await
        .expect("removed");
    tokio::time::timeout(Duration::from_secs(5), c2.cancelled())
        .await
        .expect("the revocation ended it");
    let why = revoked.finish("eof".into());
    assert!(why.starts_with("grant withdrawn: "), "{why}");
}

/// The re-checks of a user's live sessions share one read of their grants
/// for `SHARED_FOR` (10,000 idle sessions re-deciding every 2 s were
/// 10,000 queries a second); a change is seen once it has passed.
#[tokio::test]
async fn re_checks_share_a_users_grants_for_half_a_second() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    let g = granted(&app, "shell").await;
    let recent = &app.recent_grants;
    let decide = || recent.redecide(&app.store, "alice", "web01", "root", Timestamp::now());
    assert!(decide().await.expect("read").is_ok());
    crate::grants::remove(&app.store, &g, "test:admin")
        .await
        .expect("removed");
    assert!(
        decide().await.expect("read").is_ok(),
        "the read of a moment ago is shared"
    );
    tokio::time::sleep(crate::grants::access::SHARED_FOR).await;
    assert!(
        decide().await.expect("read").is_err(),
        "the revocation is seen after SHARED_FOR"
    );
}

/// The shared reads are kept per user re-checked; those of users whose
/// sessions ended are dropped once the map has doubled, so a long-lived node
/// does not keep a slot (and grants) for every user it ever served.
#[tokio::test]
async fn shared_reads_of_users_gone_are_dropped() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = test_app(&dir).await;
    let (recent, store) = (&app.recent_grants, &app.store);
    let recheck = |n: usize| async move {
        let user = format!("u{n}");
        let decided = recent
            .redecide(store, &user, "web01", "root", Timestamp::now())
            .await
            .expect("read");
        assert!(decided.is_err(), "{user} holds no grant");
    };
    for n in 0..100 {
        recheck(n).await;
    }
    assert_eq!(recent.users_held(), 100, "fresh reads are kept");
    tokio::time::sleep(crate::grants::access::SHARED_FOR).await;
    for n in 100..200 {
        recheck(n).await;
    }
    assert_eq!(
        recent.users_held(),
        100,
        "the first hundred users' stale reads were dropped"
    );
}
