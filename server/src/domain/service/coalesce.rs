//! Reads every connecting socket makes, answered together. In a reconnect storm (an
//! instance restarting, a network blip) thousands of sockets read their user's event-log
//! head and check their identity at once; concurrent reads of one kind share one statement
//! instead of each planning and running its own query and competing for the pool.
//!
//! At most [`IN_FLIGHT`] statements of a kind run at a time: while they do, new requests
//! queue and go out together in the next one, so the busier the database, the larger the
//! batches (as with the send path's group commit). An idle server answers a lone request
//! at once, as a plain query would.
//! Each caller's read starts after its call, so a read-after-write guarantee of the plain
//! query holds (a socket registered before it reads its head sees every later event live).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use chat_protocol::UserId;

use crate::store::{DynStore, StoreError, StoreResult};

/// Most keys read by one statement.
const MAX_BATCH: usize = 1000;
/// Statements of one kind running at once.
const IN_FLIGHT: usize = 2;
/// Longest a batched read may take before its callers get `Unavailable` and its slot is
/// freed (the pool's acquire timeout): with only [`IN_FLIGHT`] slots, a statement hung on
/// a dead connection must not hold every later caller.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

type Request<K, V> = (K, oneshot::Sender<StoreResult<Option<V>>>);

/// Single-key reads of one kind, batched: `get(k)` is answered by a `read` of every key
/// asked for meanwhile.
pub(super) struct Coalesced<K, V> {
    tx: mpsc::UnboundedSender<Request<K, V>>,
}

impl<K, V> Coalesced<K, V>
where
    K: Copy + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    /// `read` answers a batch of distinct keys with the (key, value) pairs it found; a key
    /// it leaves out gets `None`.
    pub(super) fn start<F, Fut>(read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<(K, V)>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request<K, V>>();
        let read = Arc::new(read);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                // A slot first: requests that arrive while every slot is busy wait in the
                // channel and join the next batch.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return; // every handle dropped
                }
                let batch = std::mem::take(&mut batch);
                let read = read.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    answer(&*read, batch).await;
                });
            }
        });
        Coalesced { tx }
    }

    /// `key`'s value (None: the read did not find it), read together with whoever else
    /// asks now.
    pub(super) async fn get(&self, key: K) -> StoreResult<Option<V>> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((key, done))
            .map_err(|_| StoreError::Unavailable("batched reader stopped".into()))?;
        // Dropped unanswered: the read panicked (a bug, not an outage).
        wait.await
            .unwrap_or_else(|_| Err(StoreError::Other("batched read failed".into())))
    }
}

impl<V: Clone + Send + 'static> Coalesced<UserId, V> {
    /// Reads of `store` by user id: `read(store, users)`.
    pub(super) fn on_store<F, Fut>(store: &DynStore, read: F) -> Self
    where
        F: Fn(DynStore, Vec<UserId>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<(UserId, V)>>> + Send + 'static,
    {
        let store = store.clone();
        Self::start(move |users| read(store.clone(), users))
    }
}

async fn answer<K, V, F, Fut>(read: &F, batch: Vec<Request<K, V>>)
where
    K: Copy + Eq + Hash,
    V: Clone,
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<(K, V)>>>,
{
    let mut distinct = HashSet::with_capacity(batch.len());
    let keys: Vec<K> = batch
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| distinct.insert(*k))
        .collect();
    let result = match tokio::time::timeout(READ_TIMEOUT, read(keys)).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable("batched read timed out".into())),
    };
    match result {
        Ok(found) => {
            let found: HashMap<K, V> = found.into_iter().collect();
            for (k, done) in batch {
                let _ = done.send(Ok(found.get(&k).cloned()));
            }
        }
        Err(e) => {
            for (_, done) in batch {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Mutex;

    #[tokio::test(start_paused = true)]
    async fn concurrent_reads_share_statements_and_each_gets_its_own_answer() {
        let calls: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let seen = calls.clone();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (running.clone(), most.clone());
        // A slow read, so requests pile up behind the two in flight.
        let c = Arc::new(Coalesced::start(move |keys: Vec<u32>| {
            seen.lock().expect("calls").push(keys.clone());
            let (running, most) = (r.clone(), m.clone());
            async move {
                most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, SeqCst);
                Ok(keys
                    .into_iter()
                    .filter(|k| k % 7 != 0)
                    .map(|k| (k, k * 10))
                    .collect())
            }
        }));
        let mut tasks = Vec::new();
        for k in 0..200u32 {
            // Ten requests a millisecond, so they keep arriving while reads are running.
            if k % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let c = c.clone();
            // Key k and a duplicate of it: both get the answer.
            tasks.push(tokio::spawn(async move { (k % 100, c.get(k % 100).await) }));
        }
        for t in tasks {
            let (k, got) = t.await.expect("task");
            let want = if k % 7 == 0 { None } else { Some(k * 10) };
            assert_eq!(got.expect("read"), want, "key {k}");
        }
        assert_eq!(most.load(SeqCst), IN_FLIGHT, "statements of a kind at once");
        let calls = calls.lock().expect("calls");
        assert!(calls.len() < 20, "200 reads in {} statements", calls.len());
        for keys in calls.iter() {
            let mut distinct = keys.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                keys.len(),
                "a key read twice in one statement"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_hung_read_fails_every_caller_of_its_batch_and_not_the_next() {
        // 0: fail, 1: hang, 2: answer.
        let mode = Arc::new(AtomicUsize::new(0));
        let m = mode.clone();
        let c = Arc::new(Coalesced::start(move |keys: Vec<u32>| {
            let mode = m.load(SeqCst);
            async move {
                match mode {
                    0 => Err(StoreError::Unavailable("down".into())),
                    1 => std::future::pending().await,
                    _ => Ok(keys.into_iter().map(|k| (k, k)).collect()),
                }
            }
        }));
        for hang in [false, true] {
            mode.store(usize::from(hang), SeqCst);
            let callers: Vec<_> = (0..5u32)
                .map(|k| {
                    let c = c.clone();
                    tokio::spawn(async move { c.get(k).await })
                })
                .collect();
            for t in callers {
                match t.await.expect("task") {
                    Err(StoreError::Unavailable(why)) => {
                        assert_eq!(why.contains("timed out"), hang, "{why}")
                    }
                    other => panic!("expected Unavailable, got {other:?}"),
                }
            }
        }
        // The hung reads gave their slots back: the next batch is answered.
        mode.store(2, SeqCst);
        assert_eq!(c.get(2).await.expect("read"), Some(2));
    }
}
