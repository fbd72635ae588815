//! Unit tests of rebound keys: the `[keys]` table changes what a key does and what the
//! help says, and the fixed keys keep working.

use super::*;
use crate::keymap::Keymap;
use crate::ui::tests::render;
use std::collections::BTreeMap;

fn keymap(pairs: &[(&str, &str)]) -> Keymap {
    let table: BTreeMap<String, String> = pairs
        .iter()
        .map(|(a, k)| (a.to_string(), k.to_string()))
        .collect();
    Keymap::from_table(&table).expect("a good table")
}

#[test]
fn rebound_keys_act_and_the_help_shows_them() {
    let (mut app, _, _) = sample();
    let now = Instant::now();
    app.keys = keymap(&[
        ("reply", "R"),
        ("down", "n"),
        ("help", "f2"),
        ("next_conversation", "ctrl-j"),
    ]);
    app.focus = Focus::Messages;
    app.cursor = Some(0);
    // The old key does nothing now; the new one selects and replies.
    app.update(key(KeyCode::Char('r')), now);
    assert_eq!(app.compose, Compose::New);
    app.update(key(KeyCode::Char('n')), now);
    assert_eq!(app.cursor, Some(1), "n moves down");
    app.update(key(KeyCode::Char('j')), now);
    assert_eq!(app.cursor, Some(1), "j no longer does");
    app.update(key(KeyCode::Down), now);
    assert_eq!(
        app.cursor,
        Some(1),
        "the arrow still does (at the last message)"
    );
    app.update(
        Update::Key(KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT)),
        now,
    );
    assert!(
        matches!(app.compose, Compose::Reply { .. }),
        "{:?}",
        app.compose
    );
    assert_eq!(app.focus, Focus::Input);
    // Everywhere: Ctrl-J goes to the next conversation, F1 is not help any more, F2 is.
    let before = app.selected;
    app.update(
        Update::Key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::CONTROL)),
        now,
    );
    assert_eq!(app.selected, before + 1);
    app.update(key(KeyCode::F(1)), now);
    assert!(!app.help);
    app.update(key(KeyCode::F(2)), now);
    assert!(app.help);
    // The rebound help key closes it again.
    app.update(key(KeyCode::F(2)), now);
    assert!(!app.help);
    app.update(key(KeyCode::F(2)), now);
    let screen = render(&mut app, 120, 40);
    assert!(screen.contains("R / e (messages)"), "{screen}");
    assert!(screen.contains("F2 (or ? outside the input)"), "{screen}");
    assert!(screen.contains("(also Ctrl-P / Ctrl-J)"), "{screen}");
    // Ctrl-C always quits, whatever `quit` is bound to.
    app.update(key(KeyCode::Esc), now);
    let out = app.update(
        Update::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        now,
    );
    assert!(out.contains(&Action::Quit));
}
