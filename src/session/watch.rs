//! One watcher for everything live after login (a shell, an exec, a TCP
//! forward): the grant's deadline with warnings ahead of it, and a re-check
//! of the grants every [`RECHECK`] that ends the thing within seconds of a
//! revocation or of a change that no longer allows it. What "ending" means
//! is the holder's (`Holder`); where the grants come from is `Recheck`'s,
//! so the logic runs in tests with paused time and no store.

use crate::policy::{Allow, ChannelKind, Deny, EndCause, Permissions};
use jiff::{SignedDuration, Timestamp};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Warnings this far ahead of the deadline.
pub const WARN_AT: [Duration; 2] = [Duration::from_secs(300), Duration::from_secs(60)];
/// How often the grants are decided again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// How often the deadline is looked at.
const TICK: Duration = Duration::from_millis(250);

/// The grants as they are now, for the watched thing.
pub trait Recheck: Send + Sync {
    fn recheck(&self) -> impl Future<Output = Result<Result<Allow, Deny>, String>> + Send;
}

/// What is watched: told of warnings and narrowed permissions, and ended.
pub trait Holder: Send + Sync {
    fn warn(&self, text: &str);
    fn narrowed(&self, now: Permissions);
    /// `reason` goes to the rows and the audit trail, `text` to the user.
    fn end(&self, reason: String, text: String) -> impl Future<Output = ()> + Send;
}

/// What the watched thing needs its grant to keep allowing, beyond access.
#[derive(Debug, Clone)]
pub struct Needs {
    pub deadline: Option<(Timestamp, EndCause)>,
    /// e.g. `DirectTcpip` for a forward, with its name ("port forwarding"):
    /// a grant that drops it ends the thing.
    pub channel: Option<(ChannelKind, &'static str)>,
    /// What the thing is, in the user's words ("this session", "this forward").
    pub what: &'static str,
}

/// Runs until `cancel` or until it ended the holder.
pub async fn watch<R: Recheck, H: Holder>(
    needs: Needs,
    recheck: &R,
    holder: &H,
    cancel: &CancellationToken,
    now: impl Fn() -> Timestamp + Send,
) {
    let mut deadline = needs.deadline;
    let mut warned = [false; WARN_AT.len()];
    let mut last_check = tokio::time::Instant::now();
    loop {
        let pause = pause(deadline, now(), last_check.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return,
        }
        // The known deadline first: at a window's end the re-check would
        // also refuse, but the user should be told the real cause.
        if let Some((at, cause)) = deadline {
            let left = at.duration_since(now());
            if left <= SignedDuration::ZERO {
                let text = format!("{} has ended: {}", needs.what, cause.describe());
                return Box::pin(holder.end(cause.describe().to_string(), text)).await;
            }
            if let Some(text) = warning(&mut warned, left.unsigned_abs(), at, cause, needs.what) {
                holder.warn(&text);
            }
        }
        if last_check.elapsed() < RECHECK {
            continue;
        }
        last_check = tokio::time::Instant::now();
        // Boxed, as the ends below: this loop lives as long as the session,
        // and their states are needed for an instant every RECHECK at most.
        match Box::pin(recheck.recheck()).await {
            Ok(Ok(a)) => match &needs.channel {
                Some((kind, name)) if !a.permissions.allows_channel(kind) => {
                    let reason = format!("grant withdrawn: {name} no longer allowed");
                    let text = format!("access withdrawn: {reason}; {} ends now", needs.what);
                    return Box::pin(holder.end(reason, text)).await;
                }
                _ => {
                    deadline = a.deadline;
                    holder.narrowed(a.permissions);
                }
            },
            Ok(Err(deny)) => {
                let text = format!("access withdrawn: {deny}; {} ends now", needs.what);
                return Box::pin(holder.end(format!("grant withdrawn: {deny}"), text)).await;
            }
            // Keep the last decision through a store hiccup; the deadline still holds.
            Err(e) => tracing::warn!(error = %e, "cannot re-check grants"),
        }
    }
}

/// Until the next look: a [`TICK`] while the deadline is within the first
/// warning (and a re-check) of now, for warnings and an end on time; else
/// until the next re-check. Ticking every 250 ms with nothing to look at
/// was 40,000 wake-ups a second at 10,000 idle sessions.
fn pause(
    deadline: Option<(Timestamp, EndCause)>,
    now: Timestamp,
    since_check: Duration,
) -> Duration {
    let near = deadline.is_some_and(|(at, _)| {
        let left = at.duration_since(now);
        left <= SignedDuration::ZERO || left.unsigned_abs() <= WARN_AT[0] + RECHECK
    });
    if near {
        TICK
    } else {
        RECHECK.saturating_sub(since_check).max(TICK)
    }
}

/// One warning per threshold crossed, the most urgent only.
fn warning(
    warned: &mut [bool],
    left: Duration,
    at: Timestamp,
    cause: EndCause,
    what: &str,
) -> Option<String> {
    let i = WARN_AT.iter().rposition(|w| left <= *w)?;
    if warned[i] {
        return None;
    }
    warned[..=i].iter_mut().for_each(|x| *x = true);
    Some(format!(
        "{what} ends in {} s: {} at {at}",
        left.as_secs(),
        cause.describe()
    ))
}

#[cfg(test)]
mod tests;
