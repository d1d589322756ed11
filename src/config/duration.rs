//! Durations as operators write them (`90s`, `15m`, `2h`, `1d`), for the
//! config, the CLI, the API and the menu alike.

/// Whole seconds, more than zero; the error says how to write one.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("cannot read duration {s:?}: use e.g. 90s, 15m, 2h, 1d");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(bad)
}
