//! What is drawn over the panes: the help table and the read-only (or choosable) lists,
//! both scrollable.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::keymap::Keymap;

/// Every key and command, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    ("Enter", "send the message / run the /command"),
    (
        "Alt-Enter",
        "a line break in the message (pastes keep theirs)",
    ),
    ("Tab / Shift-Tab", "focus: input → conversations → messages"),
    (
        "↑ ↓ (input)",
        "previous / next conversation (also {previous_conversation} / {next_conversation})",
    ),
    (
        "↑ ↓ {up} {down} (lists)",
        "select a conversation / a message; at the top, older history loads",
    ),
    (
        "PgUp / PgDn, mouse wheel",
        "scroll; older history loads on demand",
    ),
    ("mouse click", "open a conversation / select a message"),
    (
        "{copy} / {info} (messages)",
        "copy the message (OSC 52) / show its id and time",
    ),
    (
        "{save} / {open} (messages)",
        "save (all items, never overwriting) / open the selected message's media",
    ),
    (
        "{reply} / {edit} (messages)",
        "reply to the selected message / edit it (yours); Esc in the input cancels",
    ),
    (
        "{delete_for_me} / {delete_for_everyone} (messages)",
        "delete the selected message for me / for everyone (yours)",
    ),
    (
        "{react} (messages)",
        "react: /react EMOJI on the selected message",
    ),
    (
        "{jump_to_original} (messages)",
        "on a reply: show the message it answers",
    ),
    ("Esc", "clear the input, close an overlay"),
    ("{help} (or ? outside the input)", "this help"),
    ("Ctrl-C / {quit}", "quit"),
    (
        "[keys] in config.toml",
        "rebind these keys (reply = \"R\", help = \"f2\"; README)",
    ),
    ("/open USER", "open or start a conversation"),
    (
        "/attach PATH... [-- caption]",
        "send up to 10 images, or a video, or a file (\"quote\" paths with spaces; ~ works)",
    ),
    (
        "/block [USER]  /unblock [USER]",
        "block or unblock (default: this conversation)",
    ),
    ("/status [USER]", "block status both ways"),
    ("/blocked", "the users you blocked"),
    (
        "/media  /files  /links",
        "browse this conversation's media, files, links",
    ),
    ("/jump MESSAGE_ID", "show a message in its context"),
    (
        "/react EMOJI",
        "add (or take back) your reaction to the selected or newest message",
    ),
    (
        "/search WORDS",
        "find your messages with all the words (prefixes, any case or accents)",
    ),
    ("/unread", "refresh unread totals"),
    (
        "/retry  /dismiss",
        "send this conversation's failed (✗) messages again / forget them",
    ),
    ("/quit", "quit"),
];

/// The help table with the keys in force (`keys`) in place of the `{action}` names.
pub(super) fn draw_help(frame: &mut Frame, area: Rect, scroll: usize, keys: &Keymap) -> usize {
    let rows: Vec<(String, String)> = HELP
        .iter()
        .map(|(k, v)| (keys.fill(k), keys.fill(v)))
        .collect();
    let key_width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let lines = rows
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<key_width$}  "), Style::new().fg(Color::Cyan)),
                Span::raw(v),
            ])
        })
        .collect();
    draw_overlay(frame, area, "Keys and commands", lines, scroll)
}

/// A bordered list over `area`, scrolled to `scroll` (clamped, so the last page stays
/// full); when it does not fit, the title says which lines are shown and how to scroll.
/// Returns the scroll position used.
pub(super) fn draw_overlay(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    lines: Vec<Line>,
    scroll: usize,
) -> usize {
    let w = area.width.saturating_sub(4).max(1);
    let h = (lines.len() as u16 + 2)
        .min(area.height.saturating_sub(2))
        .max(1);
    let r = Rect {
        x: area.x + (area.width.saturating_sub(w)) / 2,
        y: area.y + 1,
        width: w,
        height: h,
    };
    let inner_width = usize::from(w.saturating_sub(2)).max(1);
    // Rows the lines take once wrapped, and how many rows the box shows.
    let rows: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner_width))
        .sum();
    let visible = usize::from(h.saturating_sub(2)).max(1);
    let scroll = scroll.min(rows.saturating_sub(visible));
    let title = if rows > visible {
        format!(
            " {title} ({}–{} of {rows}; ↑↓ PgUp PgDn scroll, Esc closes) ",
            scroll + 1,
            (scroll + visible).min(rows)
        )
    } else {
        format!(" {title} (Esc closes) ")
    };
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        r,
    );
    scroll
}
