//! Where a message's CPU goes on this host: the CPU of other processes (by command name:
//! chatd, postgres, redis-server) during the send phase, per message, beside the host's
//! idle and steal time. The generator shares the cores with what it measures, so a
//! sustained rate only means something with the whole budget beside it (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinError;

/// CPU ticks of the watched processes and of the whole host at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Ticks (user + system, with reaped children) per command name.
    by_name: BTreeMap<String, u64>,
    /// The host's `/proc/stat` totals: all, idle (with I/O wait) and steal ticks.
    host_total: u64,
    host_idle: u64,
    host_steal: u64,
}

/// One watched command name's share of the send phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessCpu {
    pub name: String,
    /// Cores kept busy on average (all processes of that name together).
    pub cores: f64,
    /// CPU per message sent, in µs.
    pub us_per_message: f64,
}

/// The host's CPU during the send phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostCpu {
    pub processes: Vec<ProcessCpu>,
    /// Names asked for that no process had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_found: Vec<String>,
    /// Of all CPUs' time: idle (with I/O wait), and stolen by the hypervisor.
    pub idle_pct: f64,
    pub steal_pct: f64,
}

impl HostCpu {
    pub(crate) fn print(&self) {
        let procs: Vec<String> = self
            .processes
            .iter()
            .map(|p| {
                format!(
                    "{} {:.0} µs ({:.2} cores)",
                    p.name, p.us_per_message, p.cores
                )
            })
            .collect();
        let missing = if self.not_found.is_empty() {
            String::new()
        } else {
            format!(" | no such process: {}", self.not_found.join(", "))
        };
        println!(
            "host CPU per message: {} | host idle {:.0} %, steal {:.0} %{missing}",
            procs.join(", "),
            self.idle_pct,
            self.steal_pct
        );
    }
}

/// Read the CPU of every process named in `names`, and the host's.
pub(crate) fn snapshot(names: &[String]) -> Snapshot {
    let mut snap = Snapshot::default();
    if names.is_empty() {
        return snap;
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        if let Some((total, idle, steal)) = stat.lines().next().and_then(host_ticks) {
            (snap.host_total, snap.host_idle, snap.host_steal) = (total, idle, steal);
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return snap;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // gone meanwhile
        };
        if let Some((comm, ticks)) = process_ticks(&stat) {
            if let Some(name) = names.iter().find(|n| comm_of(n) == comm) {
                *snap.by_name.entry(name.clone()).or_default() += ticks;
            }
        }
    }
    snap
}

/// [`snapshot`] on a blocking thread: reading every `/proc/PID/stat` would otherwise hold a
/// runtime worker that socket tasks (deliveries still arriving) are waiting for.
pub(crate) async fn snapshot_blocking(names: &[String]) -> Result<Snapshot, JoinError> {
    let names = names.to_vec();
    tokio::task::spawn_blocking(move || snapshot(&names)).await
}

/// A name as the kernel keeps it in `/proc/PID/stat`: its first 15 bytes.
fn comm_of(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// What the watched processes and the host did between two snapshots, over `wall` and
/// `messages` sent. `None` when nothing was watched; a name no process had at either
/// snapshot (a typo, another PID namespace) is left out and listed in `not_found`.
pub(crate) fn between(
    names: &[String],
    a: &Snapshot,
    b: &Snapshot,
    wall: Duration,
    messages: u64,
) -> Option<HostCpu> {
    if names.is_empty() {
        return None;
    }
    let hz = ticks_per_second();
    let secs = wall.as_secs_f64().max(1e-9);
    let seen = |name: &String| a.by_name.contains_key(name) || b.by_name.contains_key(name);
    let not_found = names.iter().filter(|n| !seen(n)).cloned().collect();
    let processes = names
        .iter()
        .filter(|n| seen(n))
        .map(|name| {
            // A process that exited took its ticks along: never below zero.
            let ticks = (b.by_name.get(name).copied().unwrap_or(0))
                .saturating_sub(a.by_name.get(name).copied().unwrap_or(0));
            let cpu = ticks as f64 / hz;
            ProcessCpu {
                name: name.clone(),
                cores: cpu / secs,
                us_per_message: if messages > 0 {
                    cpu * 1e6 / messages as f64
                } else {
                    0.0
                },
            }
        })
        .collect();
    let total = b.host_total.saturating_sub(a.host_total).max(1) as f64;
    Some(HostCpu {
        processes,
        not_found,
        idle_pct: b.host_idle.saturating_sub(a.host_idle) as f64 * 100.0 / total,
        steal_pct: b.host_steal.saturating_sub(a.host_steal) as f64 * 100.0 / total,
    })
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// `(comm, utime + stime + cutime + cstime)` of a `/proc/PID/stat` line. The command name
/// is in parentheses and may hold spaces or parentheses itself: the fields start after the
/// last `)`.
fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
    let sum = tick(11)? + tick(12)? + tick(13)?.max(0) + tick(14)?.max(0);
    Some((comm, sum.max(0) as u64))
}

/// `(all, idle + iowait, steal)` ticks of `/proc/stat`'s first (`cpu`) line.
fn host_ticks(line: &str) -> Option<(u64, u64, u64)> {
    let mut parts = line.split_whitespace();
    if parts.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    let all: u64 = v.iter().take(8).sum();
    Some((all, v.get(3)? + v.get(4)?, *v.get(7)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_line_gives_its_name_and_ticks_even_with_parentheses_in_the_name() {
        let line = "4242 (tokio (rt)) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    150 30 7 3 20 0 8 0 12345 1000000 500 18446744073709551615";
        assert_eq!(process_ticks(line), Some(("tokio (rt)", 190)));
        assert_eq!(process_ticks("garbage"), None);
    }

    #[test]
    fn the_host_line_gives_all_idle_and_steal() {
        let line = "cpu  100 5 50 800 20 1 4 30 0 0";
        assert_eq!(host_ticks(line), Some((1010, 820, 30)));
        assert_eq!(host_ticks("cpu0 1 2 3 4 5 6 7 8"), None);
    }

    #[test]
    fn cpu_between_two_snapshots_is_per_message_and_per_core() {
        let names = vec!["postgres".to_string(), "chatd".to_string()];
        let hz = ticks_per_second() as u64;
        let mut a = Snapshot::default();
        a.by_name.insert("postgres".into(), hz);
        let mut b = Snapshot {
            host_total: 2 * 10 * hz,
            host_idle: 5 * hz,
            host_steal: hz,
            ..Snapshot::default()
        };
        // Ten seconds, 10,000 messages: postgres used 5 s, chatd 2 s.
        b.by_name.insert("postgres".into(), 6 * hz);
        b.by_name.insert("chatd".into(), 2 * hz);
        let cpu = between(&names, &a, &b, Duration::from_secs(10), 10_000).expect("watched");
        assert_eq!(cpu.processes[0].name, "postgres");
        assert!((cpu.processes[0].us_per_message - 500.0).abs() < 1e-6);
        assert!((cpu.processes[0].cores - 0.5).abs() < 1e-9);
        assert!((cpu.processes[1].us_per_message - 200.0).abs() < 1e-6);
        assert!((cpu.idle_pct - 25.0).abs() < 1e-9);
        assert!((cpu.steal_pct - 5.0).abs() < 1e-9);
        assert!(between(&[], &a, &b, Duration::from_secs(1), 1).is_none());
        let typo = vec!["chatd".to_string(), "redis".to_string()];
        let cpu = between(&typo, &a, &b, Duration::from_secs(10), 10_000).expect("watched");
        assert_eq!(cpu.processes.len(), 1, "only the names a process had");
        assert_eq!(cpu.not_found, ["redis"]);
    }

    #[test]
    fn a_long_name_is_compared_as_the_kernel_cuts_it() {
        assert_eq!(comm_of("postgres"), "postgres");
        assert_eq!(comm_of("a-very-long-process-name"), "a-very-long-pro");
        assert_eq!(comm_of("ééééééééé"), "ééééééé", "never inside a character");
    }
}
