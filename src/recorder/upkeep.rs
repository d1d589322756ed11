//! Recorder upkeep outside a live channel: the search index of a sealed
//! recording, sealing what a crash left open, and audited pruning.

use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::castfile::TrailerInfo;
use crate::clock::now_ms;
use std::sync::Arc;

/// Writes the signed trailer and stores the recording as closed: the end of
/// every recording, a session channel's or a forward's capture.
pub(crate) async fn seal(
    store: &crate::store::Store,
    name: &str,
    w: crate::castfile::RecordingWriter,
    info: &TrailerInfo,
) -> Result<(), String> {
    let trailer = tokio::task::block_in_place(|| w.finish(info))
        .map_err(|e| format!("recording {name} not sealed: {e}"))?;
    store
        .recording_checkpoint(
            name,
            trailer.events as i64,
            trailer.cast_bytes as i64,
            &trailer.sha256,
            now_ms(),
            "closed",
        )
        .await
        .map_err(|e| format!("recording end not stored: {e}"))
}

/// Indexes a sealed recording's words for search, off the data path.
pub(super) fn index(app: Arc<App>, name: String, cast: std::path::PathBuf) {
    // Tracked: a graceful stop waits for the index before the store closes.
    app.tasks.clone().spawn(async move {
        let words =
            tokio::task::spawn_blocking(move || crate::castfile::words::of_cast(&cast)).await;
        match words {
            Ok(Ok((w, complete))) => {
                let w: Vec<String> = w.into_iter().collect();
                if let Err(e) = app.store.index_recording(&name, &w, complete).await {
                    tracing::warn!(recording = %name, error = %e, "search index not written");
                }
            }
            _ => tracing::warn!(recording = %name, "cannot index recording for search"),
        }
    });
}

/// Seals recordings a crash left open, with a "cut short" trailer.
pub async fn recover(app: &Arc<App>) {
    let open = match app.store.recordings_in_state("open").await {
        Ok(o) => o,
        Err(e) => return tracing::error!(error = %e, "cannot list open recordings"),
    };
    for r in open {
        let info = TrailerInfo {
            bytes_up: 0,
            bytes_down: 0,
            end_reason: "cut short: portcullis stopped during the session".into(),
            ended_at_ms: now_ms(),
        };
        let dir = app.config.recordings_dir.clone();
        let key = &app.audit_key;
        let witness = witness_of(&r);
        match tokio::task::block_in_place(|| {
            crate::castfile::seal_cut_short_witnessed(&dir, &r.name, key, &info, Some(&witness))
        }) {
            Ok(t) => {
                let _ = app
                    .store
                    .recording_checkpoint(
                        &r.name,
                        t.events as i64,
                        t.cast_bytes as i64,
                        &t.sha256,
                        now_ms(),
                        "cut_short",
                    )
                    .await;
                let _ = app
                    .store
                    .session_ended(
                        &r.session_id,
                        &crate::store::SessionEnd {
                            ended_ms: now_ms(),
                            reason: "cut short: portcullis stopped".into(),
                            bytes_up: 0,
                            bytes_down: 0,
                        },
                    )
                    .await;
                let _ = audit::record(
                    &app.store,
                    AuditEvent::RecordingCutShort {
                        session: r.session_id.clone(),
                        recording: r.name.clone(),
                        events: t.events,
                        unsigned_events: t.unsigned_events,
                        chain_rebuilt: t.chain_rebuilt,
                    },
                )
                .await;
                tracing::warn!(recording = %r.name, events = t.events, "recording sealed as cut short");
                index(
                    app.clone(),
                    r.name.clone(),
                    dir.join(format!("{}.cast", r.name)),
                );
            }
            Err(e) => refused(app, &r, &e).await,
        }
    }
}

/// What the database recorded of `r`, for checking its files.
pub(crate) fn witness_of(r: &crate::store::RecordingRow) -> crate::castfile::Witness {
    crate::castfile::Witness {
        session: r.session_id.clone(),
        events: u64::try_from(r.events).unwrap_or(u64::MAX),
        cast_bytes: u64::try_from(r.cast_bytes).unwrap_or(u64::MAX),
        sha256: r.sha256.clone(),
        sealed: matches!(r.state.as_str(), "closed" | "cut_short"),
    }
}

/// A recording recovery will not sign: audited, and when its files disagree
/// with themselves or the database it is marked failed (keeping the
/// database's checkpoint) so no later start signs it either. I/O trouble
/// leaves it open for the next start.
async fn refused(
    app: &Arc<App>,
    r: &crate::store::RecordingRow,
    e: &crate::castfile::RecordingError,
) {
    tracing::error!(recording = %r.name, error = %e, "cannot seal cut-short recording");
    if matches!(e, crate::castfile::RecordingError::Integrity { .. }) {
        let marked = app
            .store
            .recording_checkpoint(
                &r.name,
                r.events,
                r.cast_bytes,
                &r.sha256,
                now_ms(),
                "failed",
            )
            .await;
        if let Err(e) = marked {
            tracing::error!(recording = %r.name, error = %e, "cannot mark recording failed");
        }
        // The session is over either way (the bastion stopped during it).
        let ended = app
            .store
            .session_ended(
                &r.session_id,
                &crate::store::SessionEnd {
                    ended_ms: now_ms(),
                    reason: "cut short: portcullis stopped; recording not sealed".into(),
                    bytes_up: 0,
                    bytes_down: 0,
                },
            )
            .await;
        if let Err(e) = ended {
            tracing::error!(session = %r.session_id, error = %e, "cannot mark session ended");
        }
    }
    let audited = audit::record(
        &app.store,
        AuditEvent::RecordingFailed {
            session: r.session_id.clone(),
            recording: r.name.clone(),
            error: format!("recovery refused to seal it: {e}"),
        },
    )
    .await;
    if let Err(e) = audited {
        tracing::error!(recording = %r.name, error = %e, "recording.failed not audited");
    }
}

/// Deletes recordings (files, rows, index) that started more than `secs`
/// ago; never an open one. Audited as one event with the count.
pub async fn prune(
    store: &crate::store::Store,
    dir: &std::path::Path,
    secs: u64,
    actor: &str,
) -> anyhow::Result<usize> {
    let cutoff = now_ms() - i64::try_from(secs)?.saturating_mul(1000);
    let mut n = 0;
    for r in store.all_recordings().await? {
        if r.started_ms >= cutoff || r.state == "open" {
            continue;
        }
        for ext in ["cast", "chain"] {
            let p = dir.join(format!("{}.{ext}", r.name));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("removing {}: {e}", p.display()),
            }
        }
        // Kept file contents (sftp copies, transfer streams) go with it.
        let files = dir.join(format!("{}.files", r.name));
        match std::fs::remove_dir_all(&files) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("removing {}: {e}", files.display()),
        }
        store.remove_recording(&r.name).await?;
        n += 1;
    }
    if n > 0 {
        audit::record(
            store,
            AuditEvent::RecordingsPruned {
                actor: actor.to_string(),
                count: n,
                older_than_days: secs / 86400,
            },
        )
        .await?;
    }
    Ok(n)
}
