//! `portcullis serve`: telemetry, state, listener, and a clean shutdown.

use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::config::{Config, LogFormat};
use crate::gateway;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    init_tracing(config.log_format);
    // One TLS crypto provider for the process (admin API, webhooks).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    super::create_private_dir(&config.data_dir)?;
    // Held until exit: a second server on this directory would seal the
    // first one's open recordings as cut short while they are being written.
    let _one_server = lock_data_dir(&config.data_dir)?;
    let (store, vault) = super::open(&config).await?;
    let host_keys = gateway::keys::load_or_generate(&config.host_keys, &config.data_dir)?;
    for k in &host_keys {
        tracing::info!(fingerprint = %gateway::keys::fingerprint(k.public_key()), "host key");
    }
    let host_ca = gateway::hostca::HostCa::load_or_generate(&config.host_ca_file)?;
    let listen = config.listen;
    // A provider whose client secret cannot be read stops the start.
    crate::sso::Sso::new(&config.sso)?;
    let audit_key = crate::castfile::load_or_create(&config.audit_key_file)?;
    let (node, dir_id) = super::cluster::node_name(&config)?;
    super::cluster::check_shared_keys(
        &config, &store, &node, &dir_id, &vault, &audit_key, &host_ca,
    )
    .await?;
    let run = super::cluster::start_run(&config, &store, &node, &dir_id).await?;
    super::create_private_dir(&config.recordings_dir)?;
    let shutdown = CancellationToken::new();
    // Before anything is appended, so the stream starts with this run's first event.
    let stream =
        audit::stream::spawn(store.clone(), &config.audit.stream, shutdown.clone()).await?;
    let app = App::new(config, store, vault, audit_key);
    crate::recorder::recover(&app).await;
    refresh_blocks(&app).await;
    // Fail closed: a bastion that cannot read its locks does not open.
    crate::lockdown::refresh(&app)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load locks: {e}"))?;
    let api = start_api(&app, &shutdown).await?;
    // The SSH port opens last: once it accepts, every fallible step of the
    // start is behind us, so a client (or a supervisor's probe) never reaches
    // a bastion that is about to exit.
    let listener = gateway::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "portcullis listening");
    let steps = gateway::Shutdown::default();
    let server = tokio::spawn(gateway::serve(
        app.clone(),
        listener,
        host_keys,
        host_ca,
        steps.clone(),
    ));
    // Cancelled when another node declared this one dead: stop serving.
    let fatal = CancellationToken::new();
    // Writes that fail for want of the database wait for it (PostgreSQL).
    app.store.defer_writes_in_outage(&app.config.database_url);
    let outage = tokio::spawn(super::outage::watch(app.clone(), shutdown.clone()));
    let wake = crate::store::notify::lock_wakeups(&app.config.database_url);
    let chores = tokio::spawn(chores(app.clone(), shutdown.clone(), wake));
    // Its own task: a long chore (retention pruning) must not delay a
    // heartbeat until other nodes take this one for dead.
    let beats = tokio::spawn(super::cluster::heartbeats(
        app.clone(),
        shutdown.clone(),
        fatal.clone(),
    ));
    tokio::select! {
        () = wait_for_signal() => {}
        () = fatal.cancelled() => {}
    }
    // The door first; the kill switch (API, chores) keeps working while
    // live sessions use their grace. `/health` says so to the balancer.
    app.draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    steps.stop_accepting.cancel();
    let _ = server.await;
    let grace = app.config.limits.shutdown_grace;
    let live = app.registry.len();
    tracing::info!(
        live,
        grace_secs = grace.as_secs(),
        "shutting down: no new connections"
    );
    tell_live_users(&app, grace);
    app.tasks.close();
    tokio::select! {
        () = app.tasks.wait() => {}
        () = tokio::time::sleep(grace) => {}
        () = wait_for_signal() => tracing::info!("second signal: not waiting the grace out"),
        () = fatal.cancelled() => {}
    }
    steps.end_connections.cancel();
    // Each connection writes its end row and each recorder its trailer.
    if tokio::time::timeout(FINISH_LIMIT, app.tasks.wait())
        .await
        .is_err()
    {
        tracing::error!(limit = ?FINISH_LIMIT, "sessions or recorders still finishing; stopping anyway (their recordings are sealed as cut short at the next start)");
    }
    shutdown.cancel();
    let _ = chores.await;
    let _ = beats.await;
    let _ = outage.await;
    if let Some(s) = stream {
        let _ = s.await;
    }
    if let Some(api) = api {
        let _ = api.await;
    }
    match app.store.node_stopped(&run).await {
        Ok(true) => tracing::info!(node, "node stopped cleanly"),
        Ok(false) => tracing::warn!(
            node,
            "node stopped with sessions or recordings still open: another node (or this one's next start) closes them"
        ),
        Err(e) => tracing::warn!(error = %e, "node stop not written"),
    }
    app.store.close().await;
    if fatal.is_cancelled() {
        anyhow::bail!("another node declared node {node} dead; restart it");
    }
    Ok(())
}

/// How long ended sessions may take to write their rows and trailers.
const FINISH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Tells every live session's terminal that the bastion is stopping.
fn tell_live_users(app: &App, grace: std::time::Duration) {
    let text = format!(
        "\r\nportcullis: the bastion is shutting down; this session ends in {} s\r\n",
        grace.as_secs()
    );
    for s in app.registry.list() {
        if let Some(n) = &s.notices {
            let _ = n.send(bytes::Bytes::from(text.clone()));
        }
    }
}

fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another portcullis is serving {} (it holds {}); one server per data directory",
            dir.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::anyhow!("locking {}: {e}", path.display()))
        }
    }
}

/// The admin API beside the gateway. A TLS problem (bad certificate, key or
/// client CA) stops the bastion; an address already in use only disables the
/// API, so SSH service does not depend on it.
async fn start_api(
    app: &Arc<App>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    match crate::admin::start(app.clone(), shutdown.clone()).await {
        Ok(Some((_, task))) => Ok(Some(task)),
        Ok(None) => Ok(None),
        Err(e @ crate::admin::AdminError::Bind { .. }) => {
            tracing::error!(error = %e, "admin API disabled");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Periodic work: follow locks made elsewhere, reload source blocks,
/// summarise failed logins, apply retention.
async fn chores(
    app: Arc<App>,
    shutdown: CancellationToken,
    wake: Option<Arc<tokio::sync::Notify>>,
) {
    // PostgreSQL's LISTEN/NOTIFY wakes the lock reload at once; the poll
    // stays as the safety net (and is all SQLite needs).
    let woken = async || match &wake {
        Some(w) => w.notified().await,
        None => std::future::pending().await,
    };
    let mut locks = tokio::time::interval(LOCK_POLL);
    locks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut blocks = tokio::time::interval(Duration::from_secs(2));
    let mut tally = tokio::time::interval(Duration::from_secs(30));
    let mut retention = tokio::time::interval(Duration::from_secs(3600));
    let mut space = tokio::time::interval(Duration::from_secs(2));
    let mut level = crate::recorder::space::Level::Ok;
    loop {
        tokio::select! {
            _ = locks.tick() => {
                refresh_locks(&app).await;
                super::handover::take(&app).await;
            }
            () = woken() => refresh_locks(&app).await,
            _ = blocks.tick() => refresh_blocks(&app).await,
            _ = tally.tick() => {
                flush_failures(&app).await;
                flush_forward_summaries(&app).await;
            }
            _ = retention.tick() => apply_retention(&app).await,
            _ = space.tick() => crate::recorder::space::watch(&app, &mut level).await,
            _ = shutdown.cancelled() => break,
        }
    }
    flush_failures(&app).await;
    flush_forward_summaries(&app).await;
}

/// One row per user whose forwards went past the per-user cap since the
/// last flush: how many, bytes both ways, the destinations.
async fn flush_forward_summaries(app: &App) {
    for (user, totals) in app.caps.summary.drain() {
        let event = AuditEvent::ForwardSummary {
            user,
            marker: false,
            totals,
        };
        if let Err(e) = audit::record(&app.store, event).await {
            tracing::error!(error = %e, "forward summary not written");
        }
    }
}

/// How often the lock epoch is polled: a lock made by the CLI or another
/// node ends matching sessions here within about this long.
const LOCK_POLL: Duration = Duration::from_millis(200);

async fn refresh_locks(app: &App) {
    match crate::lockdown::refresh(app).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(sessions = n, "locks made elsewhere ended sessions"),
        // Keep the last locks: a database hiccup must not lift one.
        Err(e) => tracing::warn!(error = %e, "cannot reload locks"),
    }
}

async fn refresh_blocks(app: &App) {
    match app.store.source_blocks().await {
        Ok(list) => {
            let nets = list
                .iter()
                .filter_map(|b| {
                    crate::lockdown::parse_cidr(&b.cidr)
                        .ok()
                        .map(|n| (n, b.expires_ms))
                })
                .collect();
            app.blocks.replace(nets);
        }
        // Keep the last list: a database hiccup must not lift a block.
        Err(e) => tracing::warn!(error = %e, "cannot reload source blocks"),
    }
}

/// Deletes recordings past the configured retention, hourly, as an audited action.
async fn apply_retention(app: &App) {
    let Some(days) = app.config.recordings_retention_days else {
        return;
    };
    let secs = days.saturating_mul(86_400);
    match crate::recorder::prune(
        &app.store,
        &app.config.recordings_dir,
        secs,
        "portcullis (retention)",
    )
    .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, days, "recordings past retention deleted"),
        Err(e) => tracing::error!(error = %e, "retention pruning failed"),
    }
}

/// The failures since the last flush as a bounded summary (per network and
/// factor, per username, the rest counted): a spray cannot fill the table.
async fn flush_failures(app: &App) {
    let (tally, overflow) = app.throttle.drain_tally();
    let failed: Vec<audit::failures::Failed> = tally
        .into_iter()
        .map(|t| audit::failures::Failed {
            username: t.user,
            source: t.source,
            factor: t.factor.to_string(),
            count: t.count,
        })
        .collect();
    for row in audit::failures::summarise(&failed, overflow) {
        if let Err(e) = audit::record(&app.store, AuditEvent::LoginFailureSummary(row)).await {
            tracing::error!(error = %e, "failed-login summary not written");
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
