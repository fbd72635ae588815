//! Server memory read from `/proc`: RSS sampled around the ramp, per socket, and single fields.

use serde::{Deserialize, Serialize};

/// Resident memory of a server process, sampled around the ramp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerMemory {
    pub(crate) pid: u32,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    /// (after - before) / sockets this instance holds.
    pub(crate) kib_per_socket: Option<f64>,
}

impl ServerMemory {
    fn new(pid: u32, before: Option<u64>, after: Option<u64>, sockets: usize, n: usize) -> Self {
        let per = match (before, after) {
            (Some(b), Some(a)) if sockets > 0 => {
                Some(a.saturating_sub(b) as f64 / (sockets as f64 / n.max(1) as f64))
            }
            _ => None,
        };
        ServerMemory {
            pid,
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_socket: per,
        }
    }

    /// One entry per `--server-pid`, from its RSS before and after the ramp of `sockets`
    /// (spread evenly over the processes).
    pub(crate) fn around_ramp(
        pids: &[u32],
        before: &[Option<u64>],
        after: &[Option<u64>],
        sockets: usize,
    ) -> Vec<Self> {
        pids.iter()
            .zip(before.iter().zip(after.iter()))
            .map(|(pid, (b, a))| ServerMemory::new(*pid, *b, *a, sockets, pids.len()))
            .collect()
    }
}

/// RSS of each process (`None` where it cannot be read).
pub(crate) fn rss_of(pids: &[u32]) -> Vec<Option<u64>> {
    pids.iter().map(|p| rss_kib(*p)).collect()
}

/// Resident memory of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:` for the peak).
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
