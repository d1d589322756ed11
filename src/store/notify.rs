//! Wake-ups for lock changes (issue 19 point 2): on PostgreSQL every change
//! of the lock epoch also sends `NOTIFY portcullis_locks` in its
//! transaction (delivered at commit), and each node listens on its own
//! connection. The table stays the truth: a notification only makes the
//! node re-read the epoch at once instead of at its next poll, and a lost
//! listening connection wakes it too (anything sent meanwhile is re-read).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The channel lock changes are announced on.
pub const LOCK_CHANNEL: &str = "portcullis_locks";

/// Sends the lock wake-up inside `tx` when it is a PostgreSQL transaction
/// (SQLite has one node: nothing to wake).
pub(super) async fn announce_locks(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), sqlx::Error> {
    if (**tx).backend_name().eq_ignore_ascii_case("PostgreSQL") {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(LOCK_CHANNEL)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// For a PostgreSQL `url`: a task listening for lock wake-ups, and the
/// `Notify` it pokes (on each notification, and on each lost or
/// re-established connection). `None` for SQLite.
pub fn lock_wakeups(url: &str) -> Option<Arc<Notify>> {
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return None;
    }
    let wake = Arc::new(Notify::new());
    tokio::spawn(listen(url.to_string(), wake.clone()));
    Some(wake)
}

async fn listen(url: String, wake: Arc<Notify>) {
    loop {
        let mut listener = match connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "lock wake-ups: cannot listen; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Listening again: whatever was announced while deaf is re-read.
        wake.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    tracing::debug!("lock wake-up");
                    wake.notify_one();
                }
                // The connection was lost: re-read now, listen afresh.
                Ok(None) | Err(_) => {
                    wake.notify_one();
                    break;
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut l = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::postgres::PgListener::connect(url),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    l.listen(LOCK_CHANNEL).await?;
    Ok(l)
}
