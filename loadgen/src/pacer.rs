//! The pacer: ticks at exact due times from an OS thread, for the open-loop schedules.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::net;

/// Tick `i` (for `i` in `0..count`) at `start + i * period`, from an OS thread.
///
/// tokio's timer wheel has 1 ms granularity and rounds up, so `sleep_until(due)` wakes
/// 0–2 ms late, and every open-loop latency is measured from the due time: the generator's
/// own lateness would read as server latency (at light load it was most of it). A thread
/// in `nanosleep` wakes within tens of microseconds. Late ticks queue up and are fired at
/// once, still measured from their due time.
pub(crate) fn pacer(
    start: Instant,
    period: Duration,
    count: u64,
    realtime: bool,
) -> mpsc::UnboundedReceiver<u64> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || pace(start, period, count, realtime, |i| tx.send(i).is_ok()));
    rx
}

/// Call `tick(i)` at `start + i * period` for `i` in `0..count`, on this (OS) thread,
/// until it returns false.
///
/// The thread asks for real-time scheduling (SCHED_FIFO) first: it sleeps nearly all the
/// time, but on a host whose cores the server keeps busy an ordinary thread waits
/// milliseconds for a CPU after its sleep ends (p99 2.2 ms at 700 msg/s, measured), and
/// that wait is lateness. Without the privilege it stays an ordinary thread.
pub(crate) fn pace(
    start: Instant,
    period: Duration,
    count: u64,
    realtime: bool,
    mut tick: impl FnMut(u64) -> bool,
) {
    if realtime {
        net::realtime_thread(net::PACER_PRIORITY);
    }
    for i in 0..count {
        let due = start + period.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if !tick(i) {
            return;
        }
    }
}
