//! Unit tests of the app state machine: keys, commands, server events and paging.

use super::*;
use crate::ui::tests::{msg, sample};
use chat_protocol::error::ErrorCode;
use crossterm::event::{KeyCode, KeyModifiers};

mod failures;
mod input;
mod keymap;
mod lifecycle;
mod reconnect;

fn key(code: KeyCode) -> Update {
    Update::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// The conversation with `username` in the list.
fn conv_named(app: &App, username: &str) -> Conversation {
    app.convs
        .iter()
        .find(|c| c.conv.other_user.username == username)
        .map(|c| c.conv.clone())
        .unwrap_or_else(|| panic!("{username} listed"))
}

fn type_line(app: &mut App, s: &str, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    for ch in s.chars() {
        out.extend(app.update(key(KeyCode::Char(ch)), now));
    }
    out.extend(app.update(key(KeyCode::Enter), now));
    out
}

#[test]
fn a_sent_message_is_optimistic_then_reconciled_once() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let actions = type_line(&mut app, "hi", now);
    let temp = app.pending[0].temp_id.clone();
    assert!(actions.contains(&Action::Ws(ClientEvent::MessageSend {
        conversation_id: bob.id,
        content: "hi".into(),
        temp_id: Some(temp.clone()),
        reply_to_id: None,
    })));
    let mut stored = msg(&bob, me, bob.other_user.id, "hi");
    stored.temp_id = Some(temp.clone());
    let before = app.open_conv().map(|c| c.messages.len()).unwrap_or(0);
    for _ in 0..2 {
        // A replayed ack (after a resend) changes nothing.
        app.update(
            Update::Server(ServerEvent::MessageSent {
                temp_id: Some(temp.clone()),
                message: stored.clone(),
            }),
            now,
        );
    }
    assert!(app.pending.is_empty());
    assert_eq!(app.open_conv().map(|c| c.messages.len()), Some(before + 1));
}

#[test]
fn typing_starts_once_repeats_after_3s_and_stops_when_idle() {
    let (mut app, _, bob) = sample();
    let t0 = Instant::now();
    let start = Action::Ws(ClientEvent::TypingStart {
        conversation_id: bob.id,
    });
    assert_eq!(app.update(key(KeyCode::Char('a')), t0), vec![start.clone()]);
    assert!(app
        .update(key(KeyCode::Char('b')), t0 + Duration::from_secs(1))
        .is_empty());
    assert_eq!(
        app.update(key(KeyCode::Char('c')), t0 + Duration::from_secs(4)),
        vec![start]
    );
    assert!(app.tick(t0 + Duration::from_secs(5)).is_empty());
    assert_eq!(
        app.tick(t0 + Duration::from_secs(8)),
        vec![Action::Ws(ClientEvent::TypingStop {
            conversation_id: bob.id
        })]
    );
    // Commands are not "typing".
    app.input.clear();
    assert!(app
        .update(key(KeyCode::Char('/')), t0 + Duration::from_secs(20))
        .is_empty());
}

#[test]
fn incoming_messages_mark_the_open_conversation_read_and_count_the_others() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let m = msg(&bob, bob.other_user.id, me, "yo");
    let actions = app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    assert!(actions.contains(&Action::Ws(ClientEvent::MessageRead {
        conversation_id: bob.id,
        up_to_message_id: None,
    })));
    let carol = conv_named(&app, "carol");
    let total = app.unread_total;
    let m = msg(&carol, carol.other_user.id, me, "psst");
    let actions = app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    assert!(
        actions.iter().all(|a| matches!(a, Action::Notify { .. })),
        "nothing but a notification: {actions:?}"
    );
    assert_eq!(app.unread_total, total + 1);
    // carol now has the latest activity: first in the list.
    assert_eq!(app.convs[0].conv.id, carol.id);
    // Selecting it marks it read.
    let actions = app.update(
        Update::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)),
        now,
    );
    assert_eq!(app.open, Some(carol.id));
    assert!(actions.contains(&Action::Ws(ClientEvent::MessageRead {
        conversation_id: carol.id,
        up_to_message_id: None,
    })));
}

#[test]
fn read_updates_turn_my_messages_read_and_presence_follows_events() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let m = msg(&bob, me, bob.other_user.id, "unread one");
    let id = m.id;
    app.update(
        Update::Server(ServerEvent::MessageSent {
            temp_id: None,
            message: m,
        }),
        now,
    );
    let read = |app: &App| {
        app.open_conv()
            .and_then(|c| c.messages.iter().find(|m| m.id == id))
            .map(|m| m.is_read)
    };
    assert_eq!(read(&app), Some(false));
    app.update(
        Update::Server(ServerEvent::MessageReadUpdate {
            conversation_id: bob.id,
            reader_id: bob.other_user.id,
            up_to_message_id: Some(id),
            read_at: Utc::now(),
        }),
        now,
    );
    assert_eq!(read(&app), Some(true));
    let seen = Utc::now();
    app.update(
        Update::Server(ServerEvent::UserOffline {
            user_id: bob.other_user.id,
            last_seen_at: seen,
        }),
        now,
    );
    let u = &app.open_conv().expect("open").conv.other_user;
    assert!(!u.online);
    assert_eq!(u.last_seen_at, Some(seen));
    app.update(
        Update::Server(ServerEvent::TypingStart {
            conversation_id: bob.id,
            user_id: bob.other_user.id,
        }),
        now,
    );
    assert!(app.typing(app.open_conv().expect("open"), now));
    app.tick(now + TYPING_SHOWN + Duration::from_millis(1));
    assert!(!app.typing(app.open_conv().expect("open"), now));
}

#[test]
fn commands_map_to_actions() {
    let (mut app, _, bob) = sample();
    let now = Instant::now();
    assert_eq!(
        app.submit("/open dave", now),
        vec![Action::OpenWith("dave".into())]
    );
    // A known user is opened locally.
    assert!(app
        .submit("/open bob", now)
        .iter()
        .all(|a| !matches!(a, Action::OpenWith(_))));
    let a = app.submit("/attach a.png b.png -- two photos", now);
    assert!(
        matches!(&a[..], [Action::SendMedia { conv, paths, caption: Some(c), .. }]
        if *conv == bob.id && paths.len() == 2 && c == "two photos")
    );
    assert_eq!(app.submit("/block", now), vec![Action::Block("bob".into())]);
    assert_eq!(
        app.submit("/unblock carol", now),
        vec![Action::Unblock("carol".into())]
    );
    assert_eq!(
        app.submit("/status", now),
        vec![Action::BlockStatus("bob".into())]
    );
    assert_eq!(app.submit("/blocked", now), vec![Action::Blocked]);
    assert_eq!(
        app.submit("/links", now),
        vec![Action::Browse {
            conv: bob.id,
            what: Browse::Links
        }]
    );
    assert!(app.submit("/jump nope", now).is_empty());
    assert_eq!(app.status.as_ref().map(|s| s.1), Some(true));
    let id = MessageId::new();
    assert_eq!(
        app.submit(&format!("/jump {id}"), now),
        vec![Action::Jump(id)]
    );
    assert!(app.submit("/frobnicate", now).is_empty());
    assert!(app
        .status
        .as_ref()
        .is_some_and(|s| s.0.contains("unknown command")));
    assert_eq!(app.submit("/quit", now), vec![Action::Quit]);
    assert!(app.quit);
}

#[test]
fn a_refused_send_marks_its_pending_message_failed() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    type_line(&mut app, "to a blocker", now);
    let temp = app.pending[0].temp_id.clone();
    app.update(
        Update::Server(ServerEvent::Error {
            code: ErrorCode::Forbidden,
            message: "blocked".into(),
            temp_id: Some(temp),
        }),
        now,
    );
    assert!(app.pending[0].failed.is_some());
    // Failed messages are not resent on reconnect.
    let resend = app
        .update(Update::Connected { resumed: false }, now)
        .into_iter()
        .filter(|a| matches!(a, Action::Ws(ClientEvent::MessageSend { .. })))
        .count();
    assert_eq!(resend, 0);
}

#[test]
fn history_pages_load_once_in_either_direction() {
    let (mut app, _, bob) = sample();
    let now = Instant::now();
    let c = app.conv_mut(bob.id).expect("open");
    c.older = Some("old-cursor".into());
    c.newer = Some("new-cursor".into());
    c.loading = false; // the first page has arrived
    let older = Action::LoadHistory {
        conv: bob.id,
        before: Some("old-cursor".into()),
        after: None,
    };
    assert_eq!(app.update(key(KeyCode::PageUp), now), vec![older]);
    // Already loading: no second request.
    assert!(app.update(key(KeyCode::PageUp), now).is_empty());
    app.conv_mut(bob.id).expect("open").loading = false;
    app.scroll = 0;
    let newer = Action::LoadHistory {
        conv: bob.id,
        before: None,
        after: Some("new-cursor".into()),
    };
    assert_eq!(app.update(key(KeyCode::PageDown), now), vec![newer]);
}

#[test]
fn media_labels() {
    let mut item = MediaItem {
        kind: MessageType::Video,
        url: String::new(),
        thumbnail_url: None,
        mime: "video/mp4".into(),
        size: 10,
        width: Some(640),
        height: Some(360),
        duration_ms: Some(72_000),
        name: Some("clip.mp4".into()),
    };
    assert_eq!(media_label(&item), "[video 1:12 640x360 clip.mp4]");
    item.kind = MessageType::File;
    item.duration_ms = None;
    item.width = None;
    item.height = None;
    item.size = 12 * 1024;
    item.name = Some("notes.pdf".into());
    assert_eq!(media_label(&item), "[file 12.0 KiB notes.pdf]");
}

/// Issue 18 bug 14: the status line speaks of the last thing done: Enter clears it, and the
/// offline "queued" notice goes once the queued message is stored.
#[test]
fn the_status_line_does_not_keep_stale_notices() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    type_line(&mut app, "/open", now);
    assert!(
        app.status.as_ref().is_some_and(|s| s.1),
        "usage error shown"
    );
    type_line(&mut app, "/open bob", now);
    assert_eq!(
        app.status, None,
        "a good /open leaves no usage error behind"
    );

    app.conn = Conn::Connecting { attempt: 1 };
    type_line(&mut app, "later", now);
    let temp = app.pending[0].temp_id.clone();
    assert_eq!(
        app.status.as_ref().map(|s| s.0.as_str()),
        Some(commands::QUEUED_NOTICE)
    );
    app.conn = Conn::Online;
    let mut stored = msg(&bob, me, bob.other_user.id, "later");
    stored.temp_id = Some(temp.clone());
    app.update(
        Update::Server(ServerEvent::MessageSent {
            temp_id: Some(temp),
            message: stored,
        }),
        now,
    );
    assert_eq!(app.status, None, "sent: the queued notice is gone");
}

/// Issue 18 bug 6: a conversation opened while the server was unreachable does not stay
/// "loading…": the failed page clears it, and the reconnect (even a resumed one) loads it.
#[test]
fn a_conversation_opened_offline_loads_on_reconnect() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    let carol = conv_named(&app, "carol").id;
    app.conn = Conn::Connecting { attempt: 2 };
    let asked = app.update(key(KeyCode::Down), now);
    let load = Action::LoadHistory {
        conv: carol,
        before: None,
        after: None,
    };
    assert!(asked.contains(&load), "{asked:?}");
    app.update(
        Update::HistoryFailed {
            conv: carol,
            error: "cannot connect to http://127.0.0.1:1: Connection refused".into(),
        },
        now,
    );
    assert!(!app.conv_mut(carol).expect("carol").loading);
    assert!(app
        .status
        .as_ref()
        .is_some_and(|s| s.1 && s.0.contains("refused")));
    let back = app.update(Update::Connected { resumed: true }, now);
    assert!(
        back.contains(&load),
        "loads on a resumed reconnect too: {back:?}"
    );
    assert!(app.conv_mut(carol).expect("carol").loading);
}

/// Issue 18 bug 7: after `/jump` the loaded window ends in the past; sending snaps back to
/// the newest page, so one's own message is where it lands (and is drawn).
#[test]
fn sending_after_a_jump_goes_back_to_the_present() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let old = msg(&bob, bob.other_user.id, me, "an old one");
    app.update(
        Update::Context(chat_protocol::rest::MessageContext {
            target_id: old.id,
            data: vec![old.clone()],
            has_more_before: true,
            has_more_after: true,
            before_cursor: Some("b".into()),
            after_cursor: Some("a".into()),
        }),
        now,
    );
    assert!(
        app.open_conv().is_some_and(|c| c.newer.is_some()),
        "a window in the past"
    );
    app.focus = Focus::Input;
    let actions = type_line(&mut app, "now", now);
    let latest = Action::LoadHistory {
        conv: bob.id,
        before: None,
        after: None,
    };
    assert!(actions.contains(&latest), "{actions:?}");
    let temp = app.pending[0].temp_id.clone();
    let mut stored = msg(&bob, me, bob.other_user.id, "now");
    stored.temp_id = Some(temp.clone());
    app.update(
        Update::Server(ServerEvent::MessageSent {
            temp_id: Some(temp),
            message: stored.clone(),
        }),
        now,
    );
    let c = app.open_conv().expect("open");
    assert!(c.newer.is_none());
    assert!(
        c.messages.iter().any(|m| m.id == stored.id),
        "my message is shown"
    );
}

fn read_of(conv: ConversationId) -> Action {
    Action::Ws(ClientEvent::MessageRead {
        conversation_id: conv,
        up_to_message_id: None,
    })
}

/// Issue 18 bug 5: the conversation opened by itself at start is not marked read until
/// someone is at the terminal (a key, a paste, the mouse, or focus coming back).
#[test]
fn nothing_is_read_before_anyone_is_at_the_terminal() {
    let mut app = App::new();
    let now = Instant::now();
    app.me = Some((UserId::new(), "alice".into()));
    app.conn = Conn::Online;
    let mut bob = crate::ui::tests::conv("bob", true, 2);
    bob.last_message_at = Some(Utc::now());
    let actions = app.update(Update::Conversations(vec![bob.clone()]), now);
    assert_eq!(app.open, Some(bob.id), "the newest conversation is shown");
    assert!(
        !actions.contains(&read_of(bob.id)),
        "but not read: {actions:?}"
    );
    assert_eq!(app.open_conv().map(|c| c.conv.unread_count), Some(2));
    // Focus lost and regained: regaining is someone coming back.
    app.update(Update::Focus(false), now);
    assert!(app
        .update(Update::Focus(true), now)
        .contains(&read_of(bob.id)));
    assert_eq!(app.open_conv().map(|c| c.conv.unread_count), Some(0));
    // Away again: what arrives is counted, not read.
    app.update(Update::Focus(false), now);
    let m = msg(&bob, bob.other_user.id, UserId::new(), "hello?");
    let actions = app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    assert!(!actions.contains(&read_of(bob.id)), "{actions:?}");
    assert_eq!(app.unread_total, 1);
    let actions = app.update(key(KeyCode::Char('x')), now);
    assert!(
        actions.contains(&read_of(bob.id)),
        "a key press: {actions:?}"
    );
    assert_eq!(app.unread_total, 0);
}

/// Issue 18 bug 5, scrolled up: a new message is counted and announced, not read; back at
/// the bottom it is.
#[test]
fn messages_arriving_while_scrolled_up_wait_below_unread() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    app.pane_lines = 100;
    app.pane_height = 10;
    app.update(key(KeyCode::PageUp), now);
    assert!(app.scroll > 0);
    let m = msg(&bob, bob.other_user.id, me, "while you read back");
    let actions = app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    assert!(!actions.contains(&read_of(bob.id)), "{actions:?}");
    assert_eq!(app.new_below, 1);
    assert_eq!(app.open_conv().map(|c| c.conv.unread_count), Some(1));
    let screen = crate::ui::tests::render(&mut app, 100, 24);
    assert!(screen.contains("↓ 1 new"), "{screen}");
    let mut actions = Vec::new();
    for _ in 0..20 {
        actions.extend(app.update(key(KeyCode::PageDown), now));
    }
    assert!(actions.contains(&read_of(bob.id)), "{actions:?}");
    assert_eq!((app.scroll, app.new_below), (0, 0));
}

/// Issue 18 bug 4: a counter snapshot that predates a read (or counts what is on screen)
/// does not bring a stale badge back: the conversation in view is read again.
#[test]
fn a_stale_unread_snapshot_does_not_undo_a_read() {
    let (mut app, _, bob) = sample();
    let now = Instant::now();
    let carol = conv_named(&app, "carol").id;
    let stale = UnreadCount {
        total: 63,
        conversations: vec![
            chat_protocol::rest::ConversationUnread {
                conversation_id: bob.id,
                unread: 61,
            },
            chat_protocol::rest::ConversationUnread {
                conversation_id: carol,
                unread: 2,
            },
        ],
    };
    let actions = app.update(Update::Unread(stale), now);
    assert!(actions.contains(&read_of(bob.id)), "{actions:?}");
    assert_eq!(app.open_conv().map(|c| c.conv.unread_count), Some(0));
    assert_eq!(app.unread_total, 2, "only carol's count stands");
}

/// Issue 18 bug 9: a block takes the conversation off the blocker's list (as the server
/// does) and an unblock brings it back; offline, no contact shows as online.
#[test]
fn blocks_and_lost_connections_leave_no_stale_presence() {
    let (mut app, _, bob) = sample();
    let now = Instant::now();
    assert!(app.open_conv().is_some_and(|c| c.conv.other_user.online));
    let actions = app.update(
        Update::Server(ServerEvent::BlockUpdated {
            username: "bob".into(),
            blocked: true,
        }),
        now,
    );
    assert!(actions.is_empty(), "{actions:?}");
    assert!(
        app.convs.iter().all(|c| c.conv.id != bob.id),
        "bob left the list"
    );
    assert_eq!(app.open, None);
    let back = app.update(
        Update::Server(ServerEvent::BlockUpdated {
            username: "bob".into(),
            blocked: false,
        }),
        now,
    );
    assert_eq!(back, vec![Action::LoadConversations, Action::LoadUnread]);

    let (mut app, _, _) = sample();
    app.update(
        Update::Disconnected {
            reason: "socket closed".into(),
            retry_in: Some(Duration::from_secs(1)),
            attempt: 1,
        },
        now,
    );
    assert!(app.convs.iter().all(|c| !c.conv.other_user.online));
    let screen = crate::ui::tests::render(&mut app, 100, 24);
    assert!(!screen.contains("● bob"), "{screen}");
}

/// Issue 18: a message where the user is not looking asks for attention; one on screen,
/// or one's own, does not.
#[test]
fn only_unseen_messages_notify() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let notified = |actions: &[Action]| {
        actions.iter().find_map(|a| match a {
            Action::Notify { title, body } => Some((title.clone(), body.clone())),
            _ => None,
        })
    };
    let seen = app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&bob, bob.other_user.id, me, "on screen"),
        }),
        now,
    );
    assert_eq!(notified(&seen), None, "{seen:?}");
    let carol = conv_named(&app, "carol");
    let unseen = app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&carol, carol.other_user.id, me, "psst"),
        }),
        now,
    );
    assert_eq!(
        notified(&unseen),
        Some(("chat: carol".to_string(), "psst".to_string()))
    );
    let mine = app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&carol, me, carol.other_user.id, "from my phone"),
        }),
        now,
    );
    assert_eq!(notified(&mine), None);
}

fn with(code: KeyCode, modifiers: KeyModifiers) -> Update {
    Update::Key(KeyEvent::new(code, modifiers))
}

fn type_text(app: &mut App, s: &str, now: Instant) {
    for ch in s.chars() {
        app.update(key(KeyCode::Char(ch)), now);
    }
}
