//! The keyed chain end to end on SQLite and PostgreSQL: every kind of
//! tampering a database writer can do is named by `verify`, and concurrent
//! appenders keep one valid chain.

//! (Here, in the store, because it edits rows with SQL as an attacker would.)

use crate::audit::*;
use crate::store::Store;
use crate::store::audit_tests::pg_schema;
use std::sync::Arc;

fn key() -> ChainKey {
    ChainKey::from_bytes([42; 32])
}

async fn fresh(url: &str, events: usize) -> Store {
    let store = Store::connect(url)
        .await
        .unwrap()
        .attach_audit(Arc::new(key()))
        .await
        .unwrap();
    for i in 0..events {
        let e = AuditEvent::SessionEnded {
            session: format!("s{i}"),
            user: "alice".into(),
            target: "web01".into(),
            reason: "client disconnected".into(),
            bytes_up: i as u64,
            bytes_down: 7,
        };
        record(&store, e).await.unwrap();
    }
    store
}

/// Runs SQL as an attacker with database access: triggers off first.
async fn tamper(url: &str, sql: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let off: &[&str] = if url.starts_with("sqlite:") {
        &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ]
    } else {
        &["ALTER TABLE audit_events DISABLE TRIGGER USER"]
    };
    for q in off.iter().chain(sql) {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn problems(store: &Store) -> Vec<(i64, i64, ProblemKind)> {
    let r = verify(store, &key()).await.unwrap();
    r.problems
        .into_iter()
        .map(|p| (p.seq, p.last, p.kind))
        .collect()
}

/// A hash made the way an attacker without the key would: another key.
fn forged_hash(url_row_seq: i64, actor: &str) -> String {
    let row = crate::store::ChainedRow {
        seq: url_row_seq,
        ts_ms: 0,
        kind: String::new(),
        actor: actor.into(),
        source: String::new(),
        subject: String::new(),
        session: String::new(),
        detail: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    ChainKey::from_bytes([1; 32]).hash(&row)
}

async fn tampering_is_named(url_for: impl AsyncFn(&str) -> String) {
    use ProblemKind::*;
    let url = url_for("clean").await;
    let s = fresh(&url, 6).await;
    let r = verify(&s, &key()).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.count, r.head_seq), (6, 6));

    let forged = format!(
        "UPDATE audit_events SET actor = 'mallory', hash = '{}' WHERE seq = 3",
        forged_hash(3, "mallory")
    );
    type Case = (&'static str, Vec<String>, Vec<(i64, i64, ProblemKind)>);
    let cases: Vec<Case> = vec![
        (
            "edit",
            vec![
                "UPDATE audit_events SET detail = '{\"reason\":\"nothing to see\"}' WHERE seq = 3"
                    .into(),
            ],
            vec![(3, 3, Edited)],
        ),
        (
            "del",
            vec!["DELETE FROM audit_events WHERE seq = 3".into()],
            vec![(3, 3, Deleted)],
        ),
        (
            "swap",
            vec![
                "UPDATE audit_events SET seq = -1 WHERE seq = 2".into(),
                "UPDATE audit_events SET seq = 2 WHERE seq = 4".into(),
                "UPDATE audit_events SET seq = 4 WHERE seq = -1".into(),
            ],
            vec![
                (2, 2, Reordered { sealed_as: 4 }),
                (4, 4, Reordered { sealed_as: 2 }),
            ],
        ),
        ("forge", vec![forged], vec![(3, 3, Forged)]),
        (
            "tail",
            vec!["DELETE FROM audit_events WHERE seq = 6".into()],
            vec![(6, 6, TailMissing { head_seq: 6 })],
        ),
        (
            "move",
            vec!["UPDATE audit_events SET seq = 9 WHERE seq = 2".into()],
            vec![(2, 2, Moved { to: 9 }), (9, 9, Reordered { sealed_as: 2 })],
        ),
    ];
    for (tag, sql, want) in cases {
        let url = url_for(tag).await;
        let s = fresh(&url, 6).await;
        let sql: Vec<&str> = sql.iter().map(String::as_str).collect();
        tamper(&url, &sql).await;
        assert_eq!(problems(&s).await, want, "case {tag}");
        s.close().await;
    }
}

async fn concurrent_appends_keep_one_chain(url: &str) {
    let s = fresh(url, 0).await;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let e = AuditEvent::GroupAdded {
                        group: "ops".into(),
                        actor: "cli:root".into(),
                    };
                    record(&s, e).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{url:.10}: 400 concurrent appends in {secs:.2}s ({:.0}/s)",
        400.0 / secs
    );
    let r = verify(&s, &key()).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.count, r.head_seq), (400, 400));
    assert!(!s.audit_health().is_failing());
}

fn sqlite_url(dir: &tempfile::TempDir, tag: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{tag}.db")).display()
    )
}

#[tokio::test]
async fn sqlite_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    tampering_is_named(async |tag: &str| sqlite_url(&dir, tag)).await;
}

#[tokio::test]
async fn postgres_tampering_is_named() {
    tampering_is_named(async |tag: &str| pg_schema(&format!("at{tag}")).await).await;
}

#[tokio::test]
async fn sqlite_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_appends_keep_one_chain(&sqlite_url(&dir, "c")).await;
}

#[tokio::test]
async fn postgres_concurrent_appends() {
    concurrent_appends_keep_one_chain(&pg_schema("ac").await).await;
}

#[tokio::test]
async fn a_failed_append_turns_health_red_until_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let s = fresh(&sqlite_url(&dir, "h"), 1).await;
    let bare = Store::connect(&sqlite_url(&dir, "h")).await.unwrap();
    let e = || AuditEvent::GroupAdded {
        group: "g".into(),
        actor: "a".into(),
    };
    assert!(record(&bare, e()).await.is_err());
    assert!(bare.audit_health().is_failing());
    assert_eq!(bare.audit_health().failures(), 1);
    record(&s, e()).await.unwrap();
    assert!(!s.audit_health().is_failing());
}

#[test]
fn canonical_encoding_separates_fields() {
    let a = crate::store::ChainedRow {
        seq: 1,
        ts_ms: 2,
        kind: "ab".into(),
        actor: "c".into(),
        source: String::new(),
        subject: String::new(),
        session: String::new(),
        detail: "{}".into(),
        prev_hash: GENESIS.into(),
        hash: String::new(),
    };
    let b = crate::store::ChainedRow {
        kind: "a".into(),
        actor: "bc".into(),
        ..a.clone()
    };
    assert_ne!(canonical(&a), canonical(&b));
    assert_ne!(key().hash(&a), key().hash(&b));
    assert_eq!(key().hash(&a).len(), 64);
}

const GENESIS: &str = crate::store::GENESIS_HASH;

#[test]
fn times_parse_in_every_documented_form() {
    let now = 1_800_000_000_000;
    assert_eq!(
        parse_time("2026-11-26T08:00:00Z", now).unwrap(),
        1_795_680_000_000
    );
    assert_eq!(parse_time("2026-11-26", now).unwrap(), 1_795_651_200_000);
    assert_eq!(parse_time("24h", now).unwrap(), now - 86_400_000);
    assert_eq!(parse_time("1700000000000", now).unwrap(), 1_700_000_000_000);
    assert!(parse_time("yesterday", now).is_err());
    assert!(parse_time("5é", now).is_err());
}

#[test]
fn entries_serialize_as_one_json_line_with_rfc3339_time() {
    let e = AuditEntry::from(crate::store::ChainedRow {
        seq: 7,
        ts_ms: 1_795_680_000_123,
        kind: "session.started".into(),
        actor: "alice".into(),
        source: "10.0.0.1:22".into(),
        subject: "web01".into(),
        session: String::new(),
        detail: "{\"login\":\"root\"}".into(),
        prev_hash: GENESIS.into(),
        hash: "ab".into(),
    });
    let line = e.to_json_line();
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["time"], "2026-11-26T08:00:00.123Z");
    assert_eq!(v["detail"]["login"], "root");
    assert!(v["session"].is_null());
    let frame = stream::syslog_frame(&e, &line);
    assert!(
        frame.starts_with("<86>1 2026-11-26T08:00:00.123Z "),
        "{frame}"
    );
    assert!(
        frame.contains(" portcullis ") && frame.contains(" session.started - {"),
        "{frame}"
    );
}

#[tokio::test]
async fn query_filters_pages_and_refuses_oversized_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = fresh(&sqlite_url(&dir, "q"), 5).await;
    let q = |f: AuditQuery| {
        let s = s.clone();
        async move { query(&s, &f).await }
    };
    let one = q(AuditQuery {
        session: Some("s2".into()),
        ..AuditQuery::default()
    })
    .await
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].seq, one[0].session.as_deref()), (3, Some("s2")));
    assert_eq!(one[0].detail["bytes_up"], 2);
    let page = q(AuditQuery {
        after_seq: Some(1),
        limit: Some(2),
        ..AuditQuery::default()
    })
    .await
    .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    let kind = |k: &str| AuditQuery {
        kind: Some(k.into()),
        ..AuditQuery::default()
    };
    assert_eq!(q(kind("session")).await.unwrap().len(), 5);
    assert!(q(kind("login")).await.unwrap().is_empty());
    for limit in [0, MAX_LIMIT + 1] {
        let e = q(AuditQuery {
            limit: Some(limit),
            ..AuditQuery::default()
        })
        .await;
        assert!(matches!(e, Err(AuditError::BadQuery(_))), "{limit}");
    }
    let mut out = Vec::new();
    assert_eq!(export(&s, &kind("session"), &mut out).await.unwrap(), 5);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 5);
}
