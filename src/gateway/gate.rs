//! The one gate for session-channel requests: decided by the handler
//! before anything is forwarded (the permissions held now, locks, command
//! rules), answered to the client, and handed to the channel's bridge as a
//! verdict (see `channel::ClientSource`).

use super::channel::{Asked, Verdict};
use super::handler::Connection;
use super::session_channel;
use crate::policy::SessionRequest;
use russh::ChannelId;
use russh::server::Session as SshSession;
use tracing::Instrument;

impl Connection {
    /// The one decision on a session-channel request: the permissions the
    /// grant gives now, then (for what starts something on the target) locks
    /// and command rules. Decided here, before anything is forwarded: the
    /// channel's bridge waits for this verdict (see `channel::ClientSource`).
    async fn decide(&self, req: &SessionRequest<'_>) -> bool {
        let Some(s) = self.shared.session() else {
            return false;
        };
        if !s.permissions().allows_request(req) {
            return false;
        }
        if !matches!(
            req,
            SessionRequest::Shell | SessionRequest::Exec(_) | SessionRequest::Subsystem(_)
        ) {
            return true;
        }
        if let SessionRequest::Exec(cmd) = req
            && !self.app.config.lockdown.rules.is_empty()
            && crate::lockdown::rules::on_command(
                &self.app,
                &s.seen(),
                &String::from_utf8_lossy(cmd),
            )
            .await
        {
            tracing::warn!(session = %s.id, "exec refused: a lockdown rule ended the session");
            return false;
        }
        // A rule may have locked the user or target just now, as may anyone.
        s.lock_check().is_ok()
    }

    /// Decides `req`, answers the client and hands the verdict to the
    /// channel's bridge.
    pub(super) async fn gate(
        &mut self,
        channel: ChannelId,
        req: SessionRequest<'_>,
        session: &mut SshSession,
    ) -> Result<bool, russh::Error> {
        let span = self.shared.span.clone();
        self.gate_in_span(channel, req, session)
            .instrument(span)
            .await
    }

    async fn gate_in_span(
        &mut self,
        channel: ChannelId,
        req: SessionRequest<'_>,
        session: &mut SshSession,
    ) -> Result<bool, russh::Error> {
        if self.refused.contains(channel) {
            return session_channel::answer_refused(channel, &req, session);
        }
        // Only channels this handler opened as session channels carry
        // session requests; on any other (a forward) the answer is no.
        let allowed = self.verdicts.contains_key(&channel) && self.decide(&req).await;
        if let Some(asked) = asked(&req)
            && let Some(tx) = self.verdicts.get(&channel)
            && tx.send(Verdict { asked, allowed }).await.is_err()
        {
            self.verdicts.remove(&channel);
        }
        if allowed {
            session.channel_success(channel)?;
        } else {
            tracing::info!(source = %self.peer, request = ?req, "channel request refused by policy");
            session.channel_failure(channel)?;
        }
        Ok(allowed)
    }
}

/// The request as the channel's bridge sees it, for those it forwards.
fn asked(req: &SessionRequest<'_>) -> Option<Asked> {
    Some(match req {
        SessionRequest::Pty => Asked::Pty,
        SessionRequest::Shell => Asked::Shell,
        SessionRequest::Exec(c) => Asked::Exec(c.to_vec()),
        SessionRequest::Subsystem(n) => Asked::Subsystem((*n).to_string()),
        SessionRequest::Env(n) => Asked::Env((*n).to_string()),
        SessionRequest::AgentForward => Asked::Agent,
        SessionRequest::WindowChange | SessionRequest::Signal | SessionRequest::X11 => {
            return None;
        }
    })
}
