//! `portcullis serve`: telemetry, state, listener, and a clean shutdown.

use crate::app::App;
use crate::config::{Config, LogFormat};
use crate::gateway;
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
    let (store, vault) = super::open(&config).await?;
    let host_keys = gateway::keys::load_or_generate(&config.host_keys, &config.data_dir)?;
    for k in &host_keys {
        tracing::info!(fingerprint = %gateway::keys::fingerprint(k.public_key()), "host key");
    }
    let listener = gateway::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = App::new(config, store, vault);
    let shutdown = CancellationToken::new();
    tracing::info!(%addr, "portcullis listening");
    let server = tokio::spawn(gateway::serve(
        app.clone(),
        listener,
        host_keys,
        shutdown.clone(),
    ));
    wait_for_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = server.await;
    app.store.close().await;
    Ok(())
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
