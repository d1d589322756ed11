//! The client-facing SSH server. The accept loop only accepts and spawns; the
//! russh `Handler` only translates callbacks into calls on `session` and
//! `policy`.

mod caps;
mod channel;
mod forward;
mod forwards;
mod gate;
mod handler;
pub mod hostca;
pub mod jump;
pub mod keys;
mod limits;
mod login;
mod menu;
pub mod proxy;
mod remote;
mod session_channel;
mod shared;
mod sso;
mod stream;
mod tcp_forward;

use crate::app::App;
use futures::FutureExt;
use handler::Connection;
use limits::PreAuth;
use russh::server::Config as SshConfig;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("host key {path}: {reason}")]
    HostKey { path: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Listen { addr, source })
}

fn ssh_config(app: &App, host_keys: Vec<russh::keys::PrivateKey>) -> SshConfig {
    let preferred = russh::Preferred {
        cipher: Cow::Borrowed(&[
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
        ]),
        // No compression at all: russh offers zlib (from the first packet,
        // so before authentication) by default; a bastion's traffic gains
        // little from it and a decompressor is attack surface.
        compression: Cow::Borrowed(&[russh::compression::NONE]),
        // Host key algorithms and the server-sig-algs we announce: the
        // russh default minus `ssh-rsa` (SHA-1). Signatures are checked
        // against it too (`keys::strong_signature`).
        key: Cow::Borrowed(keys::SIGNATURE_ALGORITHMS),
        ..Default::default()
    };
    SshConfig {
        server_id: russh::SshId::Standard(Cow::Borrowed("SSH-2.0-portcullis")),
        methods: login::first_factor_methods(&app.config),
        // Rejection delays are ours (gateway::login): russh's would also
        // delay a partial success and the OpenSSH `none` probe.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: host_keys,
        max_auth_attempts: app.config.limits.max_auth_attempts as usize,
        // Idle shells are legitimate; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        window_size: 4 << 20,
        channel_buffer_size: 64,
        // russh applies `nodelay` only to sockets it accepts itself; ours
        // come from our accept loop, see `client_transport`.
        preferred,
        ..Default::default()
    }
}

/// The two steps of a graceful stop: the door closes, then, after the
/// grace, the connections still open are ended.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    pub stop_accepting: CancellationToken,
    pub end_connections: CancellationToken,
}

/// Accepts until `shutdown.stop_accepting` is cancelled. Never waits on a
/// client. Connections run on `app.tasks` and end with
/// `shutdown.end_connections`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    host_keys: Vec<russh::keys::PrivateKey>,
    host_ca: hostca::HostCa,
    shutdown: Shutdown,
) {
    let Some(jump_keys) = jump::Keys::new(host_ca, &host_keys).map(Arc::new) else {
        tracing::error!("no host key; not serving");
        return;
    };
    let config = Arc::new(ssh_config(&app, host_keys));
    let preauth = PreAuth::new(limits::Caps {
        total: app.config.limits.max_unauthenticated,
        per_source: app.config.limits.max_unauthenticated_per_source,
        per_network: app.config.limits.max_unauthenticated_per_network,
    });
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.stop_accepting.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // On a dual-stack listener IPv4 clients arrive as ::ffff:a.b.c.d.
        // Canonical from here on: blocks, locks, rules, caps, throttles,
        // the second-factor budget and the audit trail all see IPv4.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let end = shutdown.end_connections.clone();
        if proxy::from_balancer(&app.config.ssh.proxy_protocol_from, peer.ip()) {
            // The header is read on the connection's own task: the accept
            // loop never waits on a client, nor on a balancer.
            let (app, preauth, config, jump_keys) = (
                app.clone(),
                preauth.clone(),
                config.clone(),
                jump_keys.clone(),
            );
            tokio::spawn(async move {
                let mut stream = stream;
                match proxy::read(&mut stream, peer).await {
                    Ok(client) => admit(&app, &preauth, &config, &jump_keys, end, stream, client),
                    Err(e) => {
                        tracing::warn!(balancer = %peer, error = %e, "connection from a load balancer refused")
                    }
                }
            });
            continue;
        }
        admit(&app, &preauth, &config, &jump_keys, end, stream, peer);
    }
}

/// A connection whose source is known (the peer, or the client a load
/// balancer's PROXY header names): source checks, pre-auth caps, then its
/// own task.
fn admit(
    app: &Arc<App>,
    preauth: &PreAuth,
    config: &Arc<SshConfig>,
    jump_keys: &Arc<jump::Keys>,
    end: CancellationToken,
    stream: TcpStream,
    peer: SocketAddr,
) {
    if refused_source(app, peer) {
        drop(stream);
        return;
    }
    let (slot, admission) = match preauth.admit(peer.ip()) {
        Ok(admitted) => admitted,
        Err(cap) => {
            tracing::warn!(source = %peer, ?cap, "unauthenticated connection cap reached and every connection held is past its first factor; dropped");
            drop(stream);
            return;
        }
    };
    if let limits::Admission::AdmittedByEvicting(old) = admission {
        tracing::warn!(source = %peer, evicted = %old, "unauthenticated connection cap reached; cut the oldest not past a first factor");
    }
    let conn = Connection::new(app.clone(), peer, slot, jump_keys.clone());
    let span = conn.shared().span.clone();
    let run = run_connection(app.clone(), config.clone(), stream, conn, end);
    app.tasks.spawn(tracing::Instrument::instrument(run, span));
}

/// Blocked networks, source locks and source rules: decided from memory,
/// before any byte is read.
fn refused_source(app: &Arc<App>, peer: SocketAddr) -> bool {
    let now = crate::clock::now_ms();
    if app.blocks.is_blocked(peer.ip(), now) {
        tracing::info!(source = %peer, "source is blocked; dropped");
        return true;
    }
    // Other locks (everything, a user) let the client log in to read why.
    if let Some(lock) = app.locks.source_lock(peer.ip(), now) {
        tracing::info!(source = %peer, lock = %lock.id, "source is locked; dropped");
        return true;
    }
    if let Some(rule) = crate::lockdown::rules::source_rule(app, peer.ip()) {
        tracing::warn!(source = %peer, "connection from outside the allowed networks; dropped");
        let app = app.clone();
        tokio::spawn(async move {
            crate::lockdown::rules::fire_for_source(&app, rule, peer.ip()).await
        });
        return true;
    }
    false
}

/// Not an `async fn`: one would hold its arguments (the connection's
/// handler among them) beside the `drive` future they move into, for the
/// connection's whole life.
fn run_connection(
    app: Arc<App>,
    config: Arc<SshConfig>,
    tcp: TcpStream,
    conn: Connection,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let tcp = client_transport(tcp);
    let stream = stream::Killable::new(tcp, conn.cut_token(), conn.shared().kill.clone());
    drive(app, config, stream, conn, shutdown)
}

/// The client's socket as russh gets it.
fn client_transport(tcp: TcpStream) -> crate::read_ahead::ReadAhead<TcpStream> {
    // Without it Nagle holds a handshake reply written in two parts until
    // the client's delayed ACK: up to 40 ms on a login (seen as a 35 ms
    // stall between the client's ECDH init and our reply).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    // A socket read costs a syscall per call: read ahead. (A nested
    // connection's channel stream is memory already and goes without.)
    crate::read_ahead::ReadAhead::new(tcp)
}

/// Runs one SSH connection over `stream` (a TCP connection, or a ProxyJump
/// channel of another connection) until it ends, then finishes its session.
///
/// Not an `async fn`: one keeps each argument it is given for its whole
/// life, even once moved, and `conn` and `stream` go into the session loop
/// at once (issue 20: memory per idle session).
fn drive<S>(
    app: Arc<App>,
    config: Arc<SshConfig>,
    stream: stream::Killable<S>,
    conn: Connection,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ends = Ends {
        peer: conn.peer(),
        shared: conn.shared(),
        cut: conn.cut_token(),
        shutdown,
    };
    // run_stream waits for the client's version line: bounded by the grace
    // time too. Boxed: its state (the session under construction, handler
    // and stream) would otherwise stay part of the connection's future,
    // which lives as long as the connection.
    let handshake = Box::pin(russh::server::run_stream(config, stream, conn));
    drive_handshaken(app, handshake, ends)
}

/// What [`drive`] keeps of the connection besides its session loop.
struct Ends {
    peer: SocketAddr,
    shared: Arc<shared::Shared>,
    cut: CancellationToken,
    shutdown: CancellationToken,
}

async fn drive_handshaken<H>(app: Arc<App>, handshake: H, ends: Ends)
where
    H: std::future::Future<
            Output = Result<russh::server::RunningSession<Connection>, russh::Error>,
        > + Unpin,
{
    let Ends {
        peer,
        shared,
        cut,
        shutdown,
    } = ends;
    let grace = app.config.limits.login_grace;
    let running = match tokio::time::timeout(grace, handshake).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(source = %peer, error = ?e, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(source = %peer, "no SSH version line within the login grace time; dropped");
            return;
        }
    };
    let handle = running.handle();
    shared.kill.on_kill(tell(&shared, handle.clone()));
    let watchdog = async {
        tokio::time::sleep(grace).await;
        if shared.session().is_none() && shared.sso_waiting() {
            // A person signing in at the IdP: the link's lifetime, once.
            tokio::time::sleep(app.config.sso.link_ttl).await;
        }
        if shared.session().is_none() {
            tracing::info!(source = %peer, "login grace time over; disconnecting");
            cut.cancel();
        }
        std::future::pending::<()>().await
    };
    let ended_by_us = async {
        let why = tokio::select! {
            _ = shared.kill.killed() => {
                let why = shared.kill.reason().unwrap_or("ended by portcullis");
                // Before the bridges and the recorder see the end.
                if let Some(s) = shared.session() {
                    s.set_end_reason(&format!("killed: {why}"));
                }
                // Already queued by the kill itself, unless it came too early.
                (!shared.kill.told()).then(|| format!("portcullis: session ended: {why}"))
            }
            _ = shared.cancelled() => Some("portcullis: session ended".to_string()),
            _ = shutdown.cancelled() => {
                if let Some(s) = shared.session() {
                    s.set_end_reason("portcullis shut down");
                }
                Some("portcullis is shutting down".to_string())
            }
        };
        // Say why if the session loop can, then cut the transport regardless.
        if let Some(why) = why {
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                handle.disconnect(russh::Disconnect::ByApplication, why, "en".into()),
            )
            .await;
        }
        // The session loop sends the DISCONNECT and then ends by itself,
        // which ends this select first; the cut is only the backstop. At a
        // mass kill the loops are slow to get to it (4,000 sessions on 2
        // cores: 35 clients read "early eof" instead of the lock's text with
        // a 50 ms backstop). Nothing relays meanwhile: the kill halted every
        // bridge of the session at once (`bridge::Stop`).
        tokio::time::sleep(DISCONNECT_FLUSH).await;
        // A session whose disconnect is out (the loop asked to shut down:
        // noted closed) has nothing left to say and reads nothing: its cut
        // (the socket's close and FIN, the session loop's teardown) waits
        // until every killed session here has written its disconnect, and
        // then for the clients to read theirs (`TOLD_GRACE`): the first
        // node to be done would otherwise tear down beside the nodes and
        // clients still at it. One that is not out yet is cut now: the
        // backstop.
        if shared.kill.closed_at().is_some() {
            app.registry
                .kills_settled(Duration::ZERO, KILL_TEARDOWN_MAX)
                .await;
            tokio::time::sleep(TOLD_GRACE).await;
        }
        cut.cancel();
        std::future::pending::<()>().await
    };
    // No database, no login (issue 19): refused at once with the reason,
    // not after the store's time-outs with only "Connection closed".
    let no_database = async {
        while shared.session().is_none() {
            if app.db.is_down() {
                tracing::info!(source = %peer, "database unreachable; login refused");
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    handle.disconnect(
                        russh::Disconnect::ByApplication,
                        NO_DATABASE.into(),
                        "en".into(),
                    ),
                )
                .await;
                // The session loop sends it once the auth callback in hand
                // returns (a rejection waits out its padding): then the
                // connection ends by itself; the cut is the backstop.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                cut.cancel();
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await
    };
    let result = tokio::select! {
        r = running => r,
        _ = watchdog => Ok(()),
        _ = ended_by_us => Ok(()),
        _ = no_database => Ok(()),
    };
    cut.cancel();
    if let Some(at) = shared.kill.requested_at() {
        shared.kill.closed();
        // The first close counts: usually our side's shutdown after the
        // disconnect was flushed (noted by `Killable`), else this cut.
        let closed = shared.kill.closed_at().unwrap_or_else(Instant::now);
        app.metrics
            .kill_latency
            .observe(closed.saturating_duration_since(at));
    }
    if let Err(e) = result {
        tracing::debug!(source = %peer, error = ?e, "connection ended with error");
    }
    if shared.kill.is_killed() {
        // A lockdown ends many sessions at once: let every transport be cut
        // before the teardowns (upstream, rows, audit) compete for the CPU.
        app.registry
            .kills_settled(KILL_TEARDOWN_DELAY, KILL_TEARDOWN_MAX)
            .await;
    }
    if let Some(session) = shared.session() {
        session.finish().await;
    }
}

/// What the kill switch runs for this connection, on the killing task: mark
/// the session's end reason and queue the disconnect with the lock's text on
/// the SSH session loop, without waiting (a full queue leaves it to the
/// connection task).
fn tell(shared: &Arc<shared::Shared>, handle: russh::server::Handle) -> crate::registry::Tell {
    // Weak: the note lives in `shared`, and must not keep it alive.
    let shared = Arc::downgrade(shared);
    Box::new(move |why: &str| {
        if let Some(s) = shared.upgrade().and_then(|s| s.session()) {
            s.set_end_reason(&format!("killed: {why}"));
        }
        let text = format!("portcullis: session ended: {why}");
        handle
            .disconnect(russh::Disconnect::ByApplication, text, "en".into())
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    })
}

/// What a client reads when the database does not answer.
pub const NO_DATABASE: &str = "portcullis cannot reach its database; try again shortly";

const KILL_TEARDOWN_DELAY: Duration = Duration::from_millis(300);
/// At most this long after a kill before a session's teardown runs, however
/// many killed transports are still open.
const KILL_TEARDOWN_MAX: Duration = Duration::from_secs(5);

/// How long a client that was sent its disconnect has to read it before the
/// transport is closed under it (nothing it sends is read meanwhile).
const TOLD_GRACE: Duration = Duration::from_millis(500);

/// How long the session loop has to send its DISCONNECT before the
/// transport is cut.
const DISCONNECT_FLUSH: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn the_client_socket_sends_without_nagle() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (_client, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
        let (tcp, _) = accepted.unwrap();
        assert!(
            !tcp.nodelay().unwrap(),
            "an accepted socket starts with Nagle on"
        );
        let transport = super::client_transport(tcp);
        assert!(transport.get_ref().nodelay().unwrap());
    }
}
