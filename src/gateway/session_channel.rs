//! A session channel's life after the gate let it open: the upstream
//! channel first, then the client's answer, then the bridge with its
//! recorder tap until one side ends. And a session channel that is refused:
//! accepted only to tell the user why.
//!
//! A refusal is not a channel-open failure: OpenSSH prints that reason only
//! at its default LogLevel (not with `-q` or `LogLevel=ERROR`), and a
//! ControlMaster drops it ("Session open refused by peer"). The refused
//! channel is accepted, the request for a shell, command or subsystem is
//! answered yes (the "program" is the refusal, as with a `nologin` shell),
//! the reason goes to the channel's stderr as one line, then exit status
//! [`REFUSED_STATUS`], EOF and close. Nothing is forwarded, dialled or
//! recorded for it.

use super::channel;
use crate::bridge;
use crate::policy::{ChannelKind, SessionRequest};
use crate::session::{Destination, Session};
use crate::sync::MutexExt;
use crate::upstream::{UpstreamSink, UpstreamSource};
use russh::server::{ChannelOpenHandle, Msg, Session as SshSession};
use russh::{Channel, ChannelId, ChannelMsg};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// The exit status a refused session channel reports.
pub const REFUSED_STATUS: u32 = 1;

/// How long a refused channel waits for the client to ask for a shell,
/// command or subsystem before it says why anyway.
const ASK_WITHIN: Duration = Duration::from_secs(10);

/// The connection's session channels that were accepted only to be refused.
/// The handler answers their requests from here (`answer_refused`); nothing
/// on them reaches the gate or the target.
#[derive(Default)]
pub struct Refused(Mutex<HashSet<ChannelId>>);

impl Refused {
    // The set stays consistent at every point a holder could panic (one
    // insert or remove), so a poisoned lock is recovered (`crate::sync`).
    fn insert(&self, id: ChannelId) {
        self.0.lock_or_recover().insert(id);
    }

    pub fn contains(&self, id: ChannelId) -> bool {
        self.0.lock_or_recover().contains(&id)
    }

    pub fn remove(&self, id: ChannelId) {
        self.0.lock_or_recover().remove(&id);
    }
}

/// What refuses a session channel before anything is dialled: a lock now,
/// a destination refused at login (no grant, a closed window, a lock at
/// login), or a grant that allows nothing a session channel carries.
pub(super) fn refusal_before_dial(s: &Session) -> Option<String> {
    if let Err(refusal) = s.lock_check() {
        tracing::info!(session = %s.id, user = %s.user, reason = %refusal.log, "session refused");
        return Some(refusal.user);
    }
    match &s.destination {
        Destination::Refused(msg) => {
            tracing::info!(user = %s.user, reason = %msg, "session refused");
            Some(msg.clone())
        }
        Destination::Target { .. } if !s.permissions().allows_channel(&ChannelKind::Session) => {
            tracing::info!(session = %s.id, user = %s.user, "session channel refused: the grant allows no shell, exec or file transfer");
            Some("portcullis: your grant allows no shell, command or file transfer on this target (only forwarding)".into())
        }
        _ => None,
    }
}

/// The handler's answer to a request on a refused channel: yes to what
/// starts the refusal's "program" (so every client reads its stderr and
/// exit status), no to the rest. Never forwarded; never grants anything.
pub(super) fn answer_refused(
    channel: ChannelId,
    req: &SessionRequest<'_>,
    session: &mut SshSession,
) -> Result<bool, russh::Error> {
    match req {
        SessionRequest::Pty
        | SessionRequest::Shell
        | SessionRequest::Exec(_)
        | SessionRequest::Subsystem(_) => session.channel_success(channel)?,
        _ => session.channel_failure(channel)?,
    }
    Ok(false)
}

/// Accepts a session channel only to say why it is refused.
pub(super) async fn refuse(
    refused: Arc<Refused>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    text: String,
) {
    // Before the answer: the client sends no request before it.
    refused.insert(channel.id());
    reply.accept().await;
    tell(channel, &text).await;
}

/// Waits for the client to ask for something to run (or [`ASK_WITHIN`]),
/// then writes `text` to stderr, the exit status, EOF and close.
async fn tell(mut channel: Channel<Msg>, text: &str) {
    let mut pty = false;
    let asked = async {
        loop {
            match channel.wait().await {
                Some(ChannelMsg::RequestPty { .. }) => pty = true,
                Some(
                    ChannelMsg::RequestShell { .. }
                    | ChannelMsg::Exec { .. }
                    | ChannelMsg::RequestSubsystem { .. },
                ) => return true,
                Some(ChannelMsg::Close) | None => return false,
                Some(_) => {}
            }
        }
    };
    if let Ok(false) = tokio::time::timeout(ASK_WITHIN, asked).await {
        return;
    }
    let _ = channel
        .extended_data_bytes(1, one_line(text, pty).into_bytes())
        .await;
    let _ = channel.exit_status(REFUSED_STATUS).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

/// `text` as one line of a terminal: no control characters inside (a lock
/// reason is an administrator's free text), CRLF under a pty.
fn one_line(text: &str, pty: bool) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.push_str(if pty { "\r\n" } else { "\n" });
    line
}

/// Opens the upstream channel first, then answers the client's open request;
/// a refusal is told on the accepted channel ([`refuse`]).
pub(super) async fn bridge_channel(
    s: Arc<Session>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    handle: russh::server::Handle,
    verdicts: channel::VerdictRx,
    refused: Arc<Refused>,
) {
    // Boxed: dialling the target (TCP, key exchange, authentication) is
    // the largest state of this future, which the channel's task holds for
    // the channel's whole life (issue 20: memory per idle session).
    match Box::pin(s.open_channel()).await {
        Ok(upstream) => {
            reply.accept().await;
            let client = channel::split(channel, handle, Some(verdicts));
            s.enforce();
            let n = s.next_channel();
            // The channel's span, inside the connection's: the bridge's and
            // the recorder's lines carry both.
            let span = tracing::info_span!("channel", channel = n);
            let end = run_bridged(&s, client, upstream, n).instrument(span).await;
            tracing::debug!(channel = n, end = ?end, "session channel ended");
            if end == bridge::ChannelEnd::Cancelled {
                match s.kill.reason() {
                    Some(why) => s.set_end_reason(&format!("killed: {why}")),
                    None => s.set_end_reason("ended by portcullis"),
                }
            }
        }
        Err(refusal) => {
            tracing::warn!(session = %s.id, user = %s.user, error = %refusal.log, "session refused");
            s.set_end_reason(&format!("refused: {}", refusal.log));
            drop(verdicts);
            refuse(refused, channel, reply, refusal.user).await;
        }
    }
}

/// One session channel's bridge and recorder, until the channel ends. Not an
/// `async fn`: one keeps its arguments (both sides' halves) beside the
/// bridge they move into, for the channel's life.
fn run_bridged(
    s: &Arc<Session>,
    client: (channel::ClientSource, channel::ClientSink),
    upstream: (UpstreamSource, UpstreamSink),
    n: u32,
) -> impl Future<Output = bridge::ChannelEnd> + use<> {
    let notices = Some(s.notices.subscribe());
    let tap = Some(crate::recorder::start(s.app().clone(), s.clone(), n));
    bridge::run(
        client,
        upstream,
        s.channel_budget(),
        s.counters.clone(),
        s.relay_stop(s.cancel.clone()),
        notices,
        tap,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_line_ending_in_a_newline() {
        assert_eq!(
            one_line("portcullis: a\nb\r\x1b[2J", false),
            "portcullis: a b  [2J\n"
        );
        assert_eq!(one_line("portcullis: x", true), "portcullis: x\r\n");
    }
}
