//! Drawing: conversation list, message pane, input line, status bar, help and list
//! overlays. Reads the [`App`]; the only thing it writes back is the message pane's
//! geometry (for paging). Never panics on a tiny terminal.

use std::time::Instant;

use chrono::{DateTime, Local, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{media_label, App, Compose, Conn, ConvState, Focus};
use crate::keymap::KeyAction;

mod links;
mod overlay;
mod text;
use links::{hyperlink_pieces, link_spans, Links};
use overlay::{draw_help, draw_overlay};
pub use text::{centred, columns, day_separator, expand_tabs, wrap, wrap_parts};
use text::{char_columns, clip, tail_within};

/// Below this the layout cannot hold its panes; a notice is shown instead.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 8;

pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        frame.render_widget(
            Paragraph::new(format!(
                "terminal too small ({}x{}); need {MIN_WIDTH}x{MIN_HEIGHT}",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let now = Instant::now();
    let [main, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let list_width = (area.width / 3).clamp(20, 34);
    let [list, pane] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(10)]).areas(main);
    app.screen.list = list;
    app.screen.list_offset = draw_list(frame, app, list, now);
    app.screen.pane = pane;
    draw_messages(frame, app, pane, now);
    draw_input(frame, app, input);
    draw_status(frame, app, status, now);
    // The scroll position is kept clamped to what there is, so Up after End works at once.
    if app.help {
        app.overlay_scroll = draw_help(frame, main, app.overlay_scroll, &app.keys);
    } else if let Some(o) = &app.overlay {
        let selectable = !o.targets.is_empty();
        let lines: Vec<Line> = o
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if selectable && i == o.selected {
                    Line::styled(l.as_str(), Style::new().bg(Color::DarkGray))
                } else {
                    Line::raw(l.as_str())
                }
            })
            .collect();
        let scroll = if selectable {
            // Keep the chosen line in view: start a page at most above it.
            let visible = usize::from(pane.height.saturating_sub(4)).max(1);
            let earliest = o.selected.saturating_sub(visible - 1);
            app.overlay_scroll.min(o.selected).max(earliest)
        } else {
            app.overlay_scroll
        };
        app.overlay_scroll = draw_overlay(frame, pane, &o.title, lines, scroll);
    }
}

fn focused(app: &App, f: Focus) -> Style {
    if app.focus == f {
        Style::new().fg(app.theme.me)
    } else {
        Style::new()
    }
}

/// A message not stored yet: `12:04 me: text …` (sending), `(queued)` (offline), or
/// `✗ not sent` with the whole reason under it and what can be done.
fn pending_lines(app: &App, p: &crate::app::Pending, width: usize) -> Vec<Line<'static>> {
    let time = p
        .created_at
        .with_timezone(&Local)
        .format("%H:%M")
        .to_string();
    let mark = match &p.failed {
        Some(_) => " ✗ not sent",
        None if app.conn == Conn::Online => " …",
        None => " (queued)",
    };
    let grey = Style::new().fg(Color::DarkGray);
    let text = expand_tabs(&p.content.replace('\n', " ↵ "));
    let head = format!("{time} me: ");
    let room = width.saturating_sub(columns(&head) + columns(mark));
    let mut out = vec![Line::styled(
        format!("{head}{}{mark}", clip(&text, room)),
        grey,
    )];
    if let Some(e) = &p.failed {
        let indent = "      ";
        let why = format!("{e} (/retry or /dismiss)");
        for chunk in wrap(&why, width.saturating_sub(indent.len()).max(8)) {
            out.push(Line::styled(
                format!("{indent}{chunk}"),
                Style::new().fg(Color::Red),
            ));
        }
    }
    out
}

/// The conversation list; returns the index of its first shown item.
fn draw_list(frame: &mut Frame, app: &App, area: Rect, now: Instant) -> usize {
    let inner = area.width.saturating_sub(2) as usize;
    let items: Vec<ListItem> = app
        .convs
        .iter()
        .map(|c| {
            let u = &c.conv.other_user;
            let dot = if u.online {
                Span::styled("● ", Style::new().fg(Color::Green))
            } else {
                Span::styled("○ ", Style::new().fg(Color::DarkGray))
            };
            let mut head = vec![
                dot,
                Span::styled(
                    u.username.clone(),
                    Style::new()
                        .fg(app.theme.user(&u.username))
                        .add_modifier(Modifier::BOLD),
                ),
            ];
            if c.conv.unread_count > 0 {
                head.push(Span::styled(
                    format!(" ({})", c.conv.unread_count),
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ));
            }
            let preview = if app.typing(c, now) {
                "typing…".to_string()
            } else {
                c.conv.last_message.as_ref().map_or_else(String::new, |m| {
                    m.media
                        .first()
                        .map(media_label)
                        .or_else(|| m.content.clone())
                        .unwrap_or_default()
                        .replace(['\n', '\t'], " ")
                })
            };
            ListItem::new(vec![
                Line::from(head),
                Line::styled(
                    format!("  {}", clip(&preview, inner.saturating_sub(2))),
                    Style::new().fg(Color::Gray),
                ),
            ])
        })
        .collect();
    let title = format!(" Conversations ({}) ", app.convs.len());
    let list = List::new(items)
        .block(
            Block::bordered()
                .title(title)
                .border_style(focused(app, Focus::Conversations)),
        )
        .highlight_style(Style::new().bg(Color::DarkGray))
        .highlight_symbol("▌");
    let mut state = ListState::default();
    if !app.convs.is_empty() {
        state.select(Some(app.selected.min(app.convs.len() - 1)));
    }
    frame.render_stateful_widget(list, area, &mut state);
    state.offset()
}

/// `just now`, `5m ago`, `3h ago`, or the date.
pub fn ago(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => t.with_timezone(&Local).format("%Y-%m-%d").to_string(),
    }
}

fn header(c: &ConvState, app: &App, now: Instant) -> String {
    let u = &c.conv.other_user;
    let state = if app.typing(c, now) {
        "typing…".to_string()
    } else if u.online {
        "online".to_string()
    } else {
        u.last_seen_at
            .map_or_else(|| "offline".into(), |t| format!("last seen {}", ago(t)))
    };
    format!(" {} · {} ", u.username, state)
}

/// One message as wrapped lines: `12:04 alice: text ✓✓`, media items on their own lines.
/// The links' pieces go to `links`, by line of the returned lines.
fn message_lines(
    app: &App,
    m: &chat_protocol::rest::Message,
    width: usize,
    selected: bool,
    highlighted: bool,
    links: &mut Links,
) -> Vec<Line<'static>> {
    let mine = app.is_mine(m);
    let who = if mine {
        "me".to_string()
    } else {
        app.open_conv()
            .map_or_else(|| "them".into(), |c| c.conv.other_user.username.clone())
    };
    // The selected message shows its full date and time (the day is in its separator
    // otherwise).
    let time = m
        .created_at
        .with_timezone(&Local)
        .format(if selected {
            "%Y-%m-%d %H:%M:%S"
        } else {
            "%H:%M"
        })
        .to_string();
    let receipt = if !mine {
        ""
    } else if m.is_read {
        " ✓✓"
    } else {
        " ✓"
    };
    let mut text: Vec<String> = m.media.iter().map(media_label).collect();
    if let Some(c) = &m.content {
        text.extend(c.lines().map(str::to_string));
    }
    if m.deleted_at.is_some() {
        text = vec!["message deleted".into()];
    }
    let prefix = format!("{time} {who}: ");
    let base = if highlighted {
        Style::new().bg(Color::Blue)
    } else if selected {
        Style::new().bg(Color::DarkGray)
    } else {
        Style::new()
    };
    let name_style = if mine {
        base.fg(app.theme.me)
    } else {
        base.fg(app.theme.user(&who))
    };
    let mut out = Vec::new();
    let indent = columns(&prefix);
    if let Some(r) = &m.reply_to {
        out.push(Line::from(Span::styled(
            clip(
                &format!("{}↳ {}", " ".repeat(indent), reply_label(app, r)),
                width,
            ),
            base.fg(Color::DarkGray),
        )));
    }
    let body = expand_tabs(&text.join("\n"));
    let chunks = wrap_parts(&body, width.saturating_sub(columns(&prefix)).max(8));
    let last = chunks.len().saturating_sub(1);
    let mut in_url = false;
    links.start(base, app.theme.link);
    for (i, (chunk, cut_in_word)) in chunks.into_iter().enumerate() {
        let mut spans = if i == 0 {
            vec![
                Span::styled(time.clone(), base.fg(Color::DarkGray)),
                Span::styled(format!(" {who}: "), name_style),
            ]
        } else {
            vec![Span::styled(" ".repeat(columns(&prefix)), base)]
        };
        if m.deleted_at.is_some() {
            spans.push(Span::styled(
                chunk,
                base.fg(Color::DarkGray).add_modifier(Modifier::ITALIC),
            ));
        } else {
            let col: usize = spans.iter().map(Span::width).sum();
            let pieces = link_spans(&chunk, &mut in_url, base, app.theme.link);
            // A link goes on on the next line only where the wrap cut it, not past a
            // space the wrap dropped or the end of a line of the text.
            in_url &= cut_in_word;
            links.add(out.len(), col, &pieces, in_url);
            spans.extend(pieces);
        }
        if i == last && m.edited_at.is_some() && m.deleted_at.is_none() {
            spans.push(Span::styled(" (edited)", base.fg(Color::DarkGray)));
        }
        if i == last && !receipt.is_empty() {
            spans.push(Span::styled(receipt, base.fg(Color::Green)));
        }
        out.push(Line::from(spans));
    }
    links.end();
    if !m.reactions.is_empty() {
        let me = app.me.as_ref().map(|(id, _)| *id);
        let mut spans = vec![Span::styled(" ".repeat(indent), base)];
        for r in &m.reactions {
            let mine = me.is_some_and(|u| r.user_ids.contains(&u));
            let style = if mine {
                base.fg(app.theme.me).add_modifier(Modifier::BOLD)
            } else {
                base
            };
            spans.push(Span::styled(
                format!("{} {} ", r.emoji, r.user_ids.len()),
                style,
            ));
        }
        out.push(Line::from(spans));
    }
    out
}

/// `alice: the quoted text`, or what is left of a deleted original.
fn reply_label(app: &App, r: &chat_protocol::rest::ReplyTo) -> String {
    let who = r
        .sender_id
        .map_or_else(|| "someone".to_string(), |u| app.display_name(u));
    if r.deleted {
        return format!("{who}: message deleted");
    }
    let what = r
        .preview
        .clone()
        .or_else(|| r.kind.map(|k| format!("[{}]", k.as_str())))
        .unwrap_or_default();
    format!("{who}: {}", what.replace(['\n', '\t'], " "))
}

fn draw_messages(frame: &mut Frame, app: &mut App, area: Rect, now: Instant) {
    let Some(c) = app.open_conv() else {
        frame.render_widget(
            Paragraph::new("No conversation open. Type /open USERNAME, or F1 for help.")
                .block(Block::bordered().title(" Messages "))
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    };
    let mut title = header(c, app, now);
    if app.new_below > 0 && app.scroll > 0 {
        title.push_str(&format!("· ↓ {} new (PgDn) ", app.new_below));
    }
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    if c.older.is_some() {
        lines.push(Line::styled(
            "… older messages: PgUp",
            Style::new().fg(Color::DarkGray),
        ));
    } else if c.loaded {
        lines.push(Line::styled(
            "— start of the conversation —",
            Style::new().fg(Color::DarkGray),
        ));
    } else {
        lines.push(Line::styled("loading…", Style::new().fg(Color::DarkGray)));
    }
    let mut cursor_span = None;
    let mut links = Links::default();
    // (first line, end line, message index) of every message, for mouse clicks.
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    let today = Local::now().date_naive();
    let mut day = None;
    // Messages not stored yet (sending, queued or failed) stand where they were written,
    // in time order with the stored ones; those still sending are the newest anyway.
    let mut pending: Vec<_> = app.pending_in(c.conv.id).collect();
    pending.sort_by_key(|p| p.created_at);
    let mut pending = pending.into_iter().peekable();
    for (i, m) in c.messages.iter().enumerate() {
        while let Some(p) = pending.next_if(|p| p.created_at < m.created_at) {
            lines.extend(pending_lines(app, p, width));
        }
        let sel = app.focus == Focus::Messages && app.cursor == Some(i);
        let date = m.created_at.with_timezone(&Local).date_naive();
        if day != Some(date) {
            day = Some(date);
            lines.push(Line::styled(
                day_separator(date, today, width),
                Style::new().fg(Color::DarkGray),
            ));
        }
        if c.read_marker == Some(m.id) {
            lines.push(Line::styled(
                centred(" new messages ", width),
                Style::new().fg(Color::Yellow),
            ));
        }
        let start = lines.len();
        links.at_line(start);
        lines.extend(message_lines(
            app,
            m,
            width,
            sel,
            app.highlight == Some(m.id),
            &mut links,
        ));
        spans.push((start, lines.len(), i));
        if sel {
            cursor_span = Some((start, lines.len()));
        }
    }
    for p in pending {
        lines.extend(pending_lines(app, p, width));
    }
    if c.newer.is_some() {
        lines.push(Line::styled(
            "… newer messages: PgDn",
            Style::new().fg(Color::DarkGray),
        ));
    }
    let total = lines.len();
    let max_scroll = total.saturating_sub(height);
    let mut scroll = app.scroll.min(max_scroll);
    // Keep the selected message in view.
    if let Some((start, end)) = cursor_span {
        let bottom = total - scroll;
        let top = bottom.saturating_sub(height);
        if start < top {
            scroll = total.saturating_sub(start + height).min(max_scroll);
        } else if end > bottom {
            scroll = total.saturating_sub(end);
        }
    }
    let first = total.saturating_sub(height + scroll);
    let visible: Vec<Line> = lines.into_iter().skip(first).take(height).collect();
    app.screen.pane_rows = (first..first + visible.len())
        .map(|row| {
            spans
                .iter()
                .find(|(s, e, _)| (*s..*e).contains(&row))
                .map(|(_, _, i)| *i)
        })
        .collect();
    let border = focused(app, Focus::Messages);
    let shown = visible.len();
    frame.render_widget(
        Paragraph::new(visible).block(Block::bordered().title(title).border_style(border)),
        area,
    );
    if app.theme.hyperlinks {
        let inner = area.inner(ratatui::layout::Margin::new(1, 1));
        hyperlink_pieces(frame.buffer_mut(), inner, links.shown(first, shown));
    }
    app.pane_height = height;
    app.pane_lines = total;
    app.scroll = scroll;
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    let width = area.width.saturating_sub(2) as usize;
    // Tabs drawn as spaces, line breaks as ↵, widths in columns; the part shown keeps the
    // cursor in view (the text before it, as much as fits, then what follows).
    let display = |s: &str| expand_tabs(s).replace('\n', "↵");
    let at = app.input_cursor();
    let (before, whole) = (display(&app.input[..at]), display(&app.input));
    let after = &whole[before.len()..];
    let room = width.saturating_sub(1);
    let shown_before = tail_within(&before, room);
    let mut shown = shown_before.to_string();
    let mut used = columns(shown_before);
    for c in after.chars() {
        used += char_columns(c);
        if used > room {
            break;
        }
        shown.push(c);
    }
    let cursor_x = columns(shown_before);
    let title = match (&app.compose, app.open_conv()) {
        (Compose::Reply { quote, .. }, _) => format!(" reply to {quote} (Esc: cancel) "),
        (Compose::Edit { .. }, _) => " edit your message (Esc: cancel) ".into(),
        (Compose::New, Some(c)) => format!(" to {} ", c.conv.other_user.username),
        (Compose::New, None) => " /open USERNAME to start ".into(),
    };
    frame.render_widget(
        Paragraph::new(shown.clone()).block(
            Block::bordered()
                .title(title)
                .border_style(focused(app, Focus::Input)),
        ),
        area,
    );
    if app.focus == Focus::Input && !app.help && app.overlay.is_none() {
        let x = area.x + 1 + cursor_x as u16;
        frame.set_cursor_position((x.min(area.right().saturating_sub(2)), area.y + 1));
    }
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect, now: Instant) {
    let conn = match &app.conn {
        Conn::Online => Span::styled("● online", Style::new().fg(Color::Green)),
        Conn::Connecting { attempt } => Span::styled(
            if *attempt == 0 {
                "◌ connecting".to_string()
            } else {
                format!("◌ reconnecting (attempt {})", attempt + 1)
            },
            Style::new().fg(Color::Yellow),
        ),
        Conn::Offline {
            reason, retry_at, ..
        } => Span::styled(
            match retry_at {
                Some(t) => format!(
                    "○ offline: {reason}; retry in {}s",
                    t.saturating_duration_since(now).as_secs() + 1
                ),
                None => format!("○ offline: {reason}"),
            },
            Style::new().fg(Color::Red),
        ),
    };
    let mut spans = vec![conn];
    if let Some((_, name)) = &app.me {
        spans.push(Span::raw(format!(" │ {name}")));
    }
    spans.push(Span::raw(format!(" │ unread {}", app.unread_total)));
    let queued = app.pending.iter().filter(|p| p.failed.is_none()).count();
    if queued > 0 {
        spans.push(Span::raw(format!(" │ {queued} unsent")));
    }
    // The help key stays on the line: a long status message is cut to what is left.
    let help = Span::styled(
        format!(" │ {} help", app.keys.label(KeyAction::Help)),
        Style::new().fg(Color::DarkGray),
    );
    if let Some((msg, is_err)) = &app.status {
        spans.push(Span::raw(" │ "));
        let used: usize = spans.iter().map(Span::width).sum::<usize>() + help.width();
        let room = usize::from(area.width).saturating_sub(used);
        spans.push(Span::styled(
            clip(msg, room),
            if *is_err {
                Style::new().fg(Color::Red)
            } else {
                Style::new().fg(Color::Gray)
            },
        ));
    }
    let used: usize = spans.iter().map(Span::width).sum();
    if used + help.width() > usize::from(area.width) {
        // Even without a message it does not fit (a long offline reason): cut it to fit.
        let room = usize::from(area.width).saturating_sub(help.width());
        let all: String = spans.iter().map(|s| s.content.as_ref()).collect();
        spans = vec![Span::styled(clip(&all, room), Style::new().fg(Color::Red))];
    }
    spans.push(help);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_look;
