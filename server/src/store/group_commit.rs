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
//! has one writer connection, so one is enough there).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::{DynStore, InsertOutcome, NewMessage, StoreError, StoreResult};

/// Sends queued beyond this make callers wait for room (backpressure, not memory growth).
const QUEUE: usize = 8192;

type Job = (NewMessage, oneshot::Sender<StoreResult<InsertOutcome>>);

/// Handle to the writer tasks; dropping every handle stops them once the queue is empty.
#[derive(Clone)]
pub struct GroupCommit {
    /// `None` with `writers: 0`: every send is stored on its own by its caller.
    tx: Option<mpsc::Sender<Job>>,
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
            return GroupCommit { tx: None, store };
        }
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let max_batch = settings.max_batch.max(1);
        for _ in 0..settings.writers {
            let (store, rx) = (store.clone(), rx.clone());
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&rx, max_batch).await {
                    let (sends, replies): (Vec<NewMessage>, Vec<_>) = batch.into_iter().unzip();
                    let outcomes = store.insert_messages(&sends).await;
                    crate::metrics::METRICS.send_batch(sends.len());
                    let mut outcomes = outcomes.into_iter();
                    for reply in replies {
                        let r = outcomes.next().unwrap_or_else(|| {
                            Err(StoreError::Other("send missing from its batch".into()))
                        });
                        let _ = reply.send(r);
                    }
                }
            });
        }
        GroupCommit {
            tx: Some(tx),
            store,
        }
    }

    /// Store one send with whatever else is being sent right now.
    pub async fn insert(&self, new: NewMessage) -> StoreResult<InsertOutcome> {
        let Some(tx) = &self.tx else {
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

/// The first queued send (waiting for one), and every other one queued now, up to `max`.
/// The lock is held only while collecting, so another writer collects the next batch
/// while this one is written.
async fn next_batch(rx: &Mutex<mpsc::Receiver<Job>>, max: usize) -> Option<Vec<Job>> {
    let mut batch = Vec::with_capacity(max.min(64));
    match rx.lock().await.recv_many(&mut batch, max).await {
        0 => None,
        _ => Some(batch),
    }
}
