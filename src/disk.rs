//! Free space on the recordings disk (`[recordings]` marks). Below the
//! low-water mark new sessions are refused while live ones go on; below the
//! hard mark the recording of live sessions can no longer be trusted to be
//! written, so the README's policy for unwritable storage applies: they end,
//! and new ones are refused. Its own module, not the recorder's: sessions
//! refuse on it, and the recorder imports the session.

use crate::app::App;
use std::path::Path;
use std::time::Instant;

/// Where the free space stands against the configured marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Below the low-water mark: no new sessions.
    Low,
    /// Below the hard mark: live sessions end too.
    Hard,
}

/// Pure: `free` bytes against the marks (0 disables a mark).
pub fn level(free: u64, low: u64, hard: u64) -> Level {
    if hard > 0 && free < hard {
        Level::Hard
    } else if low > 0 && free < low {
        Level::Low
    } else {
        Level::Ok
    }
}

/// Bytes an unprivileged writer may still use under `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The level now; a disk whose free space cannot be read counts as full
/// (fail closed).
pub fn now(app: &App) -> Level {
    let c = &app.config;
    match free_bytes(&c.recordings_dir) {
        Ok(free) => level(
            free,
            c.recordings_space.low_bytes,
            c.recordings_space.hard_bytes,
        ),
        Err(e) => {
            tracing::error!(dir = %c.recordings_dir.display(), error = %e, "cannot read free space of the recordings disk; treating it as full");
            Level::Hard
        }
    }
}

/// What a refused user sees.
pub const LOW_REFUSAL: &str = "the bastion's recording storage is nearly full, so new sessions are refused (live sessions go on); ask an administrator";

/// Called every couple of seconds: audits each change of level once and,
/// below the hard mark, ends the live SSH sessions (their recordings can
/// no longer be written safely). TCP forwards without capture record
/// nothing and go on.
pub async fn watch(app: &App, last: &mut Level) {
    let level = now(app);
    if level == *last {
        if level == Level::Hard {
            end_live(app);
        }
        return;
    }
    tracing::warn!(from = ?last, to = ?level, "recordings disk free space changed level");
    *last = level;
    let event = crate::audit::AuditEvent::RecordingSpace {
        level: format!("{level:?}").to_lowercase(),
        free_bytes: free_bytes(&app.config.recordings_dir).unwrap_or(0),
    };
    if let Err(e) = crate::audit::record(&app.store, event).await {
        tracing::error!(error = %e, "recording.space not audited");
    }
    if level == Level::Hard {
        end_live(app);
    }
}

fn end_live(app: &App) {
    let why = "the recordings disk is below its hard mark";
    let ended = app.registry.kill_where(
        |s| (s.login != "-").then(|| why.to_string()),
        Instant::now(),
    );
    if !ended.is_empty() {
        tracing::error!(
            count = ended.len(),
            "live sessions ended: recordings disk below its hard mark"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_order_and_zero_disables() {
        assert_eq!(level(100, 50, 10), Level::Ok);
        assert_eq!(level(49, 50, 10), Level::Low);
        assert_eq!(level(9, 50, 10), Level::Hard);
        assert_eq!(level(0, 0, 0), Level::Ok);
        assert_eq!(level(5, 0, 10), Level::Hard);
        assert!(free_bytes(Path::new("/")).is_ok());
        assert!(free_bytes(Path::new("/nonexistent/x")).is_err());
    }
}
