//! The audit chain's storage on SQLite and PostgreSQL: serialised appends,
//! the database refusing UPDATE/DELETE, filters, and legacy rows joining.

use super::*;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Unkeyed stand-in for the chain key: enough to check linking and order.
struct Plain;

impl AuditSealer for Plain {
    fn seal(&self, r: &ChainedRow) -> String {
        let text = format!(
            "{}|{}|{}|{}|{}",
            r.seq, r.kind, r.subject, r.detail, r.prev_hash
        );
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

fn row(kind: &str, subject: &str, session: &str, ts: i64) -> AuditRow {
    AuditRow {
        ts_ms: ts,
        kind: kind.into(),
        actor: "alice".into(),
        source: "10.0.0.1:5000".into(),
        subject: subject.into(),
        session: session.into(),
        detail: "{\"n\":1}".into(),
    }
}

fn all() -> AuditFilter {
    AuditFilter {
        limit: 100_000,
        ..AuditFilter::default()
    }
}

async fn exercise(url: &str) {
    let bare = Store::connect(url).await.unwrap();
    // Without the key nothing is written: fail closed.
    assert!(matches!(
        bare.append_audit(&row("x", "", "", 1)).await,
        Err(StoreError::AuditKeyMissing)
    ));
    // A row from before the chain existed joins it when the key is attached.
    sqlx::query("INSERT INTO audit_legacy (id, ts, kind, actor, source, subject, detail) VALUES ('old', 1, 'legacy.kind', 'a', '', 's', '{}')")
        .execute(&bare.pool)
        .await
        .unwrap();
    let store = bare.attach_audit(Arc::new(Plain)).await.unwrap();
    let rows = store.audit_rows(&all()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].seq, rows[0].kind.as_str()), (1, "legacy.kind"));
    assert_eq!(rows[0].prev_hash, GENESIS_HASH);

    store
        .append_audit(&row("session.started", "web01", "s1", 10))
        .await
        .unwrap();
    store
        .append_audit(&row("session.ended", "web01", "s1", 20))
        .await
        .unwrap();
    store
        .append_audit(&row("session.ended_by_policy", "web02", "s2", 30))
        .await
        .unwrap();
    store
        .append_audit(&row("sessionx.other", "web02", "", 40))
        .await
        .unwrap();
    concurrent_appends(&store).await;
    one_batch_over_several_inserts(&store).await;
    guards_refuse_changes(&store).await;
    filters(&store).await;
    // Triggers come back on every start, and nothing is adopted twice.
    store.close().await;
    let again = Store::connect(url)
        .await
        .unwrap()
        .attach_audit(Arc::new(Plain))
        .await
        .unwrap();
    let n = again.audit_rows(&all()).await.unwrap().len();
    assert_eq!(n, 5 + 8 * 25 + BATCH);
    again.close().await;
}

/// More rows than one INSERT carries, appended as one group commit does.
const BATCH: usize = 120;

/// A batch is chained as if appended row by row, continues the chain and
/// leaves the head on its last row.
async fn one_batch_over_several_inserts(store: &Store) {
    let before = store.audit_rows(&all()).await.unwrap().len();
    let rows: Vec<AuditRow> = (0..BATCH)
        .map(|i| row("batch", &format!("b{i}"), "", 1000 + i as i64))
        .collect();
    let refs: Vec<&AuditRow> = rows.iter().collect();
    let mut conn = store.pool.acquire().await.unwrap();
    let mut tx = sqlx::Acquire::begin(&mut *conn).await.unwrap();
    let chained = audit::append_all_in(&mut tx, &Plain, &refs).await.unwrap();
    tx.commit().await.unwrap();
    drop(conn);
    let stored = store.audit_rows(&all()).await.unwrap();
    assert_eq!(stored.len(), before + BATCH);
    assert_eq!(&stored[before..], &chained[..]);
    let mut prev = stored[before - 1].hash.clone();
    for (i, r) in stored[before..].iter().enumerate() {
        assert_eq!(r.seq, (before + i) as i64 + 1);
        assert_eq!(r.subject, format!("b{i}"));
        assert_eq!(r.prev_hash, prev, "seq {} does not follow", r.seq);
        assert_eq!(r.hash, Plain.seal(r));
        prev = r.hash.clone();
    }
    assert_eq!(
        store.audit_head().await.unwrap(),
        Some((stored.len() as i64, prev))
    );
}

/// Eight writers at once, each with its own connection: one gap-free chain.
async fn concurrent_appends(store: &Store) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    s.append_audit(&row("load", &format!("t{t}"), "", 100 + i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rows = store.audit_rows(&all()).await.unwrap();
    assert_eq!(rows.len(), 5 + 8 * 25);
    let mut prev = GENESIS_HASH.to_string();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.prev_hash, prev, "seq {} does not follow", r.seq);
        assert_eq!(r.hash, Plain.seal(r));
        prev = r.hash.clone();
    }
    assert_eq!(
        store.audit_head().await.unwrap(),
        Some((rows.len() as i64, prev))
    );
}

async fn guards_refuse_changes(store: &Store) {
    for sql in [
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "DELETE FROM audit_events",
        "DELETE FROM audit_head",
    ] {
        let e = sqlx::query(sql).execute(&store.pool).await;
        let msg = format!("{e:?}");
        assert!(
            e.is_err() && (msg.contains("refused") || msg.contains("cannot")),
            "{sql}: {msg}"
        );
    }
    let r = &store.audit_rows(&all()).await.unwrap()[1];
    assert_eq!((r.seq, r.actor.as_str()), (2, "alice"));
}

async fn filters(store: &Store) {
    let kinds = |f: AuditFilter| {
        let s = store.clone();
        async move {
            s.audit_rows(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.kind)
                .collect::<Vec<_>>()
        }
    };
    let f = |kind: &str| AuditFilter {
        kind: Some(kind.into()),
        ..all()
    };
    // A dotted prefix, never a bare string prefix; LIKE wildcards are literal.
    assert_eq!(
        kinds(f("session")).await,
        [
            "session.started",
            "session.ended",
            "session.ended_by_policy"
        ]
    );
    assert_eq!(kinds(f("session.ended")).await, ["session.ended"]);
    assert!(kinds(f("sess%")).await.is_empty());
    assert!(kinds(f("session_started")).await.is_empty());
    let by_session = AuditFilter {
        session: Some("s1".into()),
        ..all()
    };
    assert_eq!(
        kinds(by_session).await,
        ["session.started", "session.ended"]
    );
    let window = AuditFilter {
        since_ms: Some(20),
        until_ms: Some(40),
        subject: Some("web02".into()),
        ..all()
    };
    assert_eq!(kinds(window).await, ["session.ended_by_policy"]);
    let page = store
        .audit_rows(&AuditFilter {
            after_seq: Some(2),
            limit: 2,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    let newest = store
        .audit_rows(&AuditFilter {
            newest_first: true,
            before_seq: Some(5),
            limit: 2,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(newest.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 3]);
}

#[tokio::test]
async fn sqlite_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
    exercise(&url).await;
}

#[tokio::test]
async fn postgres_audit_chain() {
    let url = pg_schema("sa").await;
    exercise(&url).await;
}

/// A fresh schema on the CI PostgreSQL, named after `tag` and the process.
pub(crate) async fn pg_schema(tag: &str) -> String {
    let base = std::env::var("PORTCULLIS_TEST_PG_URL").expect(
        "PORTCULLIS_TEST_PG_URL is not set: run the tests through .ci/run, which starts PostgreSQL",
    );
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(&base).await.unwrap();
    let schema = format!("{tag}{}", std::process::id());
    for q in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(&q).execute(&admin).await.unwrap();
    }
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
