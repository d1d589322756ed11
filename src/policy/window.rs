//! Time windows: weekday and time-of-day ranges in an IANA time zone.
//!
//! Written as `mon-fri 08:00-18:00; sat 10:00-14:00; sun 22:00-06:00`. A
//! range whose end is not after its start crosses midnight and belongs to
//! the day it starts on. `24:00` is the end of a day. Local times that do not
//! exist (spring forward) or exist twice (fall back) are resolved the way
//! RFC 9557/Temporal's "compatible" rule does: a missing time moves forward
//! by the gap, a repeated time takes its first occurrence.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin)")]
    Zone(String),
    #[error("cannot read window {0:?}: expected e.g. \"mon-fri 08:00-18:00\"")]
    Syntax(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    /// Monday = 0.
    days: [bool; 7],
    start_min: u16,
    end_min: u16,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    zone: String,
    rules: Vec<Rule>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<usize> {
    DAYS.iter().position(|d| *d == s)
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if h > 24 || m > 59 || (h == 24 && m != 0) || h.to_string().len() > 2 || m.to_string().len() > 2
    {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_days(spec: &str) -> Option<[bool; 7]> {
    let mut days = [false; 7];
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None if part == "daily" || part == "*" => days = [true; 7],
            None => days[day(part)?] = true,
        }
    }
    Some(days)
}

impl Schedule {
    pub fn parse(zone: &str, spec: &str) -> Result<Schedule, WindowError> {
        let tz = TimeZone::get(zone).map_err(|_| WindowError::Zone(zone.to_string()))?;
        let mut rules = Vec::new();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || WindowError::Syntax(item.to_string());
            let lower = item.to_ascii_lowercase();
            let (days, range) = lower.split_once(' ').ok_or_else(bad)?;
            let days = parse_days(days.trim()).ok_or_else(bad)?;
            let (a, b) = range.trim().split_once('-').ok_or_else(bad)?;
            let (start_min, end_min) = (
                minutes(a.trim()).ok_or_else(bad)?,
                minutes(b.trim()).ok_or_else(bad)?,
            );
            if start_min >= 24 * 60 {
                return Err(bad());
            }
            rules.push(Rule {
                days,
                start_min,
                end_min,
            });
        }
        if rules.is_empty() {
            return Err(WindowError::Syntax(spec.to_string()));
        }
        Ok(Schedule {
            tz,
            zone: zone.to_string(),
            rules,
        })
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    fn instant(&self, date: Date, min: u16) -> Option<Timestamp> {
        let (date, min) = if min >= 24 * 60 {
            (date.tomorrow().ok()?, min - 24 * 60)
        } else {
            (date, min)
        };
        let t = Time::new(
            i8::try_from(min / 60).ok()?,
            i8::try_from(min % 60).ok()?,
            0,
            0,
        )
        .ok()?;
        self.tz
            .to_ambiguous_timestamp(DateTime::from_parts(date, t))
            .compatible()
            .ok()
    }

    /// Occurrences (start, end) of every rule on days starting at `from`.
    fn occurrences(&self, from: Date, days: i32) -> Vec<(Timestamp, Timestamp)> {
        let mut out = Vec::new();
        let mut date = from;
        for _ in 0..days {
            let wd = usize::from(date.weekday().to_monday_zero_offset().unsigned_abs());
            for r in self.rules.iter().filter(|r| r.days[wd]) {
                let end_min = if r.end_min <= r.start_min {
                    r.end_min + 24 * 60
                } else {
                    r.end_min
                };
                if let (Some(s), Some(e)) =
                    (self.instant(date, r.start_min), self.instant(date, end_min))
                    && s < e
                {
                    out.push((s, e));
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        out.sort();
        out
    }

    /// If `now` is inside a window, the instant that window (merged with any
    /// window that continues it without a gap) closes.
    pub fn open_until(&self, now: Timestamp) -> Option<Timestamp> {
        let today = now.to_zoned(self.tz.clone()).date();
        let start = today.yesterday().unwrap_or(today);
        let occ = self.occurrences(start, 9);
        let mut end = occ
            .iter()
            .filter(|(s, e)| *s <= now && now < *e)
            .map(|(_, e)| *e)
            .max()?;
        // Extend through windows that start before the current one ends.
        loop {
            let next = occ
                .iter()
                .filter(|(s, e)| *s <= end && *e > end)
                .map(|(_, e)| *e)
                .max();
            match next {
                Some(e) => end = e,
                None => return Some(end),
            }
        }
    }

    /// The next instant after `now` at which a window opens (within 8 days).
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        let today = now.to_zoned(self.tz.clone()).date();
        self.occurrences(today.yesterday().unwrap_or(today), 10)
            .into_iter()
            .map(|(s, _)| s)
            .filter(|s| *s > now)
            .min()
    }

    /// `2026-03-30 08:00 CEST (Europe/Berlin)`, for messages.
    /// `t` in the window's zone: its abbreviation, and the zone's name
    /// only when that says more ("08:00 CET (Europe/Berlin)", "17:23 UTC").
    pub fn show(&self, t: Timestamp) -> String {
        let zoned = t.to_zoned(self.tz.clone());
        let shown = zoned.strftime("%Y-%m-%d %H:%M %Z").to_string();
        if shown.ends_with(&format!(" {}", self.zone)) {
            shown
        } else {
            format!("{shown} ({})", self.zone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin(spec: &str) -> Schedule {
        Schedule::parse("Europe/Berlin", spec).unwrap()
    }

    #[test]
    fn a_zone_is_named_once() {
        let t = ts("2026-11-26T17:23:00Z");
        let utc = Schedule::parse("UTC", "daily 00:00-01:00").unwrap();
        assert_eq!(utc.show(t), "2026-11-26 17:23 UTC");
        assert_eq!(
            berlin("daily 00:00-01:00").show(t),
            "2026-11-26 18:23 CET (Europe/Berlin)"
        );
    }

    #[test]
    fn weekday_office_hours() {
        let s = berlin("mon-fri 08:00-18:00");
        // Thursday 2026-11-26 10:00 CET = 09:00 UTC.
        assert_eq!(
            s.open_until(ts("2026-11-26T09:00:00Z")),
            Some(ts("2026-11-26T17:00:00Z"))
        );
        assert_eq!(
            s.open_until(ts("2026-11-26T06:59:59Z")),
            None,
            "07:59:59 local"
        );
        assert_eq!(
            s.open_until(ts("2026-11-26T17:00:00Z")),
            None,
            "end is exclusive"
        );
        // Saturday: closed; opens Monday 08:00.
        assert_eq!(s.open_until(ts("2026-11-28T10:00:00Z")), None);
        assert_eq!(
            s.next_open(ts("2026-11-28T10:00:00Z")),
            Some(ts("2026-11-30T07:00:00Z"))
        );
        assert_eq!(
            s.show(ts("2026-11-30T07:00:00Z")),
            "2026-11-30 08:00 CET (Europe/Berlin)"
        );
    }

    #[test]
    fn ranges_crossing_midnight_belong_to_their_start_day() {
        let s = berlin("fri 22:00-06:00");
        // Saturday 03:00 local is inside Friday's night window.
        assert_eq!(
            s.open_until(ts("2026-11-28T02:00:00Z")),
            Some(ts("2026-11-28T05:00:00Z"))
        );
        // Friday 03:00 local is not (Thursday has no window).
        assert_eq!(s.open_until(ts("2026-11-27T02:00:00Z")), None);
        let wrap = berlin("sun 23:00-01:00");
        assert_eq!(
            wrap.open_until(ts("2026-11-30T23:30:00Z")),
            None,
            "Monday 00:30 after Sunday? no: Tue"
        );
        assert_eq!(
            wrap.open_until(ts("2026-11-29T23:30:00Z")),
            Some(ts("2026-11-30T00:00:00Z"))
        );
    }

    #[test]
    fn adjacent_windows_merge() {
        let s = berlin("mon 00:00-24:00; tue 00:00-12:00");
        assert_eq!(
            s.open_until(ts("2026-11-30T20:00:00Z")),
            Some(ts("2026-12-01T11:00:00Z"))
        );
    }

    #[test]
    fn berlin_spring_forward_gap() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST. 02:30 does not exist and
        // moves forward by the gap to 03:30 CEST (01:30 UTC).
        let s = berlin("sun 01:30-02:30");
        assert_eq!(
            s.open_until(ts("2026-03-29T00:45:00Z")),
            Some(ts("2026-03-29T01:30:00Z"))
        );
        // The window is one hour of wall-clock time long in reality.
        let s = berlin("sun 01:00-04:00");
        assert_eq!(
            s.open_until(ts("2026-03-29T00:00:00Z")),
            Some(ts("2026-03-29T02:00:00Z"))
        );
        assert_eq!(
            s.next_open(ts("2026-03-28T12:00:00Z")),
            Some(ts("2026-03-29T00:00:00Z"))
        );
    }

    #[test]
    fn berlin_fall_back_fold() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET. 02:30 happens twice;
        // the window starts at the first (00:30 UTC) and 03:30 CET ends it.
        let s = berlin("sun 02:30-03:30");
        assert_eq!(
            s.open_until(ts("2026-10-25T00:30:00Z")),
            Some(ts("2026-10-25T02:30:00Z"))
        );
        assert_eq!(s.open_until(ts("2026-10-25T00:29:59Z")), None);
    }

    #[test]
    fn new_york_transitions() {
        let s = Schedule::parse("America/New_York", "daily 09:00-17:00").unwrap();
        // 2026-03-08 is the spring-forward Sunday: 09:00 EDT = 13:00 UTC.
        assert_eq!(
            s.open_until(ts("2026-03-08T14:00:00Z")),
            Some(ts("2026-03-08T21:00:00Z"))
        );
        // The day before, 09:00 EST = 14:00 UTC.
        assert_eq!(s.open_until(ts("2026-03-07T13:59:00Z")), None);
        // 2026-11-01 fall back: 17:00 EST = 22:00 UTC.
        assert_eq!(
            s.open_until(ts("2026-11-01T15:00:00Z")),
            Some(ts("2026-11-01T22:00:00Z"))
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "",
            "monday 08:00-18:00",
            "mon 8-18",
            "mon 25:00-26:00",
            "mon 08:60-09:00",
            "mon 24:00-01:00",
            "mon-fri",
        ] {
            assert!(Schedule::parse("Europe/Berlin", bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Schedule::parse("Mars/Olympus", "mon 08:00-09:00"),
            Err(WindowError::Zone(_))
        ));
        assert!(Schedule::parse("UTC", "sat,sun 10:00-12:00; wed-mon 01:00-02:00").is_ok());
    }
}
