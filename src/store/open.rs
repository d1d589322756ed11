//! Opening the database: for writing (`serve` and the commands that change
//! something: migrations, then the audit table's guards) and for reading
//! only (issue 15 point 3: the listings, `verify`, `audit verify|list|export`
//! and `kek status` create no database, run no migration, install no trigger
//! and change no file).
//!
//! SQLite in WAL mode needs `-wal` and `-shm` files beside the database even
//! to read, and a read-only connection creates them and leaves them behind.
//! So: when the `-wal` file is absent or empty, it holds nothing to read (a
//! command that wrote leaves it so: [`settle_wal`]), and the file is opened
//! `immutable`: no lock, no side file, nothing written. When it holds
//! frames, a bastion is running (or one stopped uncleanly), and reading
//! through the WAL is the only way to see its latest rows: the connection is
//! opened read-only (`mode=ro`), which writes nothing to the database or the
//! WAL but, like any reader, keeps its read marks in the existing `-shm`.
//! The cost of `immutable`: a writer that starts and checkpoints during a
//! listing can make that listing fail (never change the file).
//!
//! PostgreSQL connections are made read-only sessions, so even a bug here
//! could not write.

use super::{Store, StoreError, audit};
use sqlx::ConnectOptions;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer; more connections only add lock waits.
            .max_connections(if sqlite { 4 } else { 16 })
            // A database that does not answer fails a statement in seconds,
            // not the default 30 s (issue 19: an outage must be visible).
            .acquire_timeout(Duration::from_secs(if sqlite { 30 } else { 5 }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        // Commits are not synced, except the audit chain's,
                        // which sync everything before them (audit_batch.rs).
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        // Sorts and temporary tables in memory, not in a
                        // file created and deleted per statement.
                        sqlx::query("PRAGMA temp_store = MEMORY")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        audit::install_audit_guards(&pool).await?;
        Ok(Store {
            pool,
            audit: audit::AuditHook::default(),
            node_run: Default::default(),
            deferred: Default::default(),
        })
    }

    /// Opens the database at `url` for reading only. Fails, creating
    /// nothing, when it does not exist or its schema is older than this
    /// binary's (only a command that writes brings it up to date).
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = if url.starts_with("sqlite:") {
            sqlite_pool(url).await?
        } else {
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await?
        };
        check_schema(&pool).await?;
        Ok(Store {
            pool,
            audit: audit::AuditHook::default(),
            node_run: Default::default(),
            deferred: Default::default(),
        })
    }
}

/// The file a SQLite URL names.
pub fn sqlite_file(url: &str) -> Result<PathBuf, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .get_filename()
        .to_path_buf())
}

async fn sqlite_pool(url: &str) -> Result<sqlx::AnyPool, StoreError> {
    let file = sqlite_file(url)?;
    if !file.is_file() {
        return Err(StoreError::NoDatabase {
            path: file.display().to_string(),
        });
    }
    let live = wal_has_frames(&file);
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .read_only(true)
        .immutable(!live);
    // The Any pool takes a URL: the options' own, with mode=ro (and immutable).
    let url = options.to_url_lossy();
    Ok(AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Per connection, writes nothing: waits out a writer's lock.
                sqlx::query("PRAGMA busy_timeout = 5000")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(url.as_str())
        .await?)
}

/// Every migration this binary knows must have been applied.
async fn check_schema(pool: &sqlx::AnyPool) -> Result<(), StoreError> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(pool)
        .await
        .map_err(|_| StoreError::NotPortcullis)?;
    let missing = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter(|m| !applied.contains(&m.version))
        .count();
    if missing > 0 {
        return Err(StoreError::SchemaBehind { missing });
    }
    Ok(())
}

/// After a command that wrote has closed its pool: folds the WAL into the
/// database and truncates it to nothing (`wal_checkpoint(TRUNCATE)`), so a
/// later read finds an empty WAL and opens the file `immutable`. The pool's
/// own last close would do this too, but only a connection that finds itself
/// the last one does, and closing several at once leaves that to chance.
/// While a running bastion is reading, the checkpoint does what it can and
/// the WAL keeps the rest.
pub async fn settle_wal(url: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    if !url.starts_with("sqlite:") || !wal_has_frames(&sqlite_file(url)?) {
        return Ok(());
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(1));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Whether the database's `-wal` file holds anything (a live writer's rows,
/// or ones not yet folded in); an empty or absent one holds nothing to read.
fn wal_has_frames(db: &std::path::Path) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(std::path::Path::new(&wal)).is_ok_and(|m| m.len() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write through the store's own pool, as a bug in a listing would try.
    async fn try_write(store: &Store) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO users (name, password_hash, created_at) VALUES ('mallory', NULL, 1)",
        )
        .execute(&store.pool)
        .await
        .map(|_| ())
    }

    #[tokio::test]
    async fn sqlite_read_only_creates_nothing_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let missing = Store::open_read_only(&url).await.unwrap_err();
        assert!(
            matches!(missing, StoreError::NoDatabase { .. }),
            "{missing}"
        );
        assert!(!db.exists(), "a read made the database");

        std::fs::write(&db, b"").unwrap();
        let empty = Store::open_read_only(&url).await.unwrap_err();
        assert!(matches!(empty, StoreError::NotPortcullis), "{empty}");

        std::fs::remove_file(&db).unwrap();
        let writer = Store::connect(&url).await.unwrap();
        writer.add_user("alice", None, 1).await.unwrap();
        writer.close().await;
        settle_wal(&url).await.unwrap();
        let files = || {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = files();
        let store = Store::open_read_only(&url).await.unwrap();
        assert_eq!(store.list_users().await.unwrap().len(), 1);
        assert!(try_write(&store).await.is_err(), "a read-only store wrote");
        store.close().await;
        assert_eq!(files(), before);
    }

    #[tokio::test]
    async fn postgres_read_only_neither_migrates_nor_writes() {
        let base = std::env::var("PORTCULLIS_TEST_PG_URL").expect(
            "PORTCULLIS_TEST_PG_URL is not set: run the tests through .ci/run, which starts PostgreSQL",
        );
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&base).await.unwrap();
        let schema = format!("ro{}", std::process::id());
        for q in [
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            format!("CREATE SCHEMA {schema}"),
        ] {
            sqlx::query(&q).execute(&admin).await.unwrap();
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let tables = || async {
            let q = format!(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema}'"
            );
            sqlx::query_scalar::<_, i64>(&q)
                .fetch_one(&admin)
                .await
                .unwrap()
        };
        let fresh = Store::open_read_only(&url).await.unwrap_err();
        assert!(matches!(fresh, StoreError::NotPortcullis), "{fresh}");
        assert_eq!(tables().await, 0, "a read created tables");

        let writer = Store::connect(&url).await.unwrap();
        writer.add_user("alice", None, 1).await.unwrap();
        writer.close().await;
        let store = Store::open_read_only(&url).await.unwrap();
        assert_eq!(store.list_users().await.unwrap().len(), 1);
        let err = try_write(&store).await.unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        store.close().await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}
