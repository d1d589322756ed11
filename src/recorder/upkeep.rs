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

/// Start-up recovery (issue 19: only what is this node's own, or a dead
/// node's): claims this node's earlier runs (the data directory's lock, or
/// the wait in `serve` for a configured `node_name`, proves they are gone)
/// and every run whose heartbeat expired, then closes what they left open;
/// rows from before node identity only when no other node is alive.
pub async fn recover(app: &Arc<App>) {
    reap(app, true).await;
    let Some(me) = &app.node else { return };
    let cutoff = now_ms() - expiry_ms(app);
    match app.store.node_runs_up(&me.run).await {
        Ok(runs) if runs.iter().all(|r| r.heartbeat_ms < cutoff) => {
            close_run(app, None, "portcullis stopped").await;
        }
        Ok(_) => tracing::info!(
            "another node is alive: recordings and sessions without a node are left to their holder"
        ),
        Err(e) => tracing::error!(error = %e, "cannot list nodes"),
    }
}

fn expiry_ms(app: &App) -> i64 {
    i64::try_from(app.config.cluster.node_expiry.as_millis()).unwrap_or(i64::MAX)
}

/// Claims runs that are gone — this node's earlier runs too when
/// `starting` — and closes what they held, each exactly once whichever
/// node notices (the claim is one conditional update), with a
/// `node.found_dead` event. Called at start and on every heartbeat.
pub async fn reap(app: &Arc<App>, starting: bool) {
    let Some(me) = &app.node else { return };
    let now = now_ms();
    let cutoff = now - expiry_ms(app);
    let runs = match app.store.node_runs_up(&me.run).await {
        Ok(r) => r,
        Err(e) => return tracing::warn!(error = %e, "cannot list nodes"),
    };
    let mut fresh = std::collections::HashSet::new();
    for r in runs {
        let own = starting && r.node == me.node;
        if !own && r.heartbeat_ms >= cutoff {
            continue;
        }
        match app
            .store
            .claim_node_run(&r.run_id, &me.run, now, cutoff, own)
            .await
        {
            Ok(true) => {
                tracing::warn!(node = %r.node, run = %r.run_id, "node found dead: closing what it held");
                fresh.insert(r.run_id.clone());
                // Runs it had claimed but not finished closing are ours now.
                if let Err(e) = app.store.adopt_node_claims(&r.run_id, &me.run).await {
                    tracing::error!(error = %e, "cannot take over a dead node's claims");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim a silent node"),
        }
    }
    let claims = match app.store.node_claims_of(&me.run).await {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "cannot list claimed nodes"),
    };
    // Claims left unfinished (a recording that could not be sealed for an
    // I/O reason, or a claimer that died) are retried at start only.
    for r in claims
        .into_iter()
        .filter(|r| starting || fresh.contains(&r.run_id))
    {
        let why = if r.node == me.node {
            "portcullis stopped".to_string()
        } else {
            format!(
                "node {} stopped answering; closed by node {}",
                r.node, me.node
            )
        };
        let (sessions, recordings) = close_run(app, Some(&r.run_id), &why).await;
        if !fresh.contains(&r.run_id) && sessions + recordings == 0 {
            continue;
        }
        let event = AuditEvent::NodeFoundDead {
            node: r.node.clone(),
            run: r.run_id.clone(),
            found_by: me.node.clone(),
            sessions,
            recordings,
        };
        if let Err(e) = audit::record(&app.store, event).await {
            // Not marked cleaned: the next start closes (nothing) and audits again.
            tracing::error!(error = %e, "node.found_dead not audited");
            continue;
        }
        match app.store.open_recordings_of_run(Some(&r.run_id)).await {
            Ok(left) if left.is_empty() => {}
            Ok(left) => {
                tracing::error!(run = %r.run_id, open = left.len(), "recordings of a dead node left open: retried at this node's next start");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list open recordings");
                continue;
            }
        }
        if let Err(e) = app.store.node_cleaned(&r.run_id, now_ms()).await {
            tracing::error!(error = %e, "cannot mark a dead node's run cleaned");
        }
    }
}

/// Seals the recordings `run` left open with a "cut short" trailer and
/// ends its sessions that have no end row (`None`: rows written before
/// node identity). Counts what this call closed.
async fn close_run(app: &Arc<App>, run: Option<&str>, why: &str) -> (usize, usize) {
    // Sessions first, so the count is of sessions, whatever sealing does.
    let mut ended = 0;
    match app.store.live_sessions_of_run(run).await {
        Ok(ids) => {
            for id in ids {
                let end = crate::store::SessionEnd {
                    ended_ms: now_ms(),
                    reason: format!("cut short: {why}"),
                    bytes_up: 0,
                    bytes_down: 0,
                };
                match app.store.close_session_once(&id, &end).await {
                    Ok(true) => ended += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(session = %id, error = %e, "cannot mark session ended")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list live sessions"),
    }
    let open = match app.store.open_recordings_of_run(run).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "cannot list open recordings");
            return (ended, 0);
        }
    };
    let mut sealed = 0;
    for r in open {
        if seal_cut_short(app, &r, why).await {
            sealed += 1;
        }
    }
    (ended, sealed)
}

/// One recording a stopped run left open: sealed as cut short and audited.
async fn seal_cut_short(app: &Arc<App>, r: &crate::store::RecordingRow, why: &str) -> bool {
    let info = TrailerInfo {
        bytes_up: 0,
        bytes_down: 0,
        end_reason: format!("cut short: {why} during the session"),
        ended_at_ms: now_ms(),
    };
    let dir = app.config.recordings_dir.clone();
    let key = &app.audit_key;
    let witness = witness_of(r);
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
            let end = crate::store::SessionEnd {
                ended_ms: now_ms(),
                reason: format!("cut short: {why}"),
                bytes_up: 0,
                bytes_down: 0,
            };
            let _ = app.store.close_session_once(&r.session_id, &end).await;
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
            true
        }
        Err(e) => {
            refused(app, r, &e).await;
            false
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
            .close_session_once(
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
