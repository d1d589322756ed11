//! Streams appended events to stdout or syslog as JSON lines.
//!
//! The streamer follows the chain in the database from the head it finds at
//! start, so it sees every event — this process's, the admin CLI's and other
//! nodes' — and the append path never waits for it: an append only commits
//! its row. The lag is bounded: a sink slower than the events falls behind by
//! at most `MAX_LAG` rows, then the streamer skips ahead, counts what it
//! dropped (`Health::dropped`) and warns. A sink that errors or stalls past
//! `SEND_TIMEOUT` loses that line, counted the same way.

use super::{AuditEntry, AuditError, Health};
use crate::config::{AuditStream, SyslogAddress};
use crate::store::{AuditFilter, Store};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(200);
const PAGE: i64 = 500;
const MAX_LAG: i64 = 10_000;
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Syslog facility authpriv (10).
const FACILITY: u8 = 10;

enum Sink {
    Stdout(tokio::io::Stdout),
    Unix(tokio::net::UnixDatagram, std::path::PathBuf),
    Udp(tokio::net::UdpSocket),
}

impl Sink {
    async fn open(stream: &AuditStream) -> Result<Option<Sink>, AuditError> {
        let err = |e: std::io::Error| AuditError::Stream(e.to_string());
        Ok(Some(match stream {
            AuditStream::None => return Ok(None),
            AuditStream::Stdout => Sink::Stdout(tokio::io::stdout()),
            AuditStream::Syslog(SyslogAddress::Unix(path)) => Sink::Unix(
                tokio::net::UnixDatagram::unbound().map_err(err)?,
                path.clone(),
            ),
            AuditStream::Syslog(SyslogAddress::Udp(hostport)) => {
                let addr = tokio::net::lookup_host(hostport.as_str())
                    .await
                    .map_err(err)?
                    .next()
                    .ok_or_else(|| AuditError::Stream(format!("{hostport} does not resolve")))?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let sock = tokio::net::UdpSocket::bind(local).await.map_err(err)?;
                sock.connect(addr).await.map_err(err)?;
                Sink::Udp(sock)
            }
        }))
    }

    async fn send(&mut self, e: &AuditEntry) -> std::io::Result<()> {
        let line = e.to_json_line();
        match self {
            Sink::Stdout(out) => {
                out.write_all(format!("{line}\n").as_bytes()).await?;
                out.flush().await
            }
            Sink::Unix(sock, path) => sock
                .send_to(syslog_frame(e, &line).as_bytes(), &*path)
                .await
                .map(drop),
            Sink::Udp(sock) => sock.send(syslog_frame(e, &line).as_bytes()).await.map(drop),
        }
    }
}

/// RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`.
pub fn syslog_frame(e: &AuditEntry, json: &str) -> String {
    let warning = ["failed", "failures", "mismatch", "throttled", "unavailable"]
        .iter()
        .any(|w| e.kind.contains(w));
    let severity = if warning { 4 } else { 6 };
    let msgid: String = e
        .kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!(
        "<{}>1 {} {} portcullis {} {} - {json}",
        FACILITY * 8 + severity,
        e.time,
        hostname(),
        std::process::id(),
        if msgid.is_empty() { "-".into() } else { msgid },
    )
}

fn hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() { "-".into() } else { h }
}

/// Starts streaming per `stream`, from the current head; `None` when off.
pub async fn spawn(
    store: Store,
    stream: &AuditStream,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, AuditError> {
    let Some(sink) = Sink::open(stream).await? else {
        return Ok(None);
    };
    let from = store.audit_head().await?.map_or(0, |h| h.0);
    Ok(Some(tokio::spawn(run(store, sink, from, shutdown))))
}

async fn run(store: Store, mut sink: Sink, mut last: i64, shutdown: CancellationToken) {
    let health: Health = store.audit_health().clone();
    let mut warned_at = None::<std::time::Instant>;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            _ = shutdown.cancelled() => true,
        };
        // On shutdown, one last pass so events of the final moments go out.
        loop {
            match pass(&store, &mut sink, &mut last, &health, &mut warned_at).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "audit stream cannot read the chain");
                    break;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// Sends one page; `Ok(true)` when more may be waiting.
async fn pass(
    store: &Store,
    sink: &mut Sink,
    last: &mut i64,
    health: &Health,
    warned_at: &mut Option<std::time::Instant>,
) -> Result<bool, AuditError> {
    let filter = AuditFilter {
        after_seq: Some(*last),
        limit: PAGE,
        ..AuditFilter::default()
    };
    let rows = store.audit_rows(&filter).await?;
    let full = rows.len() as i64 == PAGE;
    if full {
        let head = store.audit_head().await?.map_or(*last, |h| h.0);
        if head - *last > MAX_LAG {
            let skip = head - *last - MAX_LAG;
            health.note_dropped(u64::try_from(skip).unwrap_or(0));
            *last += skip;
            warn_dropped(health, warned_at);
            return Ok(true);
        }
    }
    for r in rows {
        *last = r.seq;
        let entry = AuditEntry::from(r);
        let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(&entry)).await;
        if !matches!(sent, Ok(Ok(()))) {
            if let Ok(Err(e)) = &sent {
                tracing::debug!(error = %e, "audit stream send failed");
            }
            health.note_dropped(1);
            warn_dropped(health, warned_at);
        }
    }
    Ok(full)
}

/// At most one warning every 10 s, with the running total.
fn warn_dropped(health: &Health, warned_at: &mut Option<std::time::Instant>) {
    if warned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        *warned_at = Some(std::time::Instant::now());
        tracing::warn!(
            dropped = health.dropped(),
            "audit stream sink is slow or failing; events were dropped from the stream (they stay in the audit log)"
        );
    }
}
