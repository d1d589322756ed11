//! What a node does while its database does not answer (issue 19 point 3).
//!
//! A probe every half second decides whether the database answers
//! (`app.db`). While it does not: new logins are refused at once with a
//! message the user reads (`gateway`), `/health` says why, locks and kills
//! made here are enforced here and kept (`lockdown`), and session ends,
//! recording seals and kill-switch audit events wait in the store. Live
//! sessions follow `[cluster] on_db_outage`: `end` ends them at once;
//! `keep` lets them go on, recorded to their files — until this node has
//! gone `node_expiry × 2/3` without writing its heartbeat: then it ends
//! them itself (fencing), before any other node may take it for dead and
//! seal its recordings. When the database answers again: the kept locks,
//! then the kept writes, are written; every lock is read again; and this
//! run's session rows that are no longer live here are closed.

use crate::app::App;
use crate::clock::now_ms;
use crate::config::OnDbOutage;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the database is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// What a user whose session the outage ends reads.
pub const ENDED: &str = "portcullis cannot reach its database";

/// How long without a written heartbeat before this node ends its own
/// sessions: a third of `node_expiry` before other nodes may claim it.
pub fn fence_after(config: &crate::config::Config) -> Duration {
    config.cluster.node_expiry * 2 / 3
}

pub async fn watch(app: Arc<App>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fence = fence_after(&app.config);
    let mut fenced = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        match tokio::time::timeout(PROBE_LIMIT, app.store.ping()).await {
            Ok(Ok(())) => {
                let was_down = app.db.answered();
                if was_down {
                    tracing::warn!("the database answers again");
                }
                if was_down || app.store.deferred_len() > 0 || !app.locks.pending().is_empty() {
                    back(&app).await;
                }
            }
            Ok(Err(e)) => down(&app, &format!("database error: {e}")).await,
            Err(_) => down(&app, "the database did not answer within 2 s").await,
        }
        if app.db.since_beat() < fence {
            fenced = false;
        } else if app.node.is_some() && !fenced && !app.config.database_url.starts_with("sqlite:") {
            fenced = true;
            tracing::error!(
                after = ?app.db.since_beat(),
                "no heartbeat written for two thirds of node_expiry: ending this node's sessions before another node may claim them"
            );
            end_all(&app, &format!("{ENDED} (this node is fenced off)"));
        }
    }
}

async fn down(app: &App, why: &str) {
    if !app.db.failed(why, now_ms()) {
        return;
    }
    tracing::error!(reason = %why, policy = ?app.config.cluster.on_db_outage, "the database does not answer: new logins are refused");
    if app.config.cluster.on_db_outage == OnDbOutage::End {
        end_all(app, ENDED);
    }
}

/// Ends every live thing on this node, telling each user why.
fn end_all(app: &App, why: &str) {
    let at = Instant::now();
    let ended = app.registry.kill_where(|_| Some(why.to_string()), at);
    if !ended.is_empty() {
        tracing::warn!(sessions = ended.len(), reason = %why, "live sessions ended");
    }
}

/// The database answers again: write what waited, read every lock, close
/// what is no longer live here.
async fn back(app: &App) {
    match crate::lockdown::store_pending(app).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(locks = n, "locks made during the outage stored"),
        Err(e) => {
            tracing::warn!(error = %e, "locks made during the outage not stored yet");
            return;
        }
    }
    match app.store.flush_deferred().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(writes = n, "writes kept through the outage written"),
        Err(e) => {
            tracing::warn!(error = %e, "writes kept through the outage not written yet");
            return;
        }
    }
    app.locks.forget_epoch();
    if let Err(e) = crate::lockdown::refresh(app).await {
        tracing::warn!(error = %e, "locks not read again after the outage");
    }
    reconcile(app).await;
}

/// This run's session rows still live in the database but not here.
async fn reconcile(app: &App) {
    let Some(me) = &app.node else { return };
    let ids = match app.store.live_sessions_of_run(Some(&me.run)).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this node's live session rows");
            return;
        }
    };
    for id in ids.into_iter().filter(|id| app.registry.get(id).is_none()) {
        let end = crate::store::SessionEnd {
            ended_ms: now_ms(),
            reason: "ended during a database outage".into(),
            bytes_up: 0,
            bytes_down: 0,
        };
        match app.store.close_session_once(&id, &end).await {
            Ok(true) => tracing::warn!(session = %id, "session row closed after the outage"),
            Ok(false) => {}
            Err(e) => tracing::warn!(session = %id, error = %e, "session row not closed"),
        }
    }
}
