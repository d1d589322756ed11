//! Delivers a rule's notification: one JSON POST, retried with backoff.
//! Runs in its own task, never on a session's path.

use super::RuleError;
use crate::app::App;
use std::sync::OnceLock;
use std::time::Duration;

static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();

fn client(timeout: Duration) -> Result<&'static reqwest::Client, RuleError> {
    CLIENT
        .get_or_init(|| {
            // reqwest is built without a bundled crypto provider: use ours.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| RuleError::Webhook(e.clone()))
}

/// POSTs `body` to `url`, up to `attempts` times (0.5 s, 1 s, 2 s ... apart).
pub async fn deliver(
    app: &App,
    url: &str,
    body: &serde_json::Value,
    attempts: u32,
) -> Result<(), RuleError> {
    let client = client(app.config.lockdown.webhook_timeout)?;
    let mut wait = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.without_url().to_string(),
        }
        tracing::warn!(attempt, error = %last, "webhook delivery failed");
        if attempt < attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
    Err(RuleError::Webhook(last))
}
