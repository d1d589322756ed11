//! Counters for Prometheus, kept in atomics so the data path never waits on
//! them. Rendering is the text exposition format, version 0.0.4.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the kill-latency buckets, in milliseconds.
const KILL_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000];

/// A histogram with fixed buckets (cumulative on rendering).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; KILL_BUCKETS_MS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros();
        if let Some(i) = KILL_BUCKETS_MS
            .iter()
            .position(|b| us <= u128::from(*b) * 1000)
        {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in KILL_BUCKETS_MS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let le = *b as f64 / 1000.0;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins_ok: Counter,
    pub logins_failed: Counter,
    pub logins_locked: Counter,
    pub locks_created: Counter,
    pub kills: Counter,
    pub bytes_up: Counter,
    pub bytes_down: Counter,
    pub rules_fired: Counter,
    pub webhooks_failed: Counter,
    /// From the kill request to the client's transport being cut.
    pub kill_latency: Histogram,
}

impl Metrics {
    /// The exposition text; `live` and `locks_in_force` are gauges read by the caller.
    pub fn render(&self, live: usize, locks_in_force: usize) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "portcullis_live_sessions",
            "Authenticated connections now.",
            live as u64,
        );
        gauge(
            &mut out,
            "portcullis_locks_in_force",
            "Locks now in force.",
            locks_in_force as u64,
        );
        let _ = writeln!(
            out,
            "# HELP portcullis_logins_total Logins by result.\n# TYPE portcullis_logins_total counter"
        );
        for (result, c) in [
            ("ok", &self.logins_ok),
            ("failed", &self.logins_failed),
            ("locked", &self.logins_locked),
        ] {
            let _ = writeln!(
                out,
                "portcullis_logins_total{{result=\"{result}\"}} {}",
                c.get()
            );
        }
        let counters = [
            (
                "portcullis_locks_created_total",
                "Locks created.",
                &self.locks_created,
            ),
            (
                "portcullis_kills_total",
                "Live sessions ended by locks.",
                &self.kills,
            ),
            (
                "portcullis_bytes_up_total",
                "Client-to-target bytes of ended sessions.",
                &self.bytes_up,
            ),
            (
                "portcullis_bytes_down_total",
                "Target-to-client bytes of ended sessions.",
                &self.bytes_down,
            ),
            (
                "portcullis_rules_fired_total",
                "Automatic lockdown rules fired.",
                &self.rules_fired,
            ),
            (
                "portcullis_webhooks_failed_total",
                "Webhook notifications given up.",
                &self.webhooks_failed,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        self.kill_latency.render(
            "portcullis_kill_latency_seconds",
            "From a kill request to the client's connection being cut.",
            &mut out,
        );
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.logins_ok.add(3);
        m.kill_latency.observe(Duration::from_micros(1500));
        m.kill_latency.observe(Duration::from_millis(40));
        let t = m.render(2, 1);
        assert!(t.contains("portcullis_live_sessions 2\n"), "{t}");
        assert!(
            t.contains("portcullis_logins_total{result=\"ok\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("portcullis_kill_latency_seconds_bucket{le=\"0.001\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("portcullis_kill_latency_seconds_bucket{le=\"0.002\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("portcullis_kill_latency_seconds_bucket{le=\"0.05\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("portcullis_kill_latency_seconds_count 2\n"),
            "{t}"
        );
    }
}
