//! The wall clock, read in one place: milliseconds since the Unix epoch.
//! A leaf (pure `std`): anything may import it, it imports nothing of ours.

/// Now, in milliseconds since the epoch; 0 before 1970, saturating far past.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
