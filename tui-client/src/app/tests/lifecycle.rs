//! Acting on messages: reply, edit, delete, react, search; and the lifecycle events.

use super::*;
use chat_protocol::rest::{DeleteScope, Reaction, ReplyTo, SearchHit};

/// The sample with the message pane focused on message `i` of bob's conversation.
fn selecting(i: usize) -> (App, UserId, Conversation, Message) {
    let (mut app, me, bob) = sample();
    app.focus = Focus::Messages;
    app.cursor = Some(i);
    let m = app.open_conv().unwrap().messages[i].clone();
    (app, me, bob, m)
}

#[test]
fn r_replies_to_the_selected_message_and_esc_cancels() {
    let (mut app, _me, bob, photo) = selecting(0);
    let now = Instant::now();
    app.update(key(KeyCode::Char('r')), now);
    assert_eq!(app.focus, Focus::Input);
    assert!(
        matches!(&app.compose, Compose::Reply { id, quote } if *id == photo.id && quote.starts_with("bob: "))
    );
    let actions = type_line(&mut app, "nice", now);
    let temp = app.pending[0].temp_id.clone();
    assert!(actions.contains(&Action::Ws(ClientEvent::MessageSend {
        conversation_id: bob.id,
        content: "nice".into(),
        temp_id: Some(temp),
        reply_to_id: Some(photo.id),
    })));
    assert_eq!(app.compose, Compose::New, "one reply per r");
    // A reply queued offline keeps its target for the resend.
    app.update(
        Update::Disconnected {
            reason: "gone".into(),
            retry_in: None,
            attempt: 1,
        },
        now,
    );
    app.focus = Focus::Messages;
    app.update(key(KeyCode::Char('r')), now);
    type_line(&mut app, "later", now);
    let actions = app.update(Update::Connected { resumed: false }, now);
    assert!(actions.iter().any(|a| matches!(a,
        Action::Ws(ClientEvent::MessageSend { content, reply_to_id: Some(id), .. })
            if content == "later" && *id == photo.id)));
    // Esc in the input drops the reply.
    app.focus = Focus::Messages;
    app.update(key(KeyCode::Char('r')), now);
    app.update(key(KeyCode::Esc), now);
    assert_eq!(app.compose, Compose::New);
}

#[test]
fn g_on_a_reply_jumps_to_its_original() {
    let (mut app, me, bob, theirs) = selecting(0);
    let now = Instant::now();
    let mut reply = msg(&bob, me, bob.other_user.id, "re");
    reply.reply_to = Some(ReplyTo {
        id: theirs.id,
        sender_id: Some(bob.other_user.id),
        kind: Some(theirs.kind),
        preview: None,
        deleted: false,
    });
    app.update(
        Update::Server(ServerEvent::MessageNew { message: reply }),
        now,
    );
    // Not a reply: says so.
    assert!(app.update(key(KeyCode::Char('g')), now).is_empty());
    app.cursor = Some(app.open_conv().unwrap().messages.len() - 1);
    assert_eq!(
        app.update(key(KeyCode::Char('g')), now),
        [Action::Jump(theirs.id)]
    );
}

#[test]
fn e_edits_only_my_messages_and_enter_sends_the_edit() {
    let (mut app, _me, _bob, mine) = selecting(1);
    let now = Instant::now();
    app.update(key(KeyCode::Char('e')), now);
    assert_eq!(app.input, "hello bob");
    assert_eq!(app.compose, Compose::Edit { id: mine.id });
    app.update(key(KeyCode::Backspace), now);
    app.update(key(KeyCode::Backspace), now);
    app.update(key(KeyCode::Backspace), now);
    let actions = type_line(&mut app, "everyone", now);
    assert_eq!(
        actions.last(),
        Some(&Action::Ws(ClientEvent::MessageEdit {
            message_id: mine.id,
            content: "hello everyone".into(),
        }))
    );
    assert!(app.pending.is_empty(), "an edit is not a new message");
    // Theirs: refused here already.
    let (mut app, ..) = selecting(0);
    let actions = app.update(key(KeyCode::Char('e')), now);
    assert!(actions.is_empty() && app.compose == Compose::New);
    assert!(app
        .status
        .as_ref()
        .is_some_and(|(s, err)| *err && s.contains("your own")));
}

#[test]
fn d_and_shift_d_delete_for_me_and_for_everyone() {
    let now = Instant::now();
    let (mut app, _me, _bob, theirs) = selecting(0);
    let actions = app.update(key(KeyCode::Char('d')), now);
    assert_eq!(
        actions,
        [Action::Ws(ClientEvent::MessageDelete {
            message_id: theirs.id,
            scope: DeleteScope::Me,
        })]
    );
    assert!(
        app.update(key(KeyCode::Char('D')), now).is_empty(),
        "not mine"
    );
    let (mut app, _me, _bob, mine) = selecting(1);
    let actions = app.update(key(KeyCode::Char('D')), now);
    assert_eq!(
        actions,
        [Action::Ws(ClientEvent::MessageDelete {
            message_id: mine.id,
            scope: DeleteScope::Everyone,
        })]
    );
}

#[test]
fn react_toggles_my_reaction_on_the_selected_message() {
    let (mut app, me, bob, theirs) = selecting(0);
    let now = Instant::now();
    app.update(key(KeyCode::Char('+')), now);
    assert_eq!((app.input.as_str(), app.focus), ("/react ", Focus::Input));
    let actions = type_line(&mut app, "👍", now);
    let set = |add| {
        Action::Ws(ClientEvent::ReactionSet {
            message_id: theirs.id,
            emoji: "👍".into(),
            add,
        })
    };
    assert_eq!(actions.last(), Some(&set(true)));
    app.update(
        Update::Server(ServerEvent::ReactionUpdated {
            conversation_id: bob.id,
            message_id: theirs.id,
            emoji: "👍".into(),
            user_id: me,
            added: true,
        }),
        now,
    );
    let reactions = &app.open_conv().unwrap().messages[0].reactions;
    assert_eq!(
        reactions,
        &[Reaction {
            emoji: "👍".into(),
            user_ids: vec![me]
        }]
    );
    // Mine already: the same command takes it back.
    let actions = type_line(&mut app, "/react 👍", now);
    assert_eq!(actions.last(), Some(&set(false)));
}

#[test]
fn lifecycle_events_update_what_is_shown_and_the_unread_count() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    // An unread message in carol's conversation, deleted for everyone: the count drops.
    let carol = conv_named(&app, "carol");
    let m = msg(&carol, carol.other_user.id, me, "oops");
    app.update(
        Update::Server(ServerEvent::MessageNew { message: m.clone() }),
        now,
    );
    let total = app.unread_total;
    app.update(
        Update::Server(ServerEvent::MessageDeleted {
            conversation_id: carol.id,
            message_id: m.id,
            scope: DeleteScope::Everyone,
        }),
        now,
    );
    assert_eq!(app.unread_total, total - 1);
    let shown = app.convs.iter().find(|c| c.conv.id == carol.id).unwrap();
    let t = shown.messages.iter().find(|x| x.id == m.id).unwrap();
    assert!(t.deleted_at.is_some() && t.content.is_none());
    // Edited: the new text replaces the old.
    let mut mine = app.open_conv().unwrap().messages[1].clone();
    mine.content = Some("hello again".into());
    mine.edited_at = Some(Utc::now());
    app.update(
        Update::Server(ServerEvent::MessageEdited {
            message: mine.clone(),
        }),
        now,
    );
    assert_eq!(
        app.open_conv().unwrap().messages[1].content.as_deref(),
        Some("hello again")
    );
    // Deleted for me: gone from the pane.
    app.update(
        Update::Server(ServerEvent::MessageDeleted {
            conversation_id: bob.id,
            message_id: mine.id,
            scope: DeleteScope::Me,
        }),
        now,
    );
    assert!(app
        .open_conv()
        .unwrap()
        .messages
        .iter()
        .all(|x| x.id != mine.id));
}

#[test]
fn search_results_list_and_jump() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let actions = type_line(&mut app, "/search creme brulee", now);
    assert_eq!(actions, [Action::Search("creme brulee".into())]);
    let mut hit = msg(&bob, me, bob.other_user.id, "crème brûlée");
    hit.reply_to = Some(ReplyTo {
        id: MessageId::new(),
        sender_id: Some(bob.other_user.id),
        kind: None,
        preview: None,
        deleted: true,
    });
    let id = hit.id;
    app.update(
        Update::Searched {
            q: "creme brulee".into(),
            hits: vec![SearchHit {
                message: hit,
                snippet: "[crème] [brûlée]".into(),
            }],
        },
        now,
    );
    let o = app.overlay.as_ref().expect("results shown");
    assert!(
        o.lines[0].ends_with("me: [crème] [brûlée]"),
        "{:?}",
        o.lines
    );
    let actions = app.update(key(KeyCode::Enter), now);
    assert_eq!(actions, [Action::Jump(id)]);
    // Nothing found: a notice, no empty list.
    app.update(
        Update::Searched {
            q: "zzz".into(),
            hits: vec![],
        },
        now,
    );
    assert!(app
        .status
        .as_ref()
        .is_some_and(|(s, _)| s.contains("nothing found")));
}
