//! Latency histograms, the SLO verdict table, the JSON result file and `compare`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microsecond histogram from 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Quantiles of one metric, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricSummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The p99 target, if any.
    pub target_p99_ms: Option<f64>,
    pub pass: bool,
}

impl MetricSummary {
    pub fn from_hist(h: &Histogram<u64>, target: Option<f64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        let p99 = ms(h.value_at_quantile(0.99));
        MetricSummary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: p99,
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            target_p99_ms: target,
            pass: target.is_none_or(|t| h.is_empty() || p99 <= t),
        }
    }
}

/// Everything a run found; written with `--json` and read back by `compare`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub server: String,
    pub users: usize,
    pub sockets: usize,
    pub rate_per_sec: f64,
    pub duration_secs: f64,
    pub started_at: String,
    pub connected: u64,
    pub connect_failures: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub errors: BTreeMap<String, u64>,
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Server resident memory around the ramp, when `--server-pid` was given.
    #[serde(default)]
    pub server_memory: Vec<crate::memory::ServerMemory>,
    /// The generator's own CPU and lateness, and whether it was the limit.
    #[serde(default)]
    pub generator: Option<crate::selfcheck::GeneratorHealth>,
    /// CPU of the processes named with `--cpu-of` during the send phase, per message, and
    /// the host's idle and steal time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpu: Option<crate::hostcpu::HostCpu>,
    /// Delivery per second of the send phase (by due time): where in the run the tail is.
    #[serde(default)]
    pub timeline: Vec<Second>,
    pub pass: bool,
}

/// Delivery of the messages due in one second of the send phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the first message was due.
    pub at: u64,
    pub delivered: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Second {
    /// One entry per second from per-message delivery latencies in µs (0 = not delivered),
    /// message `k` being due at `k / rate` seconds.
    pub fn timeline(delivery_us: impl Iterator<Item = u64>, rate: f64) -> Vec<Second> {
        let mut seconds: Vec<Histogram<u64>> = Vec::new();
        for (k, us) in delivery_us.enumerate() {
            let at = (k as f64 / rate) as usize;
            if seconds.len() <= at {
                seconds.resize_with(at + 1, histogram);
            }
            if us > 0 {
                seconds[at].saturating_record(us);
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        seconds
            .iter()
            .enumerate()
            .map(|(at, h)| Second {
                at: at as u64,
                delivered: h.len(),
                p50_ms: ms(h.value_at_quantile(0.5)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                max_ms: ms(h.max()),
            })
            .collect()
    }
}

impl RunResult {
    pub fn print_table(&self) {
        println!();
        println!(
            "{:<22} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}  verdict",
            "metric", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "p99 target"
        );
        for (name, m) in &self.metrics {
            let target = m
                .target_p99_ms
                .map(|t| format!("< {t}"))
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<22} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10}  {}",
                name,
                m.count,
                m.p50_ms,
                m.p90_ms,
                m.p99_ms,
                m.p999_ms,
                m.max_ms,
                target,
                if m.pass { "ok" } else { "MISSED" }
            );
        }
        println!();
        println!(
            "sockets {} connected ({} failed) | sent {} acked {} delivered {} | lost {} duplicates {}",
            self.connected,
            self.connect_failures,
            self.sent,
            self.acked,
            self.delivered,
            self.lost,
            self.duplicates
        );
        for m in &self.server_memory {
            println!(
                "server pid {}: RSS {} KiB before the ramp, {} KiB after; {} KiB per socket",
                m.pid,
                m.rss_before_kib.map_or("?".into(), |v| v.to_string()),
                m.rss_after_kib.map_or("?".into(), |v| v.to_string()),
                m.kib_per_socket.map_or("?".into(), |v| format!("{v:.1}"))
            );
        }
        if !self.errors.is_empty() {
            let errs: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!("errors: {}", errs.join(" "));
        }
        let mut worst: Vec<&Second> = self.timeline.iter().collect();
        worst.sort_by(|a, b| b.p99_ms.total_cmp(&a.p99_ms));
        if worst.len() > 1 {
            let list: Vec<String> = worst
                .iter()
                .take(3)
                .map(|s| format!("t={}s p99 {:.1} ms (max {:.1})", s.at, s.p99_ms, s.max_ms))
                .collect();
            println!("worst seconds of delivery: {}", list.join(", "));
        }
        if let Some(g) = &self.generator {
            g.print();
        }
        if let Some(h) = &self.host_cpu {
            h.print();
        }
        let verdict = match (
            self.pass,
            self.generator.as_ref().is_some_and(|g| g.limited()),
        ) {
            (_, true) => "FAIL (generator-limited)",
            (true, false) => "PASS",
            (false, false) => "FAIL",
        };
        println!("verdict: {verdict}");
    }
}

/// `chat-loadgen compare A.json B.json`: B relative to A, per metric.
pub fn compare(a: &str, b: &str) -> Result<()> {
    let read = |p: &str| -> Result<RunResult> {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {p}"))?;
        serde_json::from_str(&text).with_context(|| format!("{p} is not a chat-loadgen result"))
    };
    let (ra, rb) = (read(a)?, read(b)?);
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "metric", "A p50", "B p50", "B/A", "A p99", "B p99", "B/A"
    );
    for (name, ma) in &ra.metrics {
        let Some(mb) = rb.metrics.get(name) else {
            continue;
        };
        let ratio = |x: f64, y: f64| if x > 0.0 { y / x } else { f64::NAN };
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>8.2} {:>10.2} {:>10.2} {:>8.2}",
            name,
            ma.p50_ms,
            mb.p50_ms,
            ratio(ma.p50_ms, mb.p50_ms),
            ma.p99_ms,
            mb.p99_ms,
            ratio(ma.p99_ms, mb.p99_ms)
        );
    }
    println!(
        "lost {} -> {}, duplicates {} -> {}",
        ra.lost, rb.lost, ra.duplicates, rb.duplicates
    );
    let cpu = |r: &RunResult| {
        r.generator
            .as_ref()
            .and_then(|g| g.cpu_ms_per_1000_messages)
            .map_or("-".to_string(), |v| format!("{v:.1}"))
    };
    println!(
        "generator CPU ms per 1,000 messages {} -> {}",
        cpu(&ra),
        cpu(&rb)
    );
    Ok(())
}

/// SPEC p99 targets in ms (the floor from the original design).
pub fn default_targets() -> BTreeMap<String, f64> {
    [
        ("connect", 1000.0),
        ("send_ack", 100.0),
        ("delivery", 100.0),
        ("rest_conversations", 50.0),
        ("rest_messages", 50.0),
        ("rest_mark_read", 50.0),
        ("rest_block_status", 20.0),
        // SPEC "Message lifecycle": search p99 < 50 ms; edits, deletes and reactions are
        // writes like a send (< 100 ms).
        ("rest_edit", 100.0),
        ("rest_react", 100.0),
        ("rest_delete", 100.0),
        ("rest_search", 50.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `metric=ms`, e.g. `delivery=50`.
pub fn parse_slo(s: &str) -> Result<(String, f64)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("--slo {s:?}: expected METRIC=MILLISECONDS"))?;
    let v: f64 = v
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| *v > 0.0)
        .with_context(|| format!("--slo {s:?}: milliseconds must be a positive number"))?;
    if !default_targets().contains_key(k.trim()) {
        anyhow::bail!(
            "--slo {s:?}: unknown metric; one of {}",
            default_targets()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((k.trim().to_string(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_buckets_messages_by_due_second() {
        // 10 msg/s for 3 s: second 1 has one slow message and one never delivered.
        let mut us = vec![2_000u64; 30];
        us[15] = 400_000;
        us[16] = 0;
        let t = Second::timeline(us.into_iter(), 10.0);
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].delivered, t[1].delivered, t[2].delivered),
            (10, 9, 10)
        );
        assert!((t[0].max_ms - 2.0).abs() < 0.01);
        assert!((t[1].max_ms - 400.0).abs() < 1.0);
        assert!((t[2].p99_ms - 2.0).abs() < 0.01);
    }

    #[test]
    fn summary_checks_p99_against_target() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 100).unwrap(); // 0.1 ms .. 100 ms
        }
        let s = MetricSummary::from_hist(&h, Some(50.0));
        assert!(!s.pass);
        assert!((s.p50_ms - 50.0).abs() < 0.5);
        assert!(MetricSummary::from_hist(&h, Some(150.0)).pass);
        assert!(MetricSummary::from_hist(&h, None).pass);
    }

    #[test]
    fn slo_parsing() {
        assert_eq!(parse_slo("delivery=50").unwrap(), ("delivery".into(), 50.0));
        assert!(parse_slo("delivery").is_err());
        assert!(parse_slo("delivery=-1").is_err());
        assert!(parse_slo("nonsense=5").is_err());
    }
}
