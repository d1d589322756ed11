//! A session channel's life after the gate let it open: the upstream
//! channel first, then the client's answer, then the bridge with its
//! recorder tap until one side ends.

use super::channel;
use crate::bridge;
use crate::session::Session;
use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Opens the upstream channel first, then answers the client's open request,
/// so a refusal reaches the user as a clear channel-open failure.
pub(super) async fn bridge_channel(
    s: Arc<Session>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    handle: russh::server::Handle,
    verdicts: mpsc::Receiver<channel::Verdict>,
) {
    match s.open_channel().await {
        Ok(upstream) => {
            reply.accept().await;
            let client = channel::split(channel, handle, Some(verdicts));
            s.enforce();
            let notices = Some(s.notices.subscribe());
            let tap = Some(crate::recorder::start(
                s.app().clone(),
                s.clone(),
                s.next_channel(),
            ));
            let end = bridge::run(
                client,
                upstream,
                s.channel_budget(),
                s.counters.clone(),
                s.cancel.clone(),
                notices,
                tap,
            )
            .await;
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
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: refusal.user,
                })
                .await;
        }
    }
}
