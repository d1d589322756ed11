//! Free space on the recordings disk (`[recordings]` marks). Below the
//! low-water mark new sessions are refused while live ones go on; below the
//! hard mark the recording of live sessions can no longer be trusted to be
//! written, so the README's policy for unwritable storage applies: they end,
//! and new ones are refused. Its own module, not the recorder's: sessions
//! refuse on it, and the recorder imports the session.

use crate::app::App;
use crate::sync::MutexExt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
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

/// One probe at a time in this process, so each writes into an empty file.
static PROBE: Mutex<()> = Mutex::new(());

/// Whether the recordings directory takes a write now (before a session
/// dials its target). The write goes into an empty file, so it must
/// allocate: a full or read-only disk, or a directory this process cannot
/// write, fails it as before.
///
/// One file per process, kept and emptied after each probe, not a file
/// created and unlinked per session: on ext4 without a journal an unlinked
/// inode counts as "recently deleted" for 60-300 s and every later inode
/// allocation in its group scans past all of them, so at a hundred logins
/// a second each recording's `.cast` and `.chain` creation scanned
/// thousands (`recently_deleted`, `find_inode_bit`: ~10 % of the bastion's
/// CPU per login on such a disk; issue 20, RESULTS-issue20 section 16).
/// Not checked any more: whether an inode can still be allocated; the
/// recording's own files are created, fail closed, before the target
/// runs anything.
pub fn probe(dir: &Path) -> std::io::Result<()> {
    let _one = PROBE.lock_or_recover();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        // Empty also after an earlier run of this pid that stopped mid-probe.
        .truncate(true)
        .mode(0o600)
        .open(dir.join(format!(".probe-{}", std::process::id())))?;
    f.write_all(b"probe")?;
    f.set_len(0)
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

    #[test]
    fn the_probe_keeps_one_empty_file_and_fails_where_nothing_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            probe(dir.path()).unwrap();
        }
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "one probe file, not one per probe");
        let f = files[0].as_ref().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert!(probe(&dir.path().join("gone")).is_err());
    }
}
