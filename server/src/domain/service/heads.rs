//! Event-log heads read together: every socket that connects reads its user's head before
//! its replay, and in a reconnect storm thousands do so at once. Concurrent reads share one
//! statement ([`MessageStore::event_heads`](crate::store::MessageStore::event_heads))
//! instead of one query each competing for the pool.
//! Each caller's read still starts after its call (the socket was registered before), so
//! the replay guarantee holds: every event committed after the head was read reaches the
//! live queue.

use std::collections::HashMap;

use chat_protocol::UserId;

use crate::store::{DynStore, Store, StoreError, StoreResult};

/// Most heads read by one statement.
const MAX_BATCH: usize = 1000;

type HeadRequest = (UserId, tokio::sync::oneshot::Sender<StoreResult<u64>>);

pub(super) struct HeadReader {
    tx: tokio::sync::mpsc::UnboundedSender<HeadRequest>,
}

impl HeadReader {
    pub(super) fn start(store: DynStore) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<HeadRequest>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let batch = std::mem::take(&mut batch);
                // In its own task, so a slow read never holds up the next batch.
                let store = store.clone();
                tokio::spawn(async move { answer(&*store, batch).await });
            }
        });
        HeadReader { tx }
    }

    /// `user`'s head, read together with whoever else asks now.
    pub(super) async fn head(&self, user: UserId) -> StoreResult<u64> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send((user, done))
            .map_err(|_| StoreError::Unavailable("head reader stopped".into()))?;
        wait.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("head reader stopped".into())))
    }
}

async fn answer(store: &dyn Store, batch: Vec<HeadRequest>) {
    let users: Vec<UserId> = batch.iter().map(|(u, _)| *u).collect();
    match store.event_heads(&users).await {
        Ok(heads) => {
            let heads: HashMap<UserId, u64> = heads.into_iter().collect();
            for (user, done) in batch {
                let _ = done.send(Ok(heads.get(&user).copied().unwrap_or(0)));
            }
        }
        Err(e) => {
            for (_, done) in batch {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}
