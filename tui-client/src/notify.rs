//! Getting the user's attention: the terminal bell, desktop notifications through the
//! terminal's escape sequences, and the unread total in the window title.

/// Desktop notifications through the terminal's escape sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Desktop {
    /// `OSC 777;notify;TITLE;BODY` (urxvt, foot, kitty, wezterm, VTE terminals).
    Osc777,
    /// `OSC 9;BODY` (iTerm2, Windows Terminal, kitty).
    Osc9,
    Off,
}

/// How the client gets attention (`--bell`, `--notify`, `--title`).
#[derive(Debug, Clone, Copy)]
pub struct Notices {
    pub bell: bool,
    pub desktop: Desktop,
    pub title: bool,
}

/// The bytes that ring / notify for one message, as configured: BEL, and an OSC
/// notification with the title and body cleaned of anything that could end or extend
/// the sequence (control characters, and `;` in OSC 777's fields).
pub fn notice_bytes(n: Notices, title: &str, body: &str) -> String {
    let clean = |s: &str, semicolons: bool| -> String {
        let s: String = s
            .chars()
            .map(|c| {
                if c.is_control() || (semicolons && c == ';') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        match s.char_indices().nth(120) {
            Some((at, _)) => format!("{}…", &s[..at]),
            None => s,
        }
    };
    let mut out = String::new();
    match n.desktop {
        Desktop::Osc777 => out.push_str(&format!(
            "\x1b]777;notify;{};{}\x1b\\",
            clean(title, true),
            clean(body, true)
        )),
        Desktop::Osc9 => out.push_str(&format!(
            "\x1b]9;{}: {}\x1b\\",
            clean(title, false),
            clean(body, false)
        )),
        Desktop::Off => {}
    }
    if n.bell {
        out.push('\x07');
    }
    out
}

/// The terminal window's title: the unread total when there is any.
pub fn window_title(unread: u64) -> String {
    match unread {
        0 => "chat-tui".into(),
        n => format!("chat-tui ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: notifications ring, notify in the configured dialect, and cannot be used
    /// to inject escape sequences; the title carries the unread total.
    #[test]
    fn notifications_follow_the_settings_and_are_clean() {
        let n = |bell, desktop| Notices {
            bell,
            desktop,
            title: true,
        };
        assert_eq!(
            notice_bytes(n(true, Desktop::Off), "chat: bob", "hi"),
            "\x07"
        );
        assert_eq!(notice_bytes(n(false, Desktop::Off), "chat: bob", "hi"), "");
        assert_eq!(
            notice_bytes(n(false, Desktop::Osc777), "chat: bob", "a;b"),
            "\x1b]777;notify;chat: bob;a b\x1b\\"
        );
        let hostile = notice_bytes(n(false, Desktop::Osc9), "chat: eve", "x\x1b]0;pwned\x07\ny");
        assert_eq!(hostile, "\x1b]9;chat: eve: x ]0;pwned  y\x1b\\");
        assert!(
            notice_bytes(n(false, Desktop::Osc9), "t", &"é".repeat(500))
                .chars()
                .count()
                < 140
        );
        assert_eq!(window_title(0), "chat-tui");
        assert_eq!(window_title(7), "chat-tui (7)");
    }
}
