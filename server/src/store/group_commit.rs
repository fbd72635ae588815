//! Group commit for sends: concurrent
//! [`MessageStore::insert_message`](super::MessageStore::insert_message) calls are gathered
//! and written by one [`MessageStore::insert_messages`](super::MessageStore::insert_messages)
//! (one transaction, one durable commit), each caller still getting its own outcome.
//!
//! No send waits for company: a writer takes what is queued the moment it is free (up to
//! `max_batch`), so at light load a batch is one send, and under load the sends that
//! queued while a commit was in flight go out together. Session 7 measured a lone send
//! costing more through a writer than stored by its caller (500 msg/s on PostgreSQL: p50
//! 7–9 ms against 2.5 ms); since sends in known conversations skip their pre-read the
//! medians match (docs/benchmarks.md, session 9). `writers: 0` keeps the unbatched path
//! at hand.
//! `writers` batches may be in flight at once (PostgreSQL overlaps their commits; SQLite
//! has one writer connection, so one is enough there). Each writer has its own queue and a
//! conversation always goes to the same one (`lane`), so batches in flight together do
//! not wait on each other's row locks (docs/decisions.md, "Group commit").

use std::panic::AssertUnwindSafe;

use chat_protocol::ConversationId;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::{DynStore, InsertOutcome, NewMessage, StoreError, StoreResult};

/// Sends queued beyond this make callers wait for room (backpressure, not memory growth).
const QUEUE: usize = 8192;

type Job = (NewMessage, oneshot::Sender<StoreResult<InsertOutcome>>);

/// Handle to the writer tasks; dropping every handle stops them once their queues are empty.
#[derive(Clone)]
pub struct GroupCommit {
    /// One queue per writer; none with `writers: 0`: every send is stored on its own by
    /// its caller.
    lanes: Vec<mpsc::Sender<Job>>,
    store: DynStore,
}

/// How sends are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most sends in one commit.
    pub max_batch: usize,
    /// Batches in flight at once; 0 turns group commit off (each send its own
    /// transaction, stored by the caller's task).
    pub writers: usize,
}

impl BatchSettings {
    /// What suits the backend: one writer for SQLite (one write connection), two for
    /// PostgreSQL. Fewer writers make bigger batches, and each statement's executor set-up
    /// and row-lock conflicts are paid per batch: two instead of four cut PostgreSQL's CPU
    /// ~20 % and delivery p99 by a third at 2,000 msg/s; one is cheaper still but queues
    /// sends at 3,000 msg/s (docs/benchmarks.md, session 11).
    pub fn for_backend(backend: &str) -> Self {
        BatchSettings {
            max_batch: 256,
            writers: if backend == "sqlite" { 1 } else { 2 },
        }
    }
}

impl GroupCommit {
    pub fn start(store: DynStore, settings: BatchSettings) -> Self {
        if settings.writers == 0 {
            return GroupCommit {
                lanes: Vec::new(),
                store,
            };
        }
        let max_batch = settings.max_batch.max(1);
        let per_lane = (QUEUE / settings.writers).max(max_batch);
        let lanes = (0..settings.writers)
            .map(|_| {
                let (tx, mut rx) = mpsc::channel::<Job>(per_lane);
                let store = store.clone();
                tokio::spawn(async move {
                    let mut batch = Vec::with_capacity(max_batch.min(64));
                    while rx.recv_many(&mut batch, max_batch).await > 0 {
                        let (sends, replies): (Vec<NewMessage>, Vec<_>) = batch.drain(..).unzip();
                        let started = std::time::Instant::now();
                        // A panic inside the store fails this batch, not the writer: with a
                        // queue per writer, a dead one would refuse its conversations for good.
                        let outcomes = AssertUnwindSafe(store.insert_messages(&sends))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                tracing::error!(sends = sends.len(), "send writer panicked");
                                Vec::new()
                            });
                        crate::metrics::METRICS.send_batch(sends.len(), started.elapsed());
                        let mut outcomes = outcomes.into_iter();
                        for reply in replies {
                            let r = outcomes.next().unwrap_or_else(|| {
                                Err(StoreError::Other("send missing from its batch".into()))
                            });
                            let _ = reply.send(r);
                        }
                    }
                });
                tx
            })
            .collect();
        GroupCommit { lanes, store }
    }

    /// Store one send with whatever else is being sent right now.
    pub async fn insert(&self, new: NewMessage) -> StoreResult<InsertOutcome> {
        let Some(tx) = lane(&self.lanes, new.message.conversation_id) else {
            return self.store.insert_message(&new).await;
        };
        let (reply, outcome) = oneshot::channel();
        tx.send((new, reply))
            .await
            .map_err(|_| StoreError::Unavailable("send writer stopped".into()))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("send writer stopped".into())))
    }
}

/// The writer a conversation's sends go to (`None`: group commit is off). One conversation
/// always goes to the same writer, so two batches in flight at once never hold the same
/// conversation row or the same pair of event-log counters: they overlap instead of one
/// waiting for the other's commit (they still can share a user who is in two busy
/// conversations; the lock order keeps that safe, only slower).
fn lane(lanes: &[mpsc::Sender<Job>], conv: ConversationId) -> Option<&mpsc::Sender<Job>> {
    if lanes.is_empty() {
        return None;
    }
    // The low 64 bits of a UUID: random in a v4; in a v7, variant and counter bits above
    // 32 random ones. Either way even enough over a handful of writers (tested).
    let bits = conv.0.as_u64_pair().1;
    lanes.get((bits % lanes.len() as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_always_goes_to_one_writer_and_conversations_spread_over_all() {
        let lanes: Vec<mpsc::Sender<Job>> = (0..3).map(|_| mpsc::channel(1).0).collect();
        let index = |conv| {
            let tx = lane(&lanes, conv).expect("a lane");
            lanes
                .iter()
                .position(|l| l.same_channel(tx))
                .expect("one of them")
        };
        let mut per_lane = [0usize; 3];
        for _ in 0..3000 {
            let conv = ConversationId::new();
            let first = index(conv);
            assert_eq!(index(conv), first, "the same writer every time");
            per_lane[first] += 1;
        }
        assert!(
            per_lane.iter().all(|&n| (800..=1200).contains(&n)),
            "spread evenly: {per_lane:?}"
        );
        assert!(lane(&[], ConversationId::new()).is_none(), "writers: 0");
    }
}
