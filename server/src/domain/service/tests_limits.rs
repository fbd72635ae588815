//! Every rate-limited use case other than sending spends its own budget, per user.

use super::*;

/// Every rate-limited use case other than sending, and the action it spends.
#[derive(Debug, Clone, Copy)]
enum Call {
    ListConversations,
    UnreadCount,
    ListMessages,
    Gallery,
    Links,
    OneMessage,
    Context,
    OpenConversation,
    CreateConversation,
    Block,
    BlockStatus,
    ListBlocks,
    MarkRead,
    PushSubscriptions,
    Edit,
    DeleteForMe,
    React,
    Search,
}

impl Call {
    const ALL: [Call; 18] = [
        Call::ListConversations,
        Call::UnreadCount,
        Call::ListMessages,
        Call::Gallery,
        Call::Links,
        Call::OneMessage,
        Call::Context,
        Call::OpenConversation,
        Call::CreateConversation,
        Call::Block,
        Call::BlockStatus,
        Call::ListBlocks,
        Call::MarkRead,
        Call::PushSubscriptions,
        Call::Edit,
        Call::DeleteForMe,
        Call::React,
        Call::Search,
    ];

    fn action(self) -> Action {
        match self {
            Call::ListConversations | Call::UnreadCount => Action::GetConversations,
            Call::ListMessages | Call::Gallery | Call::Links | Call::OneMessage | Call::Context => {
                Action::GetMessages
            }
            Call::CreateConversation => Action::CreateConversation,
            Call::Block => Action::Block,
            Call::OpenConversation
            | Call::BlockStatus
            | Call::ListBlocks
            | Call::PushSubscriptions => Action::Lookup,
            Call::MarkRead => Action::MarkRead,
            Call::Edit | Call::DeleteForMe => Action::EditMessage,
            Call::React => Action::React,
            Call::Search => Action::Search,
        }
    }

    /// The use case once; `n` makes each call of a creating use case create anew.
    async fn run(
        self,
        w: &World,
        me: &AuthUser,
        conv: ConversationId,
        m: MessageId,
        n: usize,
    ) -> Result<()> {
        let s = &w.service;
        match self {
            Call::ListConversations => s.list_conversations(me, None, 10).await.map(drop),
            Call::UnreadCount => s.unread_count(me).await.map(drop),
            Call::ListMessages => s.list_messages(me, conv, None, None, 10).await.map(drop),
            Call::Gallery => s
                .gallery(me, conv, vec![MessageType::File], None, 10)
                .await
                .map(drop),
            Call::Links => s.links(me, conv, None, 10).await.map(drop),
            Call::OneMessage => s.message(me, m).await.map(drop),
            Call::Context => s.context(me, m, 1, 1).await.map(drop),
            // The conversation between alice and bob exists: opening it is a lookup.
            Call::OpenConversation => {
                let partner = if me.username.as_str() == "alice" {
                    "bob"
                } else {
                    "alice"
                };
                s.conversation_with(me, partner).await.map(drop)
            }
            Call::CreateConversation => {
                let name = format!("new{n}_{}", me.username);
                w.user(&name).await;
                s.conversation_with(me, &name).await.map(drop)
            }
            Call::Block => s.block(me, "carol").await.map(drop),
            Call::BlockStatus => s.block_status(me, "carol").await.map(drop),
            Call::ListBlocks => s.list_blocks(me, None, 10).await.map(drop),
            Call::MarkRead => s.mark_read(me, conv, None).await.map(drop),
            Call::PushSubscriptions => s.push_subscriptions(me).await.map(drop),
            // Each on a message of its own (sending is another budget).
            Call::Edit | Call::DeleteForMe => {
                let mine = w.send(me, conv, "mine").await?.message.id;
                if matches!(self, Call::Edit) {
                    s.edit_message(me, mine, "edited").await.map(drop)
                } else {
                    let scope = chat_protocol::rest::DeleteScope::Me;
                    s.delete_message(me, mine, scope).await.map(drop)
                }
            }
            Call::React => {
                let emoji = ["👍", "🎉", "😀", "🙂", "🚀"][n % 5];
                s.react(me, m, emoji, true).await.map(drop)
            }
            Call::Search => s.search(me, "hi", None, None, 10).await.map(drop),
        }
    }
}

/// Each non-send limit holds for each use case that spends it: with a budget of two per
/// hour the third call is refused with `rate_limited` (and a retry time), for that user
/// only, and a refused call changes nothing.
#[tokio::test]
async fn every_non_send_use_case_spends_its_own_budget_per_user() {
    for call in Call::ALL {
        let w = World::new().await;
        let (alice, bob) = (w.user("alice").await, w.user("bob").await);
        w.user("carol").await;
        let conv = w.chat(&alice, &bob).await;
        let m = w.send(&bob, conv, "hi").await.expect("send").message.id;
        let two_per_hour = RateLimitSetting {
            max_requests: 2,
            period_seconds: 3600,
        };
        w.limits
            .apply(&[(call.action().as_str().to_string(), two_per_hour)]);
        for n in 1..=2 {
            let r = call.run(&w, &alice, conv, m, n).await;
            assert!(r.is_ok(), "{call:?} call {n}: {r:?}");
        }
        let refused = call.run(&w, &alice, conv, m, 3).await;
        match refused {
            Err(Error::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::ZERO, "{call:?}")
            }
            other => panic!("{call:?}: third call gave {other:?}"),
        }
        let unread = w.temp.store.unread_counts(alice.id).await.expect("unread");
        assert_eq!(
            unread.iter().map(|(_, n)| n).sum::<u64>(),
            if matches!(call, Call::MarkRead) { 0 } else { 1 },
            "{call:?}"
        );
        let other = call.run(&w, &bob, conv, m, 4).await;
        assert!(other.is_ok(), "{call:?} for another user: {other:?}");
        w.done().await;
    }
}
