//! A live thing's place in the registry, held for exactly as long as the
//! thing lives: the kill switch, `GET /sessions` and `session kill` find it
//! there by its id, and dropping the lease takes it out (no path can leave
//! a dead entry behind, or forget to remove one).

use crate::app::App;
use crate::registry::{KillNote, LiveSession};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Lease {
    app: Arc<App>,
    id: String,
    cancel: CancellationToken,
    kill: Arc<KillNote>,
}

impl Lease {
    /// Enters `entry` in the registry.
    pub fn open(app: &Arc<App>, entry: LiveSession) -> Lease {
        let lease = Lease {
            app: app.clone(),
            id: entry.id.clone(),
            cancel: entry.cancel.clone(),
            kill: entry.kill.clone(),
        };
        app.registry.insert(entry);
        lease
    }

    /// For a thing with no transport of its own to cut (a TCP forward): a
    /// kill cancels its token, which ends its relay.
    pub fn cancel_on_kill(&self) {
        let (kill, cancel) = (self.kill.clone(), self.cancel.clone());
        let watch = async move {
            tokio::select! {
                _ = kill.killed() => cancel.cancel(),
                _ = cancel.cancelled() => {}
            }
        };
        tokio::spawn(tracing::Instrument::in_current_span(watch));
    }

    /// `otherwise`, unless the kill switch ended the thing: then why.
    pub fn end_reason(&self, otherwise: String) -> String {
        match self.kill.reason() {
            Some(why) => format!("killed: {why}"),
            None => otherwise,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.app.registry.remove(&self.id);
    }
}
