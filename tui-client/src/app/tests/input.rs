//! Unit tests of the input line: editing, history, pastes, `/attach` arguments, limits.

use super::*;

/// Issue 18 bug 3: a paste is one update whatever its size, and a multi-line paste (or
/// Alt-Enter) makes one message with its line breaks, not one message per line.
#[test]
fn a_multi_line_paste_is_one_message() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    app.focus = Focus::Conversations;
    let big = format!("first line\r\nsecond line\r{}", "x".repeat(4000 - 24));
    app.update(Update::Paste(big), now);
    assert_eq!(app.focus, Focus::Input, "a paste goes to the input line");
    assert!(
        app.input.starts_with("first line\nsecond line\nx"),
        "{:?}",
        &app.input[..30]
    );
    app.input.truncate(22);
    app.update(
        Update::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)),
        now,
    );
    app.update(key(KeyCode::Char('3')), now);
    let sent = app.update(key(KeyCode::Enter), now);
    let contents: Vec<&str> = sent
        .iter()
        .filter_map(|a| match a {
            Action::Ws(ClientEvent::MessageSend { content, .. }) => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(contents, vec!["first line\nsecond line\n3"]);
}

/// Issue 18 bug 12: `/attach` takes paths with spaces (quoted or escaped) and `~`.
#[test]
fn attach_paths_split_like_a_shell() {
    use super::commands::attach_args;
    use std::path::PathBuf;
    let home = Some(std::ffi::OsString::from("/home/al"));
    let p = |s: &str| PathBuf::from(s);
    assert_eq!(
        attach_args(r#""my photo.jpg" b\ c.png ~/d.pdf '~/e f'"#, home.clone()).unwrap(),
        (
            vec![
                p("my photo.jpg"),
                p("b c.png"),
                p("/home/al/d.pdf"),
                p("~/e f")
            ],
            None
        )
    );
    assert_eq!(
        attach_args("a.png --  a  caption -- with dashes ", home.clone()).unwrap(),
        (vec![p("a.png")], Some("a  caption -- with dashes".into()))
    );
    assert_eq!(
        attach_args(r#"a.png "--" b.png"#, home.clone()).unwrap().0,
        vec![p("a.png"), p("--"), p("b.png")],
        "a quoted -- is a path"
    );
    assert_eq!(
        attach_args("~", home.clone()).unwrap().0,
        vec![p("/home/al")]
    );
    assert!(attach_args(r#""unclosed.png"#, home).is_err());
    assert_eq!(attach_args("   ", None).unwrap(), (vec![], None));
}

/// Issue 18 bug 8: over the server's 4,000 characters nothing is sent; the text goes back
/// to the input line to edit, and the status line says why.
#[test]
fn an_over_long_message_is_kept_for_editing_not_sent() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    let long = "é".repeat(4001);
    app.input = long.clone();
    let actions = app.update(key(KeyCode::Enter), now);
    assert!(actions.is_empty(), "{actions:?}");
    assert!(app.pending.is_empty());
    assert_eq!(app.input, long);
    let (text, is_error) = app.status.clone().expect("a status");
    assert!(
        is_error && text.contains("4001") && text.contains("4000"),
        "{text}"
    );
    // Exactly at the limit it goes.
    app.input = "é".repeat(4000);
    let sent = app.update(key(KeyCode::Enter), now);
    assert!(
        sent.iter()
            .any(|a| matches!(a, Action::Ws(ClientEvent::MessageSend { .. }))),
        "{sent:?}"
    );
}

/// Issue 18: a real input line: the cursor moves by character and word, text goes in at
/// the cursor, and deletion works both ways and by word or to either end.
#[test]
fn the_input_line_edits_like_a_shell() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    app.focus = Focus::Input;
    type_text(&mut app, "hello world", now);
    for _ in 0..5 {
        app.update(key(KeyCode::Left), now);
    }
    type_text(&mut app, "big ", now);
    assert_eq!(app.input, "hello big world");
    assert_eq!(&app.input[app.input_cursor()..], "world");
    app.update(with(KeyCode::Char('w'), KeyModifiers::CONTROL), now);
    assert_eq!(
        app.input, "hello world",
        "Ctrl-W: the word before the cursor"
    );
    app.update(key(KeyCode::Home), now);
    app.update(key(KeyCode::Delete), now);
    assert_eq!(app.input, "ello world");
    app.update(with(KeyCode::Right, KeyModifiers::CONTROL), now);
    assert_eq!(
        &app.input[..app.input_cursor()],
        "ello",
        "a word to the right"
    );
    app.update(with(KeyCode::Char('k'), KeyModifiers::CONTROL), now);
    assert_eq!(app.input, "ello", "Ctrl-K: to the end");
    app.update(key(KeyCode::Backspace), now);
    app.update(with(KeyCode::Char('a'), KeyModifiers::CONTROL), now);
    type_text(&mut app, "h", now);
    assert_eq!(app.input, "hell");
    app.update(with(KeyCode::Char('e'), KeyModifiers::CONTROL), now);
    type_text(&mut app, "o 漢字", now);
    app.update(key(KeyCode::Left), now);
    app.update(key(KeyCode::Backspace), now);
    assert_eq!(app.input, "hello 字", "by character, wide ones too");
    app.update(with(KeyCode::Char('u'), KeyModifiers::CONTROL), now);
    assert_eq!(app.input, "字", "Ctrl-U: to the start");
}

/// Issue 18: what was sent can be brought back with Alt-↑ / Alt-↓, and the line being
/// written is kept while browsing.
#[test]
fn the_input_history_walks_what_was_sent() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    app.focus = Focus::Input;
    type_line(&mut app, "first", now);
    type_line(&mut app, "second", now);
    type_line(&mut app, "second", now);
    type_text(&mut app, "draft", now);
    let up = || with(KeyCode::Up, KeyModifiers::ALT);
    let down = || with(KeyCode::Down, KeyModifiers::ALT);
    app.update(up(), now);
    assert_eq!(app.input, "second");
    app.update(up(), now);
    assert_eq!(app.input, "first", "a repeated line is kept once");
    app.update(up(), now);
    assert_eq!(app.input, "first", "the oldest stays");
    app.update(down(), now);
    assert_eq!(app.input, "second");
    app.update(down(), now);
    assert_eq!(app.input, "draft", "back to the line being written");
    // Plain ↑ still switches conversations.
    let before = app.open;
    app.update(key(KeyCode::Down), now);
    assert_ne!(app.open, before);
}
