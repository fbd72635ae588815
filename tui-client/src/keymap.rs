//! Key bindings: the actions a key can be bound to, their defaults, and the `[keys]` table
//! of the settings file (`reply = "r"`, `next_conversation = "ctrl-n"`, `help = "f2"`).
//!
//! What stays fixed, so the client can always be driven and left: the arrow keys, Enter,
//! Esc, Tab, PgUp/PgDn, `/` and `?` outside the input, and Ctrl-C (quit).

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a bound key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Quit,
    Help,
    NextConversation,
    PreviousConversation,
    Up,
    Down,
    Reply,
    Edit,
    DeleteForMe,
    DeleteForEveryone,
    React,
    JumpToOriginal,
    Copy,
    Info,
    Save,
    Open,
}

/// Where a binding works: everywhere (so it needs a modifier or a non-character key, or
/// typing would be impossible), in the lists and the message pane, or in the message pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Everywhere,
    Lists,
    Messages,
}

/// Every action: its name in the settings file, its scope and its default key.
const ACTIONS: [(KeyAction, &str, Scope, &str); 16] = {
    use KeyAction::*;
    use Scope::*;
    [
        (Quit, "quit", Everywhere, "ctrl-q"),
        (Help, "help", Everywhere, "f1"),
        (NextConversation, "next_conversation", Everywhere, "ctrl-n"),
        (
            PreviousConversation,
            "previous_conversation",
            Everywhere,
            "ctrl-p",
        ),
        (Up, "up", Lists, "k"),
        (Down, "down", Lists, "j"),
        (Reply, "reply", Messages, "r"),
        (Edit, "edit", Messages, "e"),
        (DeleteForMe, "delete_for_me", Messages, "d"),
        (DeleteForEveryone, "delete_for_everyone", Messages, "D"),
        (React, "react", Messages, "+"),
        (JumpToOriginal, "jump_to_original", Messages, "g"),
        (Copy, "copy", Messages, "y"),
        (Info, "info", Messages, "i"),
        (Save, "save", Messages, "s"),
        (Open, "open", Messages, "o"),
    ]
};

/// One key with its Ctrl/Alt modifiers (Shift is in the character: `D`, not `shift-d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBinding {
    code: KeyCode,
    mods: KeyModifiers,
}

const MODS: KeyModifiers = KeyModifiers::CONTROL.union(KeyModifiers::ALT);

/// Named keys a binding may use, besides a single character.
const NAMED: [(&str, KeyCode); 14] = [
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("space", KeyCode::Char(' ')),
];

impl KeyBinding {
    /// `ctrl-n`, `alt-x`, `f2`, `D`, `+`, `pageup`: modifiers first, any case.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.chars().count() > 1 && lower.starts_with("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[5..];
            } else if rest.chars().count() > 1 && lower.starts_with("alt-") {
                mods |= KeyModifiers::ALT;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if !c.is_control() && !c.is_whitespace() => {
                // Ctrl and Alt with a letter arrive in lower case.
                if mods.is_empty() {
                    KeyCode::Char(c)
                } else {
                    KeyCode::Char(c.to_ascii_lowercase())
                }
            }
            _ => {
                let lower = rest.to_ascii_lowercase();
                let f = lower
                    .strip_prefix('f')
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=12).contains(n));
                match (f, NAMED.iter().find(|(n, _)| *n == lower)) {
                    (Some(n), _) => KeyCode::F(n),
                    (None, Some((_, code))) => *code,
                    (None, None) => {
                        return Err(format!(
                            "{s:?} is not a key (a character, f1-f12, or a name such as \
                             pageup, with ctrl- or alt- before it)"
                        ))
                    }
                }
            }
        };
        Ok(KeyBinding { code, mods })
    }

    fn matches(&self, key: &KeyEvent) -> bool {
        let code = match key.code {
            KeyCode::Char(c) if key.modifiers.intersects(MODS) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            other => other,
        };
        code == self.code && key.modifiers & MODS == self.mods
    }

    /// A key that would type into the input line: it cannot work everywhere.
    fn types(&self) -> bool {
        matches!(self.code, KeyCode::Char(_)) && !self.mods.contains(KeyModifiers::CONTROL)
    }

    /// A key the client keeps for itself in `scope` (see the module documentation): always
    /// the fixed keys (and Ctrl-I / Ctrl-M, which terminals send as Tab and Enter); for an
    /// everywhere-key also the input line's own editing keys, or editing would stop.
    fn reserved(&self, scope: Scope) -> bool {
        use KeyCode::*;
        let plain = self.mods.is_empty();
        let ctrl = self.mods == KeyModifiers::CONTROL;
        let alt = self.mods == KeyModifiers::ALT;
        let always = (ctrl && matches!(self.code, Char('c' | 'i' | 'm')))
            || (plain
                && matches!(
                    self.code,
                    Enter | Esc | Tab | BackTab | PageUp | PageDown | Char('/' | '?' | 'q')
                ));
        let editing = (plain
            && matches!(self.code, Left | Right | Home | End | Backspace | Delete))
            || (ctrl && matches!(self.code, Char('a' | 'e' | 'w' | 'u' | 'k') | Left | Right))
            || (alt && matches!(self.code, Char('b' | 'f' | 'e') | Enter | Left | Right));
        always || (scope == Scope::Everywhere && editing)
    }
}

impl fmt::Display for KeyBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if !self.mods.is_empty() => write!(f, "{}", c.to_ascii_uppercase()),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => {
                let name = NAMED.iter().find(|(_, c)| *c == other).map_or("?", |n| n.0);
                let mut cs = name.chars();
                let first = cs.next().map(|c| c.to_ascii_uppercase()).unwrap_or('?');
                write!(f, "{first}{}", cs.as_str())
            }
        }
    }
}

/// The bindings in force: the defaults with the settings file's `[keys]` over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    keys: Vec<(KeyAction, KeyBinding)>,
}

impl Default for Keymap {
    fn default() -> Self {
        let keys = ACTIONS
            .iter()
            .map(|(a, _, _, k)| (*a, KeyBinding::parse(k).expect("default keys parse")))
            .collect();
        Keymap { keys }
    }
}

impl Keymap {
    /// The defaults with `table` (action name to key) over them. Refuses an unknown action,
    /// a key that is not one, a key the client keeps, a character for an action that
    /// works everywhere, and two actions on one key where both work.
    pub fn from_table(table: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut map = Keymap::default();
        for (name, key) in table {
            let Some(i) = ACTIONS.iter().position(|(_, n, _, _)| n == name) else {
                let names: Vec<&str> = ACTIONS.iter().map(|a| a.1).collect();
                return Err(format!(
                    "keys.{name} is not an action; they are: {}",
                    names.join(", ")
                ));
            };
            let b = KeyBinding::parse(key).map_err(|e| format!("keys.{name}: {e}"))?;
            if b.reserved(ACTIONS[i].2) {
                return Err(format!("keys.{name}: {b} is kept by chat-tui itself"));
            }
            if ACTIONS[i].2 == Scope::Everywhere && b.types() {
                return Err(format!(
                    "keys.{name}: {b} would be typed into the input line; use ctrl- or \
                     a function key"
                ));
            }
            map.keys[i].1 = b;
        }
        for (i, (a, x)) in map.keys.iter().enumerate() {
            for (b, y) in &map.keys[i + 1..] {
                // Every pane with list keys has message keys or everywhere keys too.
                if x == y {
                    return Err(format!(
                        "keys: {} and {} are both on {x}",
                        name(*a),
                        name(*b)
                    ));
                }
            }
        }
        Ok(map)
    }

    /// The action `key` is bound to, among `actions`.
    pub fn action(&self, key: &KeyEvent, actions: &[KeyAction]) -> Option<KeyAction> {
        self.keys
            .iter()
            .find(|(a, b)| actions.contains(a) && b.matches(key))
            .map(|(a, _)| *a)
    }

    /// `key`'s code, with the keys bound to up and down read as the arrows they stand for.
    pub fn arrow(&self, key: &KeyEvent) -> KeyCode {
        match self.action(key, &[KeyAction::Up, KeyAction::Down]) {
            Some(KeyAction::Up) => KeyCode::Up,
            Some(KeyAction::Down) => KeyCode::Down,
            _ => key.code,
        }
    }

    /// The message-pane action `key` is bound to, if any.
    pub fn message_action(&self, key: &KeyEvent) -> Option<KeyAction> {
        ACTIONS
            .iter()
            .filter(|(_, _, scope, _)| *scope == Scope::Messages)
            .find_map(|(a, _, _, _)| self.is(*a, key).then_some(*a))
    }

    /// Whether `key` is bound to `action`.
    pub fn is(&self, action: KeyAction, key: &KeyEvent) -> bool {
        self.action(key, &[action]).is_some()
    }

    /// The key of `action`, as the help shows it.
    pub fn label(&self, action: KeyAction) -> String {
        self.keys
            .iter()
            .find(|(a, _)| *a == action)
            .map_or_else(String::new, |(_, b)| b.to_string())
    }

    /// `text` with every `{action_name}` replaced by that action's key.
    pub fn fill(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (a, n, _, _) in ACTIONS {
            out = out.replace(&format!("{{{n}}}"), &self.label(a));
        }
        out
    }
}

fn name(a: KeyAction) -> &'static str {
    ACTIONS.iter().find(|x| x.0 == a).map_or("?", |x| x.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    fn table(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, k)| (a.to_string(), k.to_string()))
            .collect()
    }

    #[test]
    fn keys_parse_and_match_as_terminals_send_them() {
        let k = KeyBinding::parse("ctrl-n").unwrap();
        assert!(k.matches(&ev(KeyCode::Char('n'), KeyModifiers::CONTROL)));
        assert!(!k.matches(&ev(KeyCode::Char('n'), KeyModifiers::NONE)));
        let d = KeyBinding::parse("D").unwrap();
        // Some terminals report Shift with an upper-case letter, some do not.
        assert!(d.matches(&ev(KeyCode::Char('D'), KeyModifiers::SHIFT)));
        assert!(d.matches(&ev(KeyCode::Char('D'), KeyModifiers::NONE)));
        assert!(!d.matches(&ev(KeyCode::Char('d'), KeyModifiers::NONE)));
        assert!(KeyBinding::parse("F2")
            .unwrap()
            .matches(&ev(KeyCode::F(2), KeyModifiers::NONE)));
        assert!(KeyBinding::parse("Alt-PageUp")
            .unwrap()
            .matches(&ev(KeyCode::PageUp, KeyModifiers::ALT)));
        for bad in ["", "ctrl-", "f13", "pgup", "ab", "ctrl-\t"] {
            assert!(KeyBinding::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(KeyBinding::parse("ctrl-n").unwrap().to_string(), "Ctrl-N");
        assert_eq!(
            KeyBinding::parse("pagedown").unwrap().to_string(),
            "Pagedown"
        );
        assert_eq!(KeyBinding::parse("+").unwrap().to_string(), "+");
    }

    #[test]
    fn the_file_rebinds_and_bad_tables_are_refused() {
        let m = Keymap::from_table(&table(&[("reply", "R"), ("help", "f2")])).unwrap();
        let reply = ev(KeyCode::Char('R'), KeyModifiers::SHIFT);
        assert_eq!(
            m.action(&reply, &[KeyAction::Reply]),
            Some(KeyAction::Reply)
        );
        assert!(!m.is(
            KeyAction::Reply,
            &ev(KeyCode::Char('r'), KeyModifiers::NONE)
        ));
        assert!(m.is(KeyAction::Help, &ev(KeyCode::F(2), KeyModifiers::NONE)));
        assert!(!m.is(KeyAction::Help, &ev(KeyCode::F(1), KeyModifiers::NONE)));
        assert_eq!(m.fill("{reply} / {help}"), "R / F2");
        let refused = [
            (vec![("answer", "a")], "not an action"),
            (vec![("reply", "ctrl-")], "not a key"),
            (vec![("help", "h")], "typed into the input"),
            (vec![("quit", "ctrl-c")], "kept by chat-tui"),
            (vec![("copy", "/")], "kept by chat-tui"),
            (vec![("copy", "q")], "kept by chat-tui"),
            (vec![("help", "ctrl-w")], "kept by chat-tui"),
            (vec![("next_conversation", "right")], "kept by chat-tui"),
            (
                vec![("previous_conversation", "alt-enter")],
                "kept by chat-tui",
            ),
            (vec![("reply", "ctrl-m")], "kept by chat-tui"),
            (vec![("copy", "r")], "both on r"),
            (vec![("next_conversation", "ctrl-p")], "both on Ctrl-P"),
        ];
        for (t, why) in refused {
            let e = Keymap::from_table(&table(&t)).unwrap_err();
            assert!(e.contains(why), "{t:?}: {e}");
        }
        // In the message pane the input line's keys are free.
        assert!(Keymap::from_table(&table(&[("reply", "right")])).is_ok());
        // Swapping two keys is fine: the table is checked as a whole.
        let m = Keymap::from_table(&table(&[("copy", "s"), ("save", "y")])).unwrap();
        assert!(m.is(KeyAction::Copy, &ev(KeyCode::Char('s'), KeyModifiers::NONE)));
    }
}
