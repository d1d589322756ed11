//! The target-facing SSH client: dial with a timeout, verify the pinned host
//! key, authenticate with the vaulted credential, open channels.

mod channel;
pub mod keys;

pub use channel::{UpstreamSink, UpstreamSource, sig_from_name, sig_name};

use crate::read_ahead::ReadAhead;
use crate::sync::MutexExt;
use crate::vault::Secret;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("timed out after {0:?} connecting to the target")]
    Timeout(Duration),
    #[error("host key mismatch for {target}: expected {expected}, saw {seen}")]
    HostKeyMismatch {
        target: String,
        expected: String,
        seen: String,
    },
    #[error("the target refused the vaulted credential for login {login}")]
    AuthRejected { login: String },
    #[error("the stored credential cannot be used: {0}")]
    BadCredential(String),
    #[error("the pinned host key is not a valid public key: {0}")]
    BadPin(String),
    #[error("SSH error talking to the target: {0}")]
    Protocol(String),
}

/// A credential just opened from the vault; wiped when dropped.
pub enum Credential {
    Password(Secret<String>),
    /// OpenSSH or PEM private key text.
    PrivateKey(Secret<String>),
}

/// Where and how to reach a target.
#[derive(Debug, Clone)]
pub struct Dial {
    pub target: String,
    pub host: String,
    pub port: u16,
    /// Pinned host key, OpenSSH one-line form.
    pub host_key: String,
    pub timeout: Duration,
}

/// An authenticated connection to a target; channels are opened on demand.
pub struct Upstream {
    handle: client::Handle<Pinned>,
    /// Channels the target opens towards us (remote forwards, agent);
    /// taken once by whoever relays them to the client.
    incoming: Mutex<Option<tokio::sync::mpsc::Receiver<Box<Incoming>>>>,
}

/// A channel the target opened: only ever relayed after the gateway checks
/// it against what the client asked for and the grant allows.
pub enum Incoming {
    ForwardedTcpip {
        stream: (UpstreamSource, UpstreamSink),
        reply: client::ChannelOpenHandle,
        connected_address: String,
        connected_port: u32,
        originator_address: String,
        originator_port: u32,
    },
    Agent {
        stream: (UpstreamSource, UpstreamSink),
        reply: client::ChannelOpenHandle,
    },
}

/// Channels opened by the target queued before the relay takes them; past
/// this, they are refused. Queued boxed: tokio allocates a queue's slots 32
/// at a time, so a slot as large as `Incoming` (216 bytes) cost every
/// upstream connection ~7 KiB whether the target ever opens a channel or
/// not (issue 20: memory per idle session).
const INCOMING_QUEUE: usize = 32;

struct Pinned {
    expected: PublicKey,
    seen: Arc<Mutex<Option<String>>>,
    incoming: tokio::sync::mpsc::Sender<Box<Incoming>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = key.public_key();
        if key.key_data() == self.expected.key_data() {
            return Ok(true);
        }
        *self.seen.lock_or_recover() = Some(keys::fingerprint(&key));
        Ok(false)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // A full queue drops `reply`, which refuses the channel.
        let _ = self.incoming.try_send(Box::new(Incoming::ForwardedTcpip {
            stream: channel::split(channel),
            reply,
            connected_address: connected_address.to_string(),
            connected_port,
            originator_address: originator_address.to_string(),
            originator_port,
        }));
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let _ = self.incoming.try_send(Box::new(Incoming::Agent {
            stream: channel::split(channel),
            reply,
        }));
        Ok(())
    }
}

fn client_config(pinned: &PublicKey) -> client::Config {
    let preferred = russh::Preferred {
        // Only negotiate the pinned key's algorithm, so the server cannot
        // answer with another key we have never seen.
        key: Cow::Owned(keys::host_key_algorithms(pinned)),
        // AES-GCM first: with AES-NI it is the cheapest AEAD on both ends.
        cipher: Cow::Borrowed(&[
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
        ]),
        ..Default::default()
    };
    client::Config {
        preferred,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        window_size: 4 << 20,
        maximum_packet_size: UPSTREAM_MAX_PACKET,
        channel_buffer_size: 64,
        ..Default::default()
    }
}

/// The largest channel data packet the target may send. A target's packet
/// is passed on as one packet to the client; under `ssh -J` that packet is
/// itself carried in the outer connection's channel, whose packets hold
/// 32 KiB (OpenSSH's limit for it). A full 32 KiB of data plus the inner
/// packet's framing would spill a few dozen bytes into a second outer packet
/// every time (by russh's chunking: two outer packets per inner one; not
/// counted on the wire); 256 bytes less leaves room.
const UPSTREAM_MAX_PACKET: u32 = 32768 - 256;

impl Upstream {
    pub async fn connect(
        dial: &Dial,
        login: &str,
        credential: Credential,
    ) -> Result<Upstream, UpstreamError> {
        let expected = keys::parse_public(&dial.host_key).map_err(UpstreamError::BadPin)?;
        let seen = Arc::new(Mutex::new(None));
        let (incoming_tx, incoming_rx) = tokio::sync::mpsc::channel(INCOMING_QUEUE);
        let handler = Pinned {
            expected: expected.clone(),
            seen: seen.clone(),
            incoming: incoming_tx,
        };
        let addr = format!("{}:{}", dial.host, dial.port);
        let config = Arc::new(client_config(&expected));
        let connecting = async {
            let tcp = tokio::net::TcpStream::connect((dial.host.as_str(), dial.port))
                .await
                .map_err(russh::Error::from)?;
            // Interactive keystrokes must not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            // Every byte of a download arrives here: read it in larger gulps.
            client::connect_stream(config, ReadAhead::new(tcp), handler).await
        };
        let mut handle = match tokio::time::timeout(dial.timeout, connecting).await {
            Err(_) => return Err(UpstreamError::Timeout(dial.timeout)),
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let seen = seen.lock_or_recover().clone();
                if let Some(seen) = seen {
                    return Err(UpstreamError::HostKeyMismatch {
                        target: dial.target.clone(),
                        expected: keys::fingerprint(&expected),
                        seen,
                    });
                }
                return Err(UpstreamError::Unreachable {
                    addr,
                    reason: e.to_string(),
                });
            }
        };
        let ok = tokio::time::timeout(dial.timeout, authenticate(&mut handle, login, credential))
            .await
            .map_err(|_| UpstreamError::Timeout(dial.timeout))??;
        if !ok {
            return Err(UpstreamError::AuthRejected {
                login: login.to_string(),
            });
        }
        Ok(Upstream {
            handle,
            incoming: Mutex::new(Some(incoming_rx)),
        })
    }

    /// A direct-tcpip channel: the target connects to `host:port` itself.
    pub async fn open_direct_tcpip(
        &self,
        host: &str,
        port: u32,
        originator: &str,
        originator_port: u32,
    ) -> Result<(UpstreamSource, UpstreamSink), UpstreamError> {
        let ch = self
            .handle
            .channel_open_direct_tcpip(host, port, originator, originator_port)
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        Ok(channel::split(ch))
    }

    /// Asks the target to listen (`ssh -R`); the port it bound when `port` is 0.
    pub async fn tcpip_forward(&self, address: &str, port: u32) -> Result<u32, UpstreamError> {
        let bound = self
            .handle
            .tcpip_forward(address, port)
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        Ok(if port == 0 { bound } else { port })
    }

    pub async fn cancel_tcpip_forward(
        &self,
        address: &str,
        port: u32,
    ) -> Result<(), UpstreamError> {
        self.handle
            .cancel_tcpip_forward(address, port)
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))
    }

    /// The queue of target-opened channels; `None` after the first call.
    pub fn take_incoming(&self) -> Option<tokio::sync::mpsc::Receiver<Box<Incoming>>> {
        self.incoming.lock_or_recover().take()
    }

    pub async fn open_session(&self) -> Result<(UpstreamSource, UpstreamSink), UpstreamError> {
        let ch = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        Ok(channel::split(ch))
    }

    pub async fn disconnect(&self, reason: &str) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, reason, "en")
            .await;
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}

async fn authenticate(
    handle: &mut client::Handle<Pinned>,
    login: &str,
    credential: Credential,
) -> Result<bool, UpstreamError> {
    let proto = |e: russh::Error| UpstreamError::Protocol(e.to_string());
    let result = match credential {
        Credential::Password(pw) => handle
            .authenticate_password(login, pw.expose().as_str())
            .await
            .map_err(proto)?,
        Credential::PrivateKey(text) => {
            let key = russh::keys::decode_secret_key(text.expose(), None).map_err(|_| {
                UpstreamError::BadCredential("the private key cannot be decoded".into())
            })?;
            let hash = if key.algorithm().is_rsa() {
                // rsa-sha2-512/256 as the server advertises; SHA-1 only if it says nothing.
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(proto)?
                    .flatten()
                    .or(Some(HashAlg::Sha512))
            } else {
                None
            };
            handle
                .authenticate_publickey(login, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(proto)?
        }
    };
    Ok(result.success())
}

/// Connects only to read the target's host key, for the admin to pin.
pub async fn fetch_host_key(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<String, UpstreamError> {
    struct Capture(Arc<Mutex<Option<PublicKey>>>);
    impl client::Handler for Capture {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            key: &PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            *self.0.lock_or_recover() = Some(key.public_key());
            Ok(false)
        }
    }
    let seen = Arc::new(Mutex::new(None));
    let config = Arc::new(client::Config::default());
    let r = tokio::time::timeout(
        timeout,
        client::connect(config, (host, port), Capture(seen.clone())),
    )
    .await;
    let addr = format!("{host}:{port}");
    let key = seen.lock_or_recover().clone();
    match (key, r) {
        (Some(k), _) => Ok(keys::to_openssh(&k)),
        (None, Err(_)) => Err(UpstreamError::Timeout(timeout)),
        (None, Ok(Err(e))) => Err(UpstreamError::Unreachable {
            addr,
            reason: e.to_string(),
        }),
        (None, Ok(Ok(_))) => Err(UpstreamError::Unreachable {
            addr,
            reason: "no host key offered".into(),
        }),
    }
}
