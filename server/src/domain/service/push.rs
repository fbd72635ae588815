//! Push: notifying offline receivers (off the send path) and the subscriptions they
//! register, at most `CHAT_PUSH_MAX_SUBSCRIPTIONS` each.

use std::sync::Arc;

use chat_protocol::rest::{
    Message, PushKind, PushNotification, PushSubscription, PushSubscriptionRequest,
};

use super::ChatService;
use crate::auth::AuthUser;
use crate::domain::presence::Presence;
use crate::error::{Error, Result};
use crate::model::now;
use crate::push::Pusher;
use crate::ratelimit::Action;
use crate::store::{DynStore, StoredPush};

impl ChatService {
    /// Push to the receiver if offline ([`push_if_offline`]), in the background: the send
    /// answers without waiting for any of it.
    pub(super) fn push_if_offline(&self, sender: &AuthUser, m: &Message) {
        if !self.pusher.enabled() {
            return;
        }
        let (presence, store, pusher) = (
            self.presence.clone(),
            self.store.clone(),
            self.pusher.clone(),
        );
        let (sender, m) = (sender.clone(), m.clone());
        tokio::spawn(async move { push_if_offline(&presence, &store, &pusher, &sender, &m).await });
    }

    pub async fn add_push_subscription(
        &self,
        me: &AuthUser,
        req: PushSubscriptionRequest,
    ) -> Result<PushSubscription> {
        self.limits.check(Action::PushSubscribe, me.id).await?;
        let added = self.store_push_subscription(me, req).await?;
        // At most the cap: the oldest others make room for the new one.
        let all = self.store.push_subscriptions(me.id).await?;
        let excess = all.len().saturating_sub(self.pusher.max_subscriptions());
        let oldest = all
            .iter()
            .map(|s| s.subscription.id)
            .filter(|id| *id != added.id)
            .take(excess);
        for id in oldest {
            crate::metrics::METRICS.refused("push_subscriptions_cap");
            self.store.delete_push_subscription(me.id, id).await?;
        }
        Ok(added)
    }

    async fn store_push_subscription(
        &self,
        me: &AuthUser,
        req: PushSubscriptionRequest,
    ) -> Result<PushSubscription> {
        let printable = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
        };
        let (target, keys) = match req.kind {
            PushKind::Fcm | PushKind::Apns => {
                let token = req.token.as_deref().unwrap_or("");
                if !printable(token, 4096) {
                    return Err(Error::Validation(
                        "token must be 1 to 4096 printable characters".into(),
                    ));
                }
                (token.to_string(), None)
            }
            PushKind::Webpush => {
                let endpoint = req.endpoint.as_deref().unwrap_or("");
                // Plain http only for a push service on this machine (development, tests).
                let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                    .iter()
                    .any(|p| endpoint.starts_with(p));
                if !printable(endpoint, 2048) || !(endpoint.starts_with("https://") || loopback) {
                    return Err(Error::Validation(
                        "endpoint must be an https:// URL up to 2048 bytes".into(),
                    ));
                }
                let Some(k) = req.keys.as_ref() else {
                    return Err(Error::Validation(
                        "webpush needs keys.p256dh and keys.auth".into(),
                    ));
                };
                if !printable(&k.p256dh, 256) || !printable(&k.auth, 256) {
                    return Err(Error::Validation(
                        "keys.p256dh and keys.auth must be 1 to 256 characters".into(),
                    ));
                }
                (
                    endpoint.to_string(),
                    Some((k.p256dh.clone(), k.auth.clone())),
                )
            }
        };
        let keys_ref = keys.as_ref().map(|(p, a)| (p.as_str(), a.as_str()));
        Ok(self
            .store
            .add_push_subscription(me.id, req.kind, &target, keys_ref, now())
            .await?)
    }

    /// At most `CHAT_PUSH_MAX_SUBSCRIPTIONS`, so the list needs no paging.
    pub async fn push_subscriptions(&self, me: &AuthUser) -> Result<Vec<PushSubscription>> {
        self.limits.check(Action::Lookup, me.id).await?;
        let subs = self.store.push_subscriptions(me.id).await?;
        Ok(newest_subscriptions(subs, self.pusher.max_subscriptions())
            .into_iter()
            .map(|s| s.subscription)
            .collect())
    }

    pub async fn delete_push_subscription(&self, me: &AuthUser, id: uuid::Uuid) -> Result<()> {
        self.limits.check(Action::PushSubscribe, me.id).await?;
        if self.store.delete_push_subscription(me.id, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound("push subscription"))
        }
    }
}

/// The newest `max` of a receiver's subscriptions (older ones can only exist from before
/// the cap, or a lower one).
fn newest_subscriptions(mut subs: Vec<StoredPush>, max: usize) -> Vec<StoredPush> {
    let excess = subs.len().saturating_sub(max);
    subs.drain(..excess);
    subs
}

/// Notify the receiver through the push providers when no socket of theirs is live
/// on any instance. Never for a receiver who blocked the sender.
async fn push_if_offline(
    presence: &Arc<dyn Presence>,
    store: &DynStore,
    pusher: &Pusher,
    sender: &AuthUser,
    m: &Message,
) {
    if !presence.online(&[m.receiver_id]).await.is_empty() {
        return;
    }
    match store.block_status(m.receiver_id, sender.id).await {
        Ok((false, _)) => {}
        Ok((true, _)) => return,
        Err(e) => {
            tracing::warn!(error = %e, "push skipped: block check failed");
            return;
        }
    }
    let subs = match store.push_subscriptions(m.receiver_id).await {
        Ok(s) => newest_subscriptions(s, pusher.max_subscriptions()),
        Err(e) => {
            tracing::warn!(error = %e, "push skipped: subscriptions unavailable");
            return;
        }
    };
    let notification = PushNotification {
        event: "message.new".into(),
        user_id: m.receiver_id,
        conversation_id: m.conversation_id,
        message_id: m.id,
        sender_id: sender.id,
        sender_username: sender.username.as_str().to_string(),
        kind: m.kind,
        preview: m.content.as_ref().map(|c| c.chars().take(120).collect()),
        created_at: m.created_at,
        subscriptions: subs.iter().map(|s| s.subscription.clone()).collect(),
    };
    pusher.dispatch(notification, subs);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use chat_protocol::rest::MessageType;
    use chat_protocol::{ConversationId, MessageId, UserId};

    use super::*;
    use crate::domain::presence::LocalPresence;
    use crate::model::Username;
    use crate::push::{PushError, PushOutcome, PushProvider};

    /// Records whom it was asked to notify.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<UserId>>);

    #[async_trait]
    impl PushProvider for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        async fn notify(
            &self,
            n: &PushNotification,
            _subs: &[StoredPush],
        ) -> std::result::Result<PushOutcome, PushError> {
            self.0.lock().expect("recorder").push(n.user_id);
            Ok(PushOutcome::default())
        }
    }

    /// The send path checks blocks before it stores; this is the check for a block that
    /// lands after the message was stored and before its push goes out (the push runs in
    /// the background). The same message is pushed without the block, so the test can fail.
    #[tokio::test]
    async fn a_block_after_the_send_stops_its_push() {
        let temp = crate::store::TempStore::sqlite().await;
        let store = temp.store.clone();
        let (alice, bob) = (UserId::new(), UserId::new());
        store
            .upsert_user(alice, "alice", now())
            .await
            .expect("alice");
        store.upsert_user(bob, "bob", now()).await.expect("bob");
        let recorder = Arc::new(Recorder::default());
        let pusher = Pusher::new(vec![recorder.clone() as Arc<dyn PushProvider>]);
        let presence: Arc<dyn Presence> = Arc::new(LocalPresence::new());
        let sender = AuthUser {
            id: alice,
            username: Username::parse("alice").expect("username"),
        };
        let m = Message {
            id: MessageId::new(),
            conversation_id: ConversationId::new(),
            sender_id: alice,
            receiver_id: bob,
            kind: MessageType::Text,
            content: Some("hi".into()),
            media: Vec::new(),
            temp_id: None,
            is_read: false,
            read_at: None,
            created_at: now(),
            reply_to: None,
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
        };
        let pushed = |n: usize| {
            let recorder = recorder.clone();
            async move {
                for _ in 0..200 {
                    if recorder.0.lock().expect("recorder").len() >= n {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                false
            }
        };
        push_if_offline(&presence, &store, &pusher, &sender, &m).await;
        assert!(pushed(1).await, "bob is offline: pushed");
        store.block(bob, alice, now()).await.expect("block");
        push_if_offline(&presence, &store, &pusher, &sender, &m).await;
        // A push is spawned at once when it goes out; give a wrong one time to show.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*recorder.0.lock().expect("recorder"), vec![bob]);
        temp.remove().await;
    }
}
