//! Render tests of the ratatui drawing on a `TestBackend` (and helpers other tests share).

use super::*;
use crate::app::{Action, Conn, Update};
use chat_protocol::rest::{Conversation, MediaItem, Message, MessageType, UserSummary};
use chat_protocol::ws::{ClientEvent, ServerEvent};
use chat_protocol::{ConversationId, MessageId, UserId};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Duration;

pub fn conv(name: &str, online: bool, unread: u64) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        other_user: UserSummary {
            id: UserId::new(),
            username: name.into(),
            display_name: None,
            online,
            last_seen_at: Some(Utc::now() - chrono::Duration::minutes(5)),
        },
        last_message: None,
        last_message_at: None,
        unread_count: unread,
        created_at: Utc::now(),
    }
}

pub fn msg(c: &Conversation, from: UserId, to: UserId, text: &str) -> Message {
    Message {
        id: MessageId::new(),
        conversation_id: c.id,
        sender_id: from,
        receiver_id: to,
        kind: MessageType::Text,
        content: Some(text.into()),
        media: Vec::new(),
        temp_id: None,
        is_read: false,
        read_at: None,
        created_at: Utc::now(),
        reply_to: None,
        edited_at: None,
        deleted_at: None,
        reactions: Vec::new(),
    }
}

/// alice's client with two conversations (bob online with a photo and a read text,
/// carol offline with 2 unread).
pub fn sample() -> (App, UserId, Conversation) {
    let mut app = App::new();
    let me = UserId::new();
    app.me = Some((me, "alice".into()));
    app.conn = Conn::Online;
    // Someone is at the terminal (the start-up case without anyone is tested apart).
    app.engaged = true;
    let bob = conv("bob", true, 0);
    let mut carol = conv("carol", false, 2);
    carol.last_message_at = Some(Utc::now() - chrono::Duration::hours(1));
    let now = Instant::now();
    app.update(Update::Conversations(vec![carol.clone(), bob.clone()]), now);
    let mut photo = msg(&bob, bob.other_user.id, me, "");
    photo.kind = MessageType::Image;
    photo.content = None;
    photo.media = vec![MediaItem {
        kind: MessageType::Image,
        url: "/media/x.jpg".into(),
        thumbnail_url: None,
        mime: "image/jpeg".into(),
        size: 1000,
        width: Some(1024),
        height: Some(768),
        duration_ms: None,
        name: Some("photo.jpg".into()),
    }];
    let mut mine = msg(&bob, me, bob.other_user.id, "hello bob");
    mine.is_read = true;
    for m in [photo, mine] {
        app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    }
    let bob_id = bob.id;
    app.update(Update::Opened(bob.clone()), now);
    assert_eq!(app.open, Some(bob_id));
    (app, me, bob)
}

pub fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| draw(f, app)).expect("draw");
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut x = 0;
        while x < buf.area.width {
            // A hyperlink's cell holds its whole text, which a terminal draws over the
            // columns after it (never written apart).
            let sym = buf[(x, y)].symbol();
            let text = strip_osc8(sym);
            out.push_str(&text);
            x += if text.len() == sym.len() {
                1
            } else {
                columns(&text).max(1) as u16
            };
        }
        out.push('\n');
    }
    out
}

/// `s` without OSC 8 hyperlink sequences (`ESC ] 8 ; ; URL ESC \`).
pub fn strip_osc8(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("\x1b]8;") {
        out.push_str(&rest[..at]);
        rest = rest[at..].split_once("\x1b\\").map_or("", |(_, r)| r);
    }
    out.push_str(rest);
    out
}

fn key(code: KeyCode) -> Update {
    Update::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[test]
fn main_screen_shows_list_messages_receipts_media_and_status() {
    let (mut app, _, _) = sample();
    let screen = render(&mut app, 100, 24);
    assert!(screen.contains("● bob"), "{screen}");
    assert!(screen.contains("○ carol (2)"), "unread badge: {screen}");
    assert!(screen.contains("[image 1024x768 photo.jpg]"), "{screen}");
    assert!(screen.contains("me: hello bob ✓✓"), "{screen}");
    assert!(screen.contains("bob · online"), "{screen}");
    assert!(screen.contains("● online"), "status bar: {screen}");
    assert!(screen.contains("alice"), "{screen}");
    // Most recent activity first: bob (new messages) above carol.
    assert!(screen.find("bob").unwrap_or(usize::MAX) < screen.find("carol").unwrap_or(0));
}

#[test]
fn help_overlay_lists_keys_and_commands() {
    let (mut app, _, _) = sample();
    app.update(key(KeyCode::F(1)), Instant::now());
    let screen = render(&mut app, 100, 30);
    assert!(screen.contains("Keys and commands"), "{screen}");
    assert!(screen.contains("/attach PATH"), "{screen}");
    app.update(key(KeyCode::Esc), Instant::now());
    assert!(!render(&mut app, 100, 30).contains("Keys and commands"));
}

#[test]
fn tiny_and_odd_terminals_never_panic() {
    let (mut app, _, _) = sample();
    for (w, h) in [
        (1, 1),
        (10, 3),
        (39, 7),
        (40, 8),
        (41, 9),
        (200, 60),
        (80, 8),
    ] {
        let screen = render(&mut app, w, h);
        if w < MIN_WIDTH || h < MIN_HEIGHT {
            assert!(screen.contains("too small") || w < 20, "{w}x{h}: {screen}");
        }
    }
    app.help = true;
    render(&mut app, 40, 8);
}

#[test]
fn offline_status_shows_the_countdown_and_queued_messages() {
    let (mut app, _, bob) = sample();
    let now = Instant::now();
    app.update(
        Update::Disconnected {
            reason: "connection refused".into(),
            retry_in: Some(Duration::from_secs(4)),
            attempt: 2,
        },
        now,
    );
    for ch in "are you there".chars() {
        app.update(key(KeyCode::Char(ch)), now);
    }
    let actions = app.update(key(KeyCode::Enter), now);
    assert!(
        actions.is_empty(),
        "nothing goes out while offline: {actions:?}"
    );
    let screen = render(&mut app, 100, 24);
    assert!(
        screen.contains("offline: connection refused; retry in"),
        "{screen}"
    );
    assert!(screen.contains("are you there (queued)"), "{screen}");
    assert!(screen.contains("1 unsent"), "{screen}");
    // Back online: the queued message goes out with its temp_id.
    let actions = app.update(Update::Connected { resumed: false }, now);
    let temp = app.pending[0].temp_id.clone();
    assert!(actions.contains(&Action::Ws(ClientEvent::MessageSend {
        conversation_id: bob.id,
        content: "are you there".into(),
        temp_id: Some(temp),
        reply_to_id: None,
    })));
}

#[test]
fn long_messages_wrap_and_history_scrolls() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    for i in 0..40 {
        let m = msg(
            &bob,
            me,
            bob.other_user.id,
            &format!("line {i} {}", "word ".repeat(30)),
        );
        app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    }
    let screen = render(&mut app, 80, 20);
    assert!(
        screen.contains("me: line 39"),
        "newest at the bottom: {screen}"
    );
    app.update(key(KeyCode::PageUp), now);
    let screen = render(&mut app, 80, 20);
    assert!(!screen.contains("me: line 39"), "scrolled up: {screen}");
    assert!(screen.contains("me: line 36"), "one page up: {screen}");
}

#[test]
fn wrap_breaks_at_spaces_and_hard_splits_long_words() {
    assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
    assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    assert_eq!(wrap("a\n\nb", 10), vec!["a", "", "b"]);
}

/// Issue 18 bug 2: wide characters wrap by terminal columns and none is lost.
#[test]
fn wrap_counts_columns_and_loses_no_wide_character() {
    let text = "漢字テスト".repeat(20);
    let lines = wrap(&text, 30);
    assert!(lines.iter().all(|l| columns(l) <= 30), "{lines:?}");
    assert_eq!(lines.concat(), text, "every character kept");
    assert_eq!(lines.len(), 7, "200 columns in lines of 30");
    // Emoji are two columns as well; a width too small for one still places it.
    assert_eq!(wrap("😀😀😀", 4), vec!["😀😀", "😀"]);
    assert_eq!(wrap("😀", 1), vec!["😀"]);
}

/// Issue 18 bug 2, on screen: a CJK message shows all of its characters.
#[test]
fn a_cjk_message_is_drawn_whole() {
    let (mut app, me, bob) = sample();
    let text = "漢字テスト".repeat(20);
    let m = msg(&bob, bob.other_user.id, me, &text);
    app.update(
        Update::Server(ServerEvent::MessageNew { message: m }),
        Instant::now(),
    );
    let screen = render(&mut app, 80, 30);
    // The message pane is right of the list's border (the list preview is clipped).
    let pane: String = screen
        .lines()
        .filter_map(|l| l.split_once("││").map(|(_, right)| right))
        .collect();
    for c in ['漢', '字', 'テ', 'ス', 'ト'] {
        assert_eq!(pane.matches(c).count(), 20, "{c} in:\n{screen}");
    }
}

/// Issue 18 bug 1: tabs are expanded before drawing, in the message pane and in the list
/// preview, so no raw tab reaches the terminal and the preview stays inside its border.
#[test]
fn tabs_are_drawn_as_spaces_everywhere() {
    assert_eq!(expand_tabs("a\tb"), "a   b");
    assert_eq!(expand_tabs("abcd\te\n\tf"), "abcd    e\n    f");
    assert_eq!(
        expand_tabs("漢\tx"),
        "漢  x",
        "to the next multiple of four columns"
    );
    let (mut app, me, bob) = sample();
    let m = msg(&bob, bob.other_user.id, me, "col1\tcol2\tcol3");
    app.update(
        Update::Server(ServerEvent::MessageNew { message: m }),
        Instant::now(),
    );
    let screen = render(&mut app, 100, 24);
    assert!(!screen.contains('\t'), "{screen}");
    assert!(screen.contains("col1    col2    col3"), "{screen}");
    assert!(screen.contains("col1 col2 col3"), "list preview: {screen}");
}

/// Issue 18 bug 2, the input line: the cursor sits after wide characters, not inside them.
#[test]
fn the_input_cursor_counts_columns() {
    let (mut app, _, _) = sample();
    app.focus = Focus::Input;
    app.input = "漢字ab".into();
    let mut term = Terminal::new(TestBackend::new(80, 20)).expect("terminal");
    term.draw(|f| draw(f, &mut app)).expect("draw");
    let at = term.get_cursor_position().expect("cursor");
    let input_row = term.backend().buffer().clone();
    let row: String = (0..80)
        .map(|x| input_row[(x, at.y)].symbol().to_string())
        .collect();
    // A wide character's second cell draws as a blank in the test buffer.
    assert!(row.contains("漢 字 ab"), "{row}");
    let start = (0..80u16)
        .find(|&x| input_row[(x, at.y)].symbol() == "漢")
        .expect("input text");
    assert_eq!(at.x, start + 6, "two wide characters and two narrow ones");
}

/// Issue 18 bug 10: in the input line `?` is text (a message may be just "?"), F1 is
/// help, and Alt+letter types nothing.
#[test]
fn a_question_mark_is_text_in_the_input_and_alt_letters_type_nothing() {
    let (mut app, _, _) = sample();
    app.focus = Focus::Input;
    let now = Instant::now();
    app.update(key(KeyCode::Char('?')), now);
    assert!(!app.help, "? in the input is not help");
    assert_eq!(app.input, "?");
    app.update(
        Update::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::ALT)),
        now,
    );
    assert_eq!(app.input, "?", "Alt-x typed nothing");
    let sent = app.update(key(KeyCode::Enter), now);
    assert!(
        sent.iter().any(|a| matches!(
            a,
            Action::Ws(ClientEvent::MessageSend { content, .. }) if content == "?"
        )),
        "{sent:?}"
    );
    app.focus = Focus::Conversations;
    app.update(key(KeyCode::Char('?')), now);
    assert!(app.help, "outside the input, ? is help");
}

/// A line break in the input shows as ↵ (the input is one line on screen).
#[test]
fn line_breaks_in_the_input_show_as_a_mark() {
    let (mut app, _, _) = sample();
    app.focus = Focus::Input;
    app.input = "one\ntwo".into();
    let screen = render(&mut app, 80, 20);
    assert!(screen.contains("one↵two"), "{screen}");
}

/// Issue 18 bugs 13 and 15: help and list overlays that do not fit scroll, and say so.
#[test]
fn overlays_that_do_not_fit_scroll() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    app.update(key(KeyCode::F(1)), now);
    let top = render(&mut app, 80, 20);
    assert!(top.contains("Enter"), "{top}");
    assert!(
        top.contains("↑↓ PgUp PgDn scroll"),
        "says it scrolls: {top}"
    );
    assert!(!top.contains("/quit"), "the end is below: {top}");
    app.update(key(KeyCode::End), now);
    let bottom = render(&mut app, 80, 20);
    assert!(bottom.contains("/quit"), "{bottom}");
    // Clamped: one Up after End moves at once.
    let at_end = app.overlay_scroll;
    app.update(key(KeyCode::Up), now);
    assert_eq!(app.overlay_scroll, at_end - 1);
    app.update(key(KeyCode::Esc), now);
    // A long list (say 46 links) shows its last item after scrolling.
    let links: Vec<String> = (1..=46)
        .map(|i| format!("https://example.com/{i}"))
        .collect();
    app.show("Links", links);
    app.update(key(KeyCode::End), now);
    let screen = render(&mut app, 100, 30);
    assert!(screen.contains("https://example.com/46"), "{screen}");
    assert!(screen.contains("of 46"), "{screen}");
}

/// Issue 18: day separators between days of messages, and the selected message's full time.
#[test]
fn days_are_separated_and_the_selected_message_shows_its_date() {
    use chrono::Datelike;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
    let sep = |d: u32| day_separator(today.with_day(d).expect("day"), today, 20);
    assert_eq!(sep(3), "────── Today ──────");
    assert!(sep(2).contains(" Yesterday "));
    assert_eq!(
        day_separator(today.with_day(1).expect("day"), today, 30).trim_matches('─'),
        " Tuesday "
    );
    assert!(day_separator(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).expect("date"),
        today,
        30
    )
    .contains(" 2026-11-20 "));

    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let mut old = msg(&bob, bob.other_user.id, me, "from last year");
    old.created_at = Utc::now() - chrono::Duration::days(400);
    app.update(
        Update::History {
            conv: bob.id,
            page: chat_protocol::rest::Page {
                data: vec![old.clone()],
                next_cursor: None,
                has_more: false,
            },
            older: true,
        },
        now,
    );
    let screen = render(&mut app, 100, 24);
    let old_day = old
        .created_at
        .with_timezone(&Local)
        .format("%Y-%m-%d")
        .to_string();
    assert!(screen.contains(&format!(" {old_day} ")), "{screen}");
    assert!(screen.contains(" Today "), "{screen}");
    assert!(
        screen.find(&old_day) < screen.find(" Today "),
        "oldest first: {screen}"
    );
    // Select it: its full date and time show.
    app.focus = Focus::Messages;
    app.cursor = Some(0);
    let screen = render(&mut app, 100, 24);
    let full = old
        .created_at
        .with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert!(screen.contains(&full), "{screen}");
}

/// The input cursor sits where editing happens, not always at the end.
#[test]
fn the_input_cursor_follows_editing() {
    let (mut app, _, _) = sample();
    app.focus = Focus::Input;
    app.input = "abcdef".into();
    app.input_back = 3;
    let mut term = Terminal::new(TestBackend::new(80, 20)).expect("terminal");
    term.draw(|f| draw(f, &mut app)).expect("draw");
    let at = term.get_cursor_position().expect("cursor");
    let buf = term.backend().buffer().clone();
    let start = (0..80u16)
        .find(|&x| buf[(x, at.y)].symbol() == "a")
        .expect("input text");
    assert_eq!(at.x, start + 3);
}

fn click(x: u16, y: u16) -> Update {
    Update::Mouse(crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    })
}

/// Issue 18: a click on the list opens that conversation; a click on a message selects
/// it; `y` copies it (OSC 52) and `i` shows its id.
#[test]
fn clicks_open_conversations_and_select_messages() {
    let (mut app, _, bob) = sample();
    let now = Instant::now();
    let screen = render(&mut app, 100, 24);
    // carol's name row in the list.
    let (row, line) = screen
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("carol"))
        .expect("carol listed");
    let col = line.chars().position(|c| c == 'c').expect("column") as u16;
    app.update(click(col, row as u16), now);
    assert_eq!(
        app.open_conv().map(|c| c.conv.other_user.username.as_str()),
        Some("carol")
    );
    // Back to bob, then click his "hello bob" line in the pane.
    app.update(Update::Opened(bob.clone()), now);
    let screen = render(&mut app, 100, 24);
    let (row, line) = screen
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("me: hello bob"))
        .expect("message shown");
    let col = line.find("me: hello").expect("column");
    let col = line[..col].chars().count() as u16;
    app.update(click(col, row as u16), now);
    assert_eq!(app.focus, Focus::Messages);
    let selected = app
        .cursor
        .and_then(|i| app.open_conv().map(|c| c.messages[i].clone()));
    let selected = selected.expect("a selected message");
    assert_eq!(selected.content.as_deref(), Some("hello bob"));
    let copied = app.update(key(KeyCode::Char('y')), now);
    assert_eq!(copied, vec![Action::Copy("hello bob".into())]);
    app.update(key(KeyCode::Char('i')), now);
    let status = app.status.clone().expect("status").0;
    assert!(status.contains(&selected.id.to_string()), "{status}");
    // A click on a border or outside does nothing.
    assert!(app.update(click(0, 0), now).is_empty());
}

/// Issue 18 bug 13: a gallery's items can be chosen (the choice stays in view) and Enter
/// shows the chosen one in its conversation.
#[test]
fn gallery_items_can_be_chosen_and_opened() {
    let (mut app, me, _) = sample();
    let now = Instant::now();
    let links: Vec<chat_protocol::rest::LinkItem> = (1..=40)
        .map(|i| chat_protocol::rest::LinkItem {
            url: format!("https://example.com/{i}"),
            message_id: MessageId::new(),
            sender_id: me,
            created_at: Utc::now(),
        })
        .collect();
    app.update(
        Update::Browsed {
            what: crate::app::Browse::Links,
            messages: Vec::new(),
            links: links.clone(),
        },
        now,
    );
    for _ in 0..35 {
        app.update(key(KeyCode::Down), now);
    }
    let screen = render(&mut app, 100, 24);
    assert!(screen.contains("https://example.com/36"), "{screen}");
    let jump = app.update(key(KeyCode::Enter), now);
    assert_eq!(jump, vec![Action::Jump(links[35].message_id)]);
    assert!(app.overlay.is_none());
}

#[test]
fn replies_edits_tombstones_and_reactions_are_drawn() {
    let (mut app, me, bob) = sample();
    let now = Instant::now();
    let mut reply = msg(&bob, bob.other_user.id, me, "sounds good");
    reply.reply_to = Some(chat_protocol::rest::ReplyTo {
        id: chat_protocol::MessageId::new(),
        sender_id: Some(me),
        kind: Some(MessageType::Text),
        preview: Some("dinner at\teight?".into()),
        deleted: false,
    });
    reply.edited_at = Some(Utc::now());
    reply.reactions = vec![chat_protocol::rest::Reaction {
        emoji: "👍".into(),
        user_ids: vec![me, bob.other_user.id],
    }];
    let mut gone = msg(&bob, bob.other_user.id, me, "secret");
    gone.content = None;
    gone.deleted_at = Some(Utc::now());
    for m in [reply, gone] {
        app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
    }
    let screen = render(&mut app, 100, 24);
    assert!(screen.contains("↳ me: dinner at eight?"), "{screen}");
    assert!(screen.contains("sounds good (edited)"), "{screen}");
    // A wide emoji takes two cells (the test buffer shows the second as a space).
    assert!(
        screen
            .lines()
            .any(|l| l.contains("👍") && l.contains(" 2 ")),
        "{screen}"
    );
    assert!(screen.contains("bob: message deleted"), "{screen}");
    assert!(!screen.contains("secret"), "{screen}");
    // Replying shows in the input's title.
    app.focus = crate::app::Focus::Messages;
    app.cursor = Some(0);
    app.update(key(KeyCode::Char('r')), now);
    let screen = render(&mut app, 100, 24);
    assert!(screen.contains("reply to bob: [image"), "{screen}");
}
