//! `[recordings]`: free-space marks of the recordings disk.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecordings {
    low_water_mb: Option<u64>,
    hard_water_mb: Option<u64>,
}

/// The validated marks, in bytes; 0 disables one.
#[derive(Debug, Clone, Copy)]
pub struct RecordingsSpace {
    /// Below this, new sessions are refused; live ones go on.
    pub low_bytes: u64,
    /// Below this, live sessions end too (storage counts as unwritable).
    pub hard_bytes: u64,
}

impl RawRecordings {
    pub(super) fn check(self, problems: &mut Vec<String>) -> RecordingsSpace {
        check(self.low_water_mb, self.hard_water_mb, problems)
    }
}

fn check(low_mb: Option<u64>, hard_mb: Option<u64>, problems: &mut Vec<String>) -> RecordingsSpace {
    let low = low_mb.unwrap_or(1024);
    let hard = hard_mb.unwrap_or(256);
    for (key, v) in [
        ("recordings.low_water_mb", low),
        ("recordings.hard_water_mb", hard),
    ] {
        if v > 1 << 30 {
            problems.push(format!("{key} = {v}: expected at most 1073741824"));
        }
    }
    if low > 0 && hard > low {
        problems.push(format!(
            "recordings.hard_water_mb = {hard} is above recordings.low_water_mb = {low}: the hard mark must be the lower one"
        ));
    }
    RecordingsSpace {
        low_bytes: low.min(1 << 30) << 20,
        hard_bytes: hard.min(1 << 30) << 20,
    }
}
