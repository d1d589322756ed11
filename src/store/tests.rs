//! The same checks against SQLite and PostgreSQL, so the schema never drifts
//! into one dialect. PostgreSQL comes from `.ci/run` (PORTCULLIS_TEST_PG_URL).

use super::*;

async fn exercise(store: &Store) {
    store
        .add_user("alice", Some("$argon2id$x"), 1)
        .await
        .unwrap();
    assert!(matches!(
        store.add_user("alice", None, 2).await,
        Err(StoreError::Exists { kind: "user", .. })
    ));
    store
        .add_user_key("alice", "SHA256:abc", "ssh-ed25519 AAAA alice")
        .await
        .unwrap();
    store.add_group("ops").await.unwrap();
    store.add_member("ops", "alice").await.unwrap();
    assert!(matches!(
        store.add_member("ops", "bob").await,
        Err(StoreError::Missing { kind: "user", .. })
    ));

    let u = store.user("alice").await.unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$x"));
    assert_eq!(u.public_keys, vec!["ssh-ed25519 AAAA alice".to_string()]);
    assert_eq!(u.groups, vec!["ops".to_string()]);
    let list = store.list_users().await.unwrap();
    assert_eq!(
        list,
        vec![UserSummary {
            name: "alice".into(),
            has_password: true,
            key_count: 1
        }]
    );

    let t = TargetRecord {
        name: "web01".into(),
        host: "127.0.0.1".into(),
        port: 2200,
        host_key: "ssh-ed25519 AAAA".into(),
    };
    store.add_target(&t, 3).await.unwrap();
    assert_eq!(store.target("web01").await.unwrap(), Some(t.clone()));
    assert_eq!(store.list_targets().await.unwrap(), vec![t]);
    // ProxyJump lookups: by name or address, ignoring case, nothing else.
    for q in ["web01", "WEB01", "127.0.0.1"] {
        assert_eq!(store.targets_named_or_at(q).await.unwrap().len(), 1, "{q}");
    }
    assert!(store.targets_named_or_at("web0").await.unwrap().is_empty());

    store
        .set_credential("web01", "root", CredentialKind::Password, "pcv1:x:y:z", 4)
        .await
        .unwrap();
    store
        .set_credential("web01", "root", CredentialKind::PrivateKey, "pcv1:x:y:w", 5)
        .await
        .unwrap();
    let c = store.credential("web01", "root").await.unwrap().unwrap();
    assert_eq!(
        (c.kind, c.sealed.as_str()),
        (CredentialKind::PrivateKey, "pcv1:x:y:w")
    );
    assert!(
        store
            .set_credential("nope", "root", CredentialKind::Password, "s", 6)
            .await
            .is_err()
    );

    let g = GrantRecord {
        windows: "mon-fri 08:00-18:00".into(),
        time_zone: "Europe/Berlin".into(),
        valid_until_ms: Some(99),
        max_session_secs: Some(60),
        exec_allow: vec!["uptime".into(), "systemctl status *".into()],
        exec_deny: vec!["rm *".into()],
        permissions: "exec".into(),
        ..GrantRecord::standing(
            "g1",
            Subject::Group("ops".into()),
            "web01",
            &["root", "deploy"],
        )
    };
    store.add_grant(&g, 7).await.unwrap();
    assert_eq!(
        store
            .grants_for("alice", &["ops".to_string()])
            .await
            .unwrap(),
        vec![g]
    );
    assert!(store.grants_for("alice", &[]).await.unwrap().is_empty());

    let s = SessionStart {
        id: "s1".into(),
        user: "alice".into(),
        source: "127.0.0.1:5000".into(),
        target: "web01".into(),
        login: "root".into(),
        started_ms: 10,
        kind: SessionKind::Target,
    };
    store.session_started(&s).await.unwrap();
    store
        .session_ended(
            "s1",
            &SessionEnd {
                ended_ms: 20,
                reason: "client closed".into(),
                bytes_up: 5,
                bytes_down: 6,
            },
        )
        .await
        .unwrap();
    let rows = store.list_sessions(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].ended_ms,
            rows[0].end_reason.as_deref(),
            rows[0].bytes_up,
            rows[0].bytes_down
        ),
        (Some(20), Some("client closed"), 5, 6)
    );

    // TOTP: a step is claimed once, only forward, and exactly one of two
    // concurrent claims of the same step wins.
    store.set_totp("alice", "pcv1:t", 100, 8).await.unwrap();
    assert!(
        !store.claim_totp_step("alice", 100).await.unwrap(),
        "enrollment step reused"
    );
    assert!(
        !store.claim_totp_step("alice", 99).await.unwrap(),
        "older step"
    );
    let (a, b) = tokio::join!(
        store.claim_totp_step("alice", 101),
        store.claim_totp_step("alice", 101)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|w| **w).count(), 1);
    assert_eq!(store.totp("alice").await.unwrap().unwrap().last_step, 101);
    store.set_mfa_exempt("alice", true).await.unwrap();
    assert!(store.user("alice").await.unwrap().unwrap().mfa_exempt);

    let blk = SourceBlock {
        cidr: "10.0.0.0/24".into(),
        reason: "scan".into(),
        created_ms: 1,
        expires_ms: Some(2),
    };
    store.add_source_block(&blk).await.unwrap();
    store.add_source_block(&blk).await.unwrap();
    assert_eq!(store.source_blocks().await.unwrap(), vec![blk]);
    store.remove_source_block("10.0.0.0/24").await.unwrap();
    assert!(store.source_blocks().await.unwrap().is_empty());

    // Just-in-time: a request, then an approval that creates its grant atomically.
    let q = AccessRequest {
        id: "r1".into(),
        user: "alice".into(),
        target: "web01".into(),
        login: "root".into(),
        duration_secs: 60,
        reason: "INC-1".into(),
        state: "pending".into(),
        requested_ms: 9,
        decided_by: None,
        decided_ms: None,
        grant_id: None,
    };
    store.add_request(&q).await.unwrap();
    assert_eq!(
        store.list_requests(Some("pending")).await.unwrap(),
        vec![q.clone()]
    );
    let jg = GrantRecord {
        origin: "jit:r1".into(),
        valid_until_ms: Some(70),
        ..GrantRecord::standing("g2", Subject::User("alice".into()), "web01", &["root"])
    };
    assert!(
        store
            .decide_request("r1", "approved", "bob", 10, Some(&jg))
            .await
            .unwrap()
    );
    assert!(
        !store
            .decide_request("r1", "denied", "bob", 11, None)
            .await
            .unwrap(),
        "decided twice"
    );
    assert_eq!(
        store
            .request("r1")
            .await
            .unwrap()
            .unwrap()
            .grant_id
            .as_deref(),
        Some("g2")
    );
    assert!(store.list_grants().await.unwrap().iter().any(|g| g == &jg));
    // A user's own grant and a group's grant, selected in SQL.
    assert_eq!(
        store.grants_for("alice", &[]).await.unwrap(),
        vec![jg.clone()]
    );
    let both = store
        .grants_for("alice", &["ops".to_string(), "nobody".to_string()])
        .await
        .unwrap();
    assert_eq!(
        both.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        vec!["g1", "g2"]
    );
    assert_eq!(
        store
            .grants_for("bob", &["ops".to_string()])
            .await
            .unwrap()
            .len(),
        1
    );

    store.remove_target("web01").await.unwrap();
    assert!(store.credential("web01", "root").await.unwrap().is_none());
    assert!(store.list_grants().await.unwrap().is_empty());
    store.remove_user("alice").await.unwrap();
    assert!(store.user("alice").await.unwrap().is_none());
    assert!(store.totp("alice").await.unwrap().is_none());
    assert!(matches!(
        store.remove_user("alice").await,
        Err(StoreError::Missing { .. })
    ));
    super::tcp::exercise_tcp(store).await;
    super::console_sessions::exercise_console_sessions(store).await;
    super::search::exercise_search(store).await;
    super::scim::exercise_scim(store).await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    // Migrations are idempotent on an existing database.
    store.close().await;
    Store::connect(&url).await.unwrap();
}

#[tokio::test]
async fn postgres_store() {
    let base = std::env::var("PORTCULLIS_TEST_PG_URL").expect(
        "PORTCULLIS_TEST_PG_URL is not set: run the tests through .ci/run, which starts PostgreSQL",
    );
    let schema = format!("t{}", std::process::id());
    let admin = Store::raw_pool(&base).await;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}

impl Store {
    async fn raw_pool(url: &str) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(url).await.unwrap()
    }
}
