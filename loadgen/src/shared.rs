//! State every task of a run shares: the send schedule, per-message outcomes, counters, histograms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_protocol::{MessageId, UserId};
use hdrhistogram::Histogram;

use crate::report;

/// The run's latency histograms (µs), each created at its first sample.
#[derive(Default)]
pub(crate) struct Histograms {
    pub(crate) connect: Option<Histogram<u64>>,
    pub(crate) resume: Option<Histogram<u64>>,
    pub(crate) send_ack: Option<Histogram<u64>>,
    pub(crate) delivery: Option<Histogram<u64>>,
    /// The generator's own lateness: due time to the frame being written.
    pub(crate) lateness: Option<Histogram<u64>>,
    pub(crate) rest: BTreeMap<&'static str, Histogram<u64>>,
}

/// Microseconds since `since`, within the histograms' bounds.
pub(crate) fn elapsed_us(since: Instant) -> u64 {
    since.elapsed().as_micros().clamp(1, 600_000_000) as u64
}

pub(crate) fn record(h: &mut Option<Histogram<u64>>, since: Instant) {
    h.get_or_insert_with(report::histogram)
        .saturating_record(elapsed_us(since));
}

/// State shared by every task of a run.
pub(crate) struct Shared {
    /// When message 0 is due, and the spacing between messages.
    pub(crate) send_start: Mutex<Option<Instant>>,
    pub(crate) period: Duration,
    pub(crate) run_tag: String,
    /// Filler that brings each message to --message-bytes.
    pub(crate) content_pad: String,
    /// Per message: deliveries at the receiver's first socket, acks, and outcome flags.
    pub(crate) deliveries: Vec<AtomicU8>,
    pub(crate) acks: Vec<AtomicU8>,
    /// Per message: delivery latency in µs (0 = not delivered), for the storm window.
    pub(crate) delivery_us: Vec<AtomicU64>,
    /// When the storm dropped every socket, and how many have caught up since.
    pub(crate) storm_started: Mutex<Option<Instant>>,
    pub(crate) caught_up: AtomicU64,
    /// Nanoseconds from the drop to the last socket's `sync.complete`.
    pub(crate) last_caught_up_ns: AtomicU64,
    /// 1 = written to the socket, 2 = refused or never written (an error was counted).
    pub(crate) state: Vec<AtomicU8>,
    pub(crate) hists: Mutex<Histograms>,
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) connected: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) rest_done: AtomicU64,
    /// Each user's newest acknowledged message (the target of the `edit`, `delete` and
    /// `react` calls of the REST mix), kept only when the mix has them.
    pub(crate) recent: Option<Mutex<std::collections::HashMap<UserId, MessageId>>>,
    /// The highest message number acknowledged so far (searches look for one below it).
    pub(crate) max_acked: AtomicU64,
}

pub(crate) const WRITTEN: u8 = 1;
pub(crate) const REFUSED: u8 = 2;

impl Shared {
    /// Fresh state for `total_msgs` messages sent at `rate` per second, each padded to
    /// about `message_bytes`.
    pub(crate) fn new(run_tag: String, rate: f64, message_bytes: usize, total_msgs: u64) -> Self {
        Shared {
            send_start: Mutex::new(None),
            period: if rate > 0.0 {
                Duration::from_secs_f64(1.0 / rate)
            } else {
                Duration::ZERO
            },
            run_tag,
            content_pad: "x".repeat(message_bytes.saturating_sub(20).max(1)),
            deliveries: (0..total_msgs).map(|_| AtomicU8::new(0)).collect(),
            acks: (0..total_msgs).map(|_| AtomicU8::new(0)).collect(),
            delivery_us: (0..total_msgs).map(|_| AtomicU64::new(0)).collect(),
            storm_started: Mutex::new(None),
            caught_up: AtomicU64::new(0),
            last_caught_up_ns: AtomicU64::new(0),
            state: (0..total_msgs).map(|_| AtomicU8::new(0)).collect(),
            hists: Mutex::new(Histograms::default()),
            errors: Mutex::new(BTreeMap::new()),
            connected: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            rest_done: AtomicU64::new(0),
            recent: None,
            max_acked: AtomicU64::new(0),
        }
    }

    /// Keep each user's newest acknowledged message (for lifecycle calls in the REST mix).
    pub(crate) fn tracking_recent(mut self) -> Self {
        self.recent = Some(Mutex::new(std::collections::HashMap::new()));
        self
    }

    /// `user`'s newest acknowledged message, if it is tracked and there is one.
    pub(crate) fn recent_of(&self, user: UserId) -> Option<MessageId> {
        let recent = self.recent.as_ref()?;
        recent.lock().expect("recent lock").get(&user).copied()
    }

    /// Forget `id` as `user`'s newest (it was deleted).
    pub(crate) fn forget(&self, user: UserId, id: MessageId) {
        if let Some(recent) = &self.recent {
            let mut map = recent.lock().expect("recent lock");
            if map.get(&user) == Some(&id) {
                map.remove(&user);
            }
        }
    }

    pub(crate) fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind.into())
            .or_default() += 1;
    }

    pub(crate) fn error_total(&self) -> u64 {
        self.errors.lock().expect("errors lock").values().sum()
    }

    pub(crate) fn due(&self, k: u64) -> Option<Instant> {
        let start = (*self.send_start.lock().expect("start lock"))?;
        Some(start + self.period.mul_f64(k as f64))
    }

    pub(crate) fn temp_id(&self, k: u64) -> String {
        format!("lg{}-{k}", self.run_tag)
    }

    /// `k` of one of this run's temp ids.
    pub(crate) fn k_of(&self, temp_id: Option<&str>) -> Option<u64> {
        let rest = temp_id?.strip_prefix("lg")?;
        let (tag, k) = rest.split_once('-')?;
        if tag != self.run_tag {
            return None;
        }
        k.parse().ok().filter(|k| (*k as usize) < self.acks.len())
    }

    pub(crate) fn refuse(&self, k: u64) {
        if self.state[k as usize].swap(REFUSED, Ordering::AcqRel) != REFUSED {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Delivery of the messages due from the storm's drop until the last socket caught up.
pub(crate) fn storm_window(shared: &Shared) -> Option<Histogram<u64>> {
    let t0 = (*shared.storm_started.lock().expect("storm lock"))?;
    let t1 = t0 + Duration::from_nanos(shared.last_caught_up_ns.load(Ordering::Relaxed));
    let mut h = report::histogram();
    for k in 0..shared.delivery_us.len() as u64 {
        let us = shared.delivery_us[k as usize].load(Ordering::Relaxed);
        if us > 0 && shared.due(k).is_some_and(|d| d >= t0 && d <= t1) {
            h.saturating_record(us);
        }
    }
    (!h.is_empty()).then_some(h)
}
