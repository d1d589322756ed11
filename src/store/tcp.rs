//! TCP targets: named host:port destinations reached by port forwarding.

use super::{Store, StoreError, TargetRecord};
use sqlx::Row;

/// The two kinds of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Ssh,
    Tcp,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Ssh => "ssh",
            TargetKind::Tcp => "tcp",
        }
    }

    /// Unknown kinds are read as SSH targets, which need a pinned key and a
    /// credential to be reached at all (fail closed).
    fn parse(s: &str) -> TargetKind {
        if s == "tcp" {
            TargetKind::Tcp
        } else {
            TargetKind::Ssh
        }
    }
}

/// A target with its kind and whether its contents are captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindedTarget {
    pub target: TargetRecord,
    pub kind: TargetKind,
    pub capture: bool,
}

impl Store {
    pub async fn add_tcp_target(
        &self,
        name: &str,
        host: &str,
        port: u16,
        capture: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO targets (name, host, port, host_key, created_at, capture_files, kind) \
             VALUES ($1, $2, $3, '', $4, $5, 'tcp')",
        )
        .bind(name)
        .bind(host)
        .bind(i64::from(port))
        .bind(now_ms)
        .bind(i64::from(capture))
        .execute(&self.pool)
        .await;
        super::unique(r, "target", name)
    }

    pub async fn target_kind(&self, name: &str) -> Result<Option<TargetKind>, StoreError> {
        let row = sqlx::query("SELECT kind FROM targets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(TargetKind::parse(&r.try_get::<String, _>(0)?)))
            .transpose()
    }

    /// Every target with its kind, by name.
    pub async fn kinded_targets(&self) -> Result<Vec<KindedTarget>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, host, port, host_key, kind, capture_files FROM targets ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let port: i64 = r.try_get(2)?;
                Ok(KindedTarget {
                    target: TargetRecord {
                        name: r.try_get(0)?,
                        host: r.try_get(1)?,
                        port: u16::try_from(port).unwrap_or(0),
                        host_key: r.try_get(3)?,
                    },
                    kind: TargetKind::parse(&r.try_get::<String, _>(4)?),
                    capture: r.try_get::<i64, _>(5)? != 0,
                })
            })
            .collect()
    }
}

/// TCP-target checks, run by `store::tests` on SQLite and PostgreSQL.
#[cfg(test)]
pub(super) async fn exercise_tcp(store: &Store) {
    store
        .add_tcp_target("tcpdb9", "127.0.0.1", 5432, true, 1)
        .await
        .unwrap();
    assert!(matches!(
        store.add_tcp_target("tcpdb9", "h", 1, false, 2).await,
        Err(StoreError::Exists { .. })
    ));
    assert_eq!(
        store.target_kind("tcpdb9").await.unwrap(),
        Some(TargetKind::Tcp)
    );
    assert_eq!(store.target_kind("nope-tcp").await.unwrap(), None);
    let all = store.kinded_targets().await.unwrap();
    let t = all.iter().find(|t| t.target.name == "tcpdb9").unwrap();
    assert!(t.capture && t.target.host_key.is_empty() && t.kind == TargetKind::Tcp);
    assert_eq!(t.target.port, 5432);
    assert!(
        all.iter()
            .filter(|t| t.target.name != "tcpdb9")
            .all(|t| t.kind == TargetKind::Ssh)
    );
    // ProxyJump lookups never see a TCP target.
    assert!(
        store
            .targets_named_or_at("tcpdb9")
            .await
            .unwrap()
            .is_empty()
    );
}
