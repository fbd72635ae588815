//! Unit tests of what goes wrong and what is new: failed sends (retry, dismiss, order),
//! the status line, and the "new messages" marker.

use super::*;
use crate::ui::tests::render;
use chat_protocol::rest::Page;

/// Issue 18 bug 8: a refused send says why in full, stands where it was written (not
/// below everything that came later), and can be sent again with its temp_id or dropped.
#[test]
fn a_failed_send_says_why_and_can_be_retried_or_dismissed() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    type_line(&mut app, "this one fails", now);
    let temp = app.pending[0].temp_id.clone();
    let why = "you blocked this user; unblock them to send, or ask the administrator \
               if you think this is a mistake";
    app.update(
        Update::Server(ServerEvent::Error {
            code: ErrorCode::Blocked,
            message: why.into(),
            temp_id: Some(temp.clone()),
        }),
        now,
    );
    // Later, bob writes: his message comes after the failed one, not above it.
    let mut later = msg(&bob, bob.other_user.id, me, "a later message from bob");
    later.created_at = Utc::now() + chrono::Duration::seconds(5);
    app.update(
        Update::Server(ServerEvent::MessageNew { message: later }),
        now,
    );
    let screen = render(&mut app, 100, 30);
    let failed = screen
        .find("this one fails ✗ not sent")
        .expect("failed line");
    // (The list's preview has it too, further up: the pane's is the last.)
    let bobs = screen
        .rfind("a later message from bob")
        .expect("bob's line");
    assert!(failed < bobs, "in time order: {screen}");
    assert!(
        screen.contains("blocked: you blocked this user"),
        "{screen}"
    );
    assert!(
        screen.contains("if you think this is a mistake"),
        "whole: {screen}"
    );
    assert!(screen.contains("(/retry or /dismiss)"), "{screen}");

    let again = type_line(&mut app, "/retry", now);
    assert_eq!(
        again,
        vec![Action::Ws(ClientEvent::MessageSend {
            conversation_id: bob.id,
            content: "this one fails".into(),
            temp_id: Some(temp.clone()),
            reply_to_id: None,
        })]
    );
    assert!(app.pending[0].failed.is_none(), "sending again");
    app.update(
        Update::Server(ServerEvent::Error {
            code: ErrorCode::Blocked,
            message: "still".into(),
            temp_id: Some(temp),
        }),
        now,
    );
    assert!(type_line(&mut app, "/dismiss", now).is_empty());
    assert!(app.pending.is_empty());
    let screen = render(&mut app, 100, 30);
    assert!(!screen.contains("this one fails"), "{screen}");
    type_line(&mut app, "/dismiss", now);
    assert!(
        app.status.as_ref().is_some_and(|s| s.1),
        "nothing to dismiss"
    );
}

/// Issue 18 bug 14: a long error is cut so the help key stays on the status line; a
/// notice goes by itself after a while, an error stays.
#[test]
fn the_status_line_keeps_its_help_and_notices_expire() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    app.update(Update::Error("x".repeat(300)), now);
    let screen = render(&mut app, 100, 24);
    let status = screen.lines().last().expect("status line").to_string();
    assert!(status.trim_end().ends_with("F1 help"), "{status}");
    assert!(status.contains("xxx…"), "{status}");
    app.tick(now + NOTICE_FOR * 2);
    assert!(app.status.is_some(), "errors stay");
    app.info("copied to the clipboard (OSC 52)");
    app.tick(Instant::now());
    assert!(app.status.is_some(), "fresh");
    app.tick(Instant::now() + NOTICE_FOR);
    assert!(app.status.is_none(), "a notice goes");
}

fn page(data: Vec<Message>) -> Page<Message> {
    Page {
        data,
        next_cursor: None,
        has_more: false,
    }
}

/// Issue 18: where you stopped reading, a "new messages" line, above the first message
/// that was unread when the conversation was opened (also when its page comes later);
/// it goes once another conversation is opened.
#[test]
fn a_new_messages_line_marks_where_reading_stopped() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let carol = conv_named(&app, "carol");
    let them = carol.other_user.id;
    let mut old = msg(&carol, them, me, "already read");
    old.is_read = true;
    old.created_at = Utc::now() - chrono::Duration::minutes(3);
    let mut first = msg(&carol, them, me, "first unread");
    first.created_at = Utc::now() - chrono::Duration::minutes(2);
    let mut second = msg(&carol, them, me, "second unread");
    second.created_at = Utc::now() - chrono::Duration::minutes(1);
    // Opened (and read) before its page came: the marker waits for the page.
    let actions = app.update(key(KeyCode::Down), now);
    assert_eq!(app.open, Some(carol.id), "{actions:?}");
    app.update(
        Update::History {
            conv: carol.id,
            page: page(vec![second, first.clone(), old]),
            older: false,
        },
        now,
    );
    assert_eq!(app.open_conv().and_then(|c| c.read_marker), Some(first.id));
    let screen = render(&mut app, 100, 24);
    let read = screen.find("already read").expect("old");
    let line = screen.find(" new messages ").expect("marker");
    let unread = screen.find("first unread").expect("first");
    assert!(read < line && line < unread, "{screen}");
    // Back to bob: carol's marker goes; bob had nothing unread, so he has none.
    app.update(key(KeyCode::Up), now);
    assert_eq!(app.open, Some(bob.id));
    assert!(app.convs.iter().all(|c| c.read_marker.is_none()));
    assert!(!render(&mut app, 100, 24).contains(" new messages "));
    // A message that arrives on screen is read as it comes, with no line above it.
    let live = msg(&bob, bob.other_user.id, me, "seen as it came");
    app.update(
        Update::Server(ServerEvent::MessageNew { message: live }),
        now,
    );
    assert!(app.open_conv().is_some_and(|c| c.read_marker.is_none()));
    assert!(!render(&mut app, 100, 24).contains(" new messages "));
}

/// Issue 18 bug 13: saving the selected message saves every one of its items (only the
/// first used to be), and `o` saves them all too and opens the first.
#[test]
fn saving_a_message_saves_every_item() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let mut album = msg(&bob, bob.other_user.id, me, "");
    album.content = None;
    album.kind = chat_protocol::rest::MessageType::Image;
    let photo = app.open_conv().expect("bob open").messages[0].media[0].clone();
    album.media = ["one.jpg", "two.jpg", "three.jpg"]
        .iter()
        .map(|n| chat_protocol::rest::MediaItem {
            name: Some((*n).into()),
            ..photo.clone()
        })
        .collect();
    app.update(
        Update::Server(ServerEvent::MessageNew {
            message: album.clone(),
        }),
        now,
    );
    app.focus = Focus::Messages;
    app.cursor = Some(app.open_conv().expect("bob open").messages.len() - 1);
    let saved = app.update(key(KeyCode::Char('s')), now);
    assert_eq!(
        saved,
        vec![Action::Save {
            items: album.media.clone(),
            open: false
        }]
    );
    let opened = app.update(key(KeyCode::Char('o')), now);
    assert_eq!(
        opened,
        vec![Action::Save {
            items: album.media,
            open: true
        }]
    );
}
