//! The generator's own health during a run: its CPU time and its pacer lateness (due time
//! to the moment the frame is written), and the judgment of whether the generator, not
//! the server, was the limit. A starved generator writes late, and every open-loop latency
//! is measured from the due time, so its starvation would read as server latency: such a
//! run is reported as generator-limited and never passes.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::report::MetricSummary;

/// When the generator counts as the bottleneck.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Pacer lateness p99 above this (ms).
    pub max_lateness_p99_ms: f64,
    /// Average CPU of the generator process above this many cores.
    pub max_cpu_cores: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_lateness_p99_ms: 1.0,
            max_cpu_cores: 0.9,
        }
    }
}

/// User + system CPU time this process has used so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return Duration::ZERO;
        }
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU and wall clock from the start of a phase.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    cpu: Duration,
    wall: Instant,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            cpu: cpu_time(),
            wall: Instant::now(),
        }
    }

    /// (CPU used, wall time passed) since `start`.
    pub fn read(&self) -> (Duration, Duration) {
        (cpu_time().saturating_sub(self.cpu), self.wall.elapsed())
    }
}

/// What the generator cost and how late it was, with the verdict on itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GeneratorHealth {
    /// User + system CPU of the generator during the send phase.
    pub cpu_ms: f64,
    /// Average cores the generator kept busy during the send phase.
    pub cpu_cores: f64,
    /// CPU per 1,000 messages sent (`None` when nothing was sent).
    pub cpu_ms_per_1000_messages: Option<f64>,
    /// Due time to the frame being written, per message.
    pub lateness: Option<MetricSummary>,
    /// Due time to the pacer thread handing the message to its socket task (the part of
    /// `lateness` spent waiting for the OS to run the pacer thread).
    #[serde(default)]
    pub pacer_wake: Option<MetricSummary>,
    /// Why the generator was the limit; empty when it was not.
    pub limited_by: Vec<String>,
}

impl GeneratorHealth {
    pub fn judge(
        cpu: Duration,
        wall: Duration,
        sent: u64,
        lateness: Option<&Histogram<u64>>,
        pacer_wake: Option<&Histogram<u64>>,
        limits: Limits,
    ) -> Self {
        let cpu_ms = cpu.as_secs_f64() * 1000.0;
        let cpu_cores = if wall.is_zero() {
            0.0
        } else {
            cpu.as_secs_f64() / wall.as_secs_f64()
        };
        let lateness = lateness
            .filter(|h| !h.is_empty())
            .map(|h| MetricSummary::from_hist(h, Some(limits.max_lateness_p99_ms)));
        let mut limited_by = Vec::new();
        if let Some(l) = lateness.as_ref().filter(|l| !l.pass) {
            limited_by.push(format!(
                "pacer lateness p99 {:.2} ms > {} ms",
                l.p99_ms, limits.max_lateness_p99_ms
            ));
        }
        if cpu_cores > limits.max_cpu_cores {
            limited_by.push(format!(
                "generator CPU {cpu_cores:.2} cores > {} cores",
                limits.max_cpu_cores
            ));
        }
        GeneratorHealth {
            cpu_ms,
            cpu_cores,
            cpu_ms_per_1000_messages: (sent > 0).then(|| cpu_ms * 1000.0 / sent as f64),
            lateness,
            pacer_wake: pacer_wake
                .filter(|h| !h.is_empty())
                .map(|h| MetricSummary::from_hist(h, None)),
            limited_by,
        }
    }

    pub fn limited(&self) -> bool {
        !self.limited_by.is_empty()
    }

    pub fn print(&self) {
        let per = self
            .cpu_ms_per_1000_messages
            .map_or("-".into(), |v| format!("{v:.1} ms"));
        let late = self.lateness.as_ref().map_or("-".into(), |l| {
            format!(
                "p50 {:.3} / p99 {:.3} / max {:.3} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            )
        });
        let wake = self.pacer_wake.as_ref().map_or(String::new(), |w| {
            format!(" (pacer thread wake p99 {:.3} ms)", w.p99_ms)
        });
        println!(
            "generator: CPU {:.0} ms ({:.2} cores, {per} per 1,000 messages) | pacer lateness {late}{wake}",
            self.cpu_ms, self.cpu_cores
        );
        if self.limited() {
            println!(
                "GENERATOR-LIMITED: {} — these figures measure the generator, not the server",
                self.limited_by.join("; ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_us: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::report::histogram();
        for v in values_us {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn an_honest_run_is_not_flagged() {
        let h = hist((0..1000).map(|i| 20 + i % 200)); // 20–220 µs late
        let g = GeneratorHealth::judge(
            Duration::from_millis(300),
            Duration::from_secs(3),
            3000,
            Some(&h),
            None,
            Limits::default(),
        );
        assert!(!g.limited(), "{g:?}");
        assert!((g.cpu_cores - 0.1).abs() < 1e-9);
        assert_eq!(g.cpu_ms_per_1000_messages, Some(100.0));
    }

    #[test]
    fn late_pacer_or_busy_cpu_flags_the_generator() {
        let late = hist((0..1000).map(|i| if i % 50 == 0 { 5_000 } else { 100 }));
        let g = GeneratorHealth::judge(
            Duration::from_millis(100),
            Duration::from_secs(1),
            100,
            Some(&late),
            None,
            Limits::default(),
        );
        assert_eq!(g.limited_by.len(), 1, "{g:?}");
        assert!(g.limited_by[0].contains("lateness"));

        let busy = GeneratorHealth::judge(
            Duration::from_millis(950),
            Duration::from_secs(1),
            100,
            Some(&hist([100])),
            None,
            Limits::default(),
        );
        assert!(busy.limited_by[0].contains("CPU"), "{busy:?}");
        assert!(cpu_time() > Duration::ZERO);
    }
}
