//! The admin CLI's kill switch during a database outage (issue 19 point
//! 2). `lock …`, `lockdown --all` and `session kill` open the database
//! like every command; when it cannot be reached, the request is handed
//! to the node serving the same data directory instead: a file in
//! `<data_dir>/handover/`, which that node picks up within its lock poll
//! (200 ms) and runs through the very same `lockdown::create` /
//! `lockdown::terminate` as any door, so it is enforced there at once and
//! stored, with its audit event, when the database answers. Only who can
//! write the data directory (0700, the service account or root: already
//! able to read the KEK and the database) can hand anything over; who
//! acted is the file owner's account, never a name in the file.

use crate::app::App;
use crate::policy::LockScope;
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Handed {
    Lock {
        kind: String,
        value: String,
        reason: String,
        expires_ms: Option<i64>,
    },
    Kill {
        id: String,
        reason: String,
    },
}

fn dir(config: &crate::config::Config) -> PathBuf {
    config.data_dir.join("handover")
}

/// Whether `e` says the database could not be reached.
pub fn unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::store::StoreError>()
            .is_some_and(crate::store::unreachable)
    })
}

/// Hands `what` to the node serving this data directory; fails when none
/// does (nothing would enforce it).
pub fn hand_over(config: &crate::config::Config, what: &Handed) -> anyhow::Result<()> {
    let lock = config.data_dir.join("serve.lock");
    let serving = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock)
        .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
    if !serving {
        bail!(
            "the database does not answer and no portcullis serves {}: nothing was locked \
             (use another node's API, or this command on a node)",
            config.data_dir.display()
        );
    }
    let d = dir(config);
    super::create_private_dir(&d)?;
    let path = d.join(format!("{}.json", crate::ids::new_id()));
    crate::secret_file::write_new(&path, &serde_json::to_vec(what)?)?;
    Ok(())
}

/// Runs what the CLI handed over (called on every lock poll).
pub async fn take(app: &App) {
    let Ok(entries) = std::fs::read_dir(dir(&app.config)) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let (Ok(meta), Ok(bytes)) = (std::fs::metadata(&path), std::fs::read(&path)) else {
            continue;
        };
        // Taken once: gone before it runs.
        if std::fs::remove_file(&path).is_err() {
            continue;
        }
        let actor = actor_of(meta.uid());
        let what: Handed = match serde_json::from_slice(&bytes) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "handed-over request unreadable; ignored");
                continue;
            }
        };
        run(app, what, &actor).await;
    }
}

async fn run(app: &App, what: Handed, actor: &str) {
    match what {
        Handed::Lock {
            kind,
            value,
            reason,
            expires_ms,
        } => {
            let Some(scope) = LockScope::from_parts(&kind, &value) else {
                tracing::error!(
                    kind,
                    value,
                    "handed-over lock with an unknown scope; ignored"
                );
                return;
            };
            let spec = crate::lockdown::LockSpec {
                scope,
                reason,
                author: actor.to_string(),
                expires_ms,
            };
            match crate::lockdown::create(app, spec).await {
                Ok(o) => {
                    tracing::warn!(lock = %o.lock.id, actor, "lock handed over by the CLI in force")
                }
                Err(e) => tracing::warn!(error = %e, actor, "lock handed over by the CLI"),
            }
        }
        Handed::Kill { id, reason } => {
            match crate::lockdown::terminate(app, &id, actor, &reason).await {
                Ok(_) => tracing::warn!(session = %id, actor, "kill handed over by the CLI done"),
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, actor, "kill handed over by the CLI")
                }
            }
        }
    }
}

/// `cli:NAME(uid N)`, as the CLI names itself, for the file's owner.
fn actor_of(uid: u32) -> String {
    let name = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => "?".into(),
    };
    format!("cli:{}(uid {uid})", crate::names::escape_for_log(&name))
}
