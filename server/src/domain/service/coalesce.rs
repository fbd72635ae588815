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

use tokio::sync::{mpsc, oneshot, Semaphore};

use chat_protocol::UserId;

use crate::store::{DynStore, StoreError, StoreResult};

/// Most keys read by one statement.
const MAX_BATCH: usize = 1000;
/// Statements of one kind running at once.
const IN_FLIGHT: usize = 2;

type Request<K, V> = (K, oneshot::Sender<StoreResult<Option<V>>>);

/// Single-key reads of one kind, batched: `get(k)` is answered by a `read` of every key
/// asked for meanwhile.
pub(super) struct Coalesced<K, V> {
    tx: mpsc::UnboundedSender<Request<K, V>>,
}

impl<K, V> Coalesced<K, V>
where
    K: Copy + Eq + Hash + Send + Sync + 'static,
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
        let stopped = || StoreError::Unavailable("batched reader stopped".into());
        let (done, wait) = oneshot::channel();
        self.tx.send((key, done)).map_err(|_| stopped())?;
        wait.await.unwrap_or_else(|_| Err(stopped()))
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
    match read(keys).await {
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
    use std::sync::Mutex;

    #[tokio::test]
    async fn concurrent_reads_share_statements_and_each_gets_its_own_answer() {
        let calls: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let seen = calls.clone();
        // A slow read, so requests pile up behind the two in flight.
        let c = Arc::new(Coalesced::start(move |keys: Vec<u32>| {
            seen.lock().expect("calls").push(keys.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(keys
                    .into_iter()
                    .filter(|k| k % 7 != 0)
                    .map(|k| (k, k * 10))
                    .collect())
            }
        }));
        let mut tasks = Vec::new();
        for k in 0..200u32 {
            let c = c.clone();
            // Key k and a duplicate of it: both get the answer.
            tasks.push(tokio::spawn(async move { (k % 100, c.get(k % 100).await) }));
        }
        for t in tasks {
            let (k, got) = t.await.expect("task");
            let want = if k % 7 == 0 { None } else { Some(k * 10) };
            assert_eq!(got.expect("read"), want, "key {k}");
        }
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

    #[tokio::test]
    async fn a_failed_read_fails_every_caller_of_its_batch_and_not_the_next() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = fail.clone();
        let c = Coalesced::start(move |keys: Vec<u32>| {
            let fail = f.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if fail {
                    Err(StoreError::Unavailable("down".into()))
                } else {
                    Ok(keys.into_iter().map(|k| (k, k)).collect())
                }
            }
        });
        assert!(matches!(c.get(1).await, Err(StoreError::Unavailable(_))));
        fail.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(c.get(2).await.expect("read"), Some(2));
    }
}
