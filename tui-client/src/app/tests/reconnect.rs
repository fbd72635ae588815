//! Unit tests of reconnecting: what is reloaded, and when.

use super::*;

/// Issue 18 bug 4 (found again by the tmux test): after a resumed reconnect the replayed
/// `message.new`s count each unread message once. The snapshot of the list and counters
/// is asked for after the replay (`sync.complete`), not at connect, where it already
/// counted the messages the replay then counted again.
#[test]
fn a_resumed_reconnect_counts_each_missed_message_once() {
    let (mut app, me, _) = sample();
    let now = Instant::now();
    let carol = conv_named(&app, "carol");
    assert_eq!(carol.unread_count, 2);
    app.conn = Conn::Connecting { attempt: 1 };
    let back = app.update(Update::Connected { resumed: true }, now);
    assert!(!back.contains(&Action::LoadUnread), "{back:?}");
    assert!(!back.contains(&Action::LoadConversations), "{back:?}");
    for text in ["two", "three"] {
        let m = msg(&carol, carol.other_user.id, me, text);
        app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    }
    assert_eq!(conv_named(&app, "carol").unread_count, 4, "replayed: +2");
    let synced = app.update(
        Update::Server(ServerEvent::SyncComplete {
            seq: 9,
            replayed: 2,
        }),
        now,
    );
    assert!(synced.contains(&Action::LoadUnread), "{synced:?}");
    assert!(synced.contains(&Action::LoadConversations), "{synced:?}");
    // The snapshot agrees, and nothing is replayed after it.
    app.update(
        Update::Unread(chat_protocol::rest::UnreadCount {
            total: 4,
            conversations: vec![chat_protocol::rest::ConversationUnread {
                conversation_id: carol.id,
                unread: 4,
            }],
        }),
        now,
    );
    assert_eq!(conv_named(&app, "carol").unread_count, 4);
    assert_eq!(app.unread_total, 4);
    // A later sync.complete (the next socket, not resumed) asks for nothing more.
    let again = app.update(
        Update::Server(ServerEvent::SyncComplete {
            seq: 9,
            replayed: 0,
        }),
        now,
    );
    assert!(again.is_empty(), "{again:?}");
    // A reconnect that cannot resume has no replay: the snapshot comes at once.
    let fresh = app.update(Update::Connected { resumed: false }, now);
    assert!(fresh.contains(&Action::LoadUnread), "{fresh:?}");
}
