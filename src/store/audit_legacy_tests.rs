//! Issue 14 point 8: rows a database writer puts in `audit_legacy` are never
//! sealed with the real key. Legacy rows join the chain once, while it is
//! still empty, and the table is dropped; if it comes back holding rows, the
//! store refuses to open the chain and `verify` does not say OK.

use crate::audit::*;
use crate::store::audit_tests::pg_schema;
use crate::store::{Store, StoreError};
use std::sync::Arc;

fn key() -> ChainKey {
    ChainKey::from_bytes([42; 32])
}

/// As an attacker with write access: recreate the table if it is gone, add a row.
async fn forge_legacy_row(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for q in [
        "CREATE TABLE IF NOT EXISTS audit_legacy (id TEXT NOT NULL, ts BIGINT NOT NULL, \
         kind TEXT NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL, \
         subject TEXT NOT NULL, detail TEXT NOT NULL)",
        "INSERT INTO audit_legacy (id, ts, kind, actor, source, subject, detail) \
         VALUES ('forged', 1, 'grant.created', 'cli:root', '', 'mallory', '{}')",
    ] {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn forged_rows_are_never_sealed(url: &str) {
    let store = Store::connect(url)
        .await
        .unwrap()
        .attach_audit(Arc::new(key()))
        .await
        .unwrap();
    let e = AuditEvent::SessionEnded {
        session: "s1".into(),
        user: "alice".into(),
        target: "web01".into(),
        reason: "client disconnected".into(),
        bytes_up: 1,
        bytes_down: 2,
    };
    record(&store, e).await.unwrap();
    store.close().await;

    forge_legacy_row(url).await;

    // The next start (server or CLI) refuses, naming the table.
    let bare = Store::connect(url).await.unwrap();
    let err = bare
        .clone()
        .attach_audit(Arc::new(key()))
        .await
        .expect_err("a forged audit_legacy row was adopted into the chain");
    assert!(
        matches!(err, StoreError::AuditLegacyReappeared { rows: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("audit_legacy"), "{err}");
    // Nothing was sealed, and verify (which never adopts) says it is not OK.
    let r = verify(&bare, &key()).await.unwrap();
    assert_eq!(r.count, 1, "the chain grew: {r:?}");
    assert!(!r.ok(), "verify said OK with a forged audit_legacy row");
    assert!(
        r.problems
            .iter()
            .any(|p| p.to_string().contains("audit_legacy")),
        "{:?}",
        r.problems
    );
    bare.close().await;
}

/// An empty chain adopts what was there at migration, once, and drops the table.
async fn adopted_once_at_migration(url: &str) {
    forge_legacy_row_before_chain(url).await;
    let store = Store::connect(url)
        .await
        .unwrap()
        .attach_audit(Arc::new(key()))
        .await
        .unwrap();
    let r = verify(&store, &key()).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.count, 1);
    assert_eq!(
        store.audit_legacy_rows().await.unwrap(),
        None,
        "not dropped"
    );
    store.close().await;
}

/// The migrations, then a row in the (still empty) legacy table, as an
/// upgrade from before the chain leaves it.
async fn forge_legacy_row_before_chain(url: &str) {
    Store::connect(url).await.unwrap().close().await;
    forge_legacy_row(url).await;
}

fn sqlite_url(dir: &tempfile::TempDir, tag: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{tag}.db")).display()
    )
}

#[tokio::test]
async fn sqlite_forged_legacy_rows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    forged_rows_are_never_sealed(&sqlite_url(&dir, "f")).await;
}

#[tokio::test]
async fn sqlite_legacy_rows_are_adopted_once() {
    let dir = tempfile::tempdir().unwrap();
    adopted_once_at_migration(&sqlite_url(&dir, "a")).await;
}

#[tokio::test]
async fn postgres_forged_legacy_rows_are_refused() {
    forged_rows_are_never_sealed(&pg_schema("lf").await).await;
}

#[tokio::test]
async fn postgres_legacy_rows_are_adopted_once() {
    adopted_once_at_migration(&pg_schema("la").await).await;
}
