//! Render tests of how messages look: per-person colours and OSC 8 hyperlinks.

use super::tests::{msg, render, sample, strip_osc8};
use super::*;
use crate::app::Update;
use chat_protocol::ws::ServerEvent;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

/// The frame as drawn (cells, styles and skip marks), before it is written out.
fn draw_buffer(app: &mut App, w: u16, h: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    let mut frame = Buffer::empty(Rect::new(0, 0, w, h));
    term.draw(|f| {
        draw(f, app);
        frame = f.buffer_mut().clone();
    })
    .expect("draw");
    frame
}

/// Where `text` starts on the screen (the first row that has it), by columns.
fn find(buf: &Buffer, text: &str) -> Option<(u16, u16)> {
    for y in 0..buf.area.height {
        let row: Vec<String> = (0..buf.area.width)
            .map(|x| strip_osc8(buf[(x, y)].symbol()))
            .collect();
        for x in 0..row.len() {
            if row[x..].concat().starts_with(text) {
                return Some((x as u16, y));
            }
        }
    }
    None
}

/// Issue 18: each person has a colour of their own, in the list and on their messages;
/// the settings file's `them` gives everyone one colour instead.
#[test]
fn people_have_their_own_colours() {
    let (mut app, me, bob) = sample();
    let bob_colour = app.theme.user("bob");
    assert_ne!(bob_colour, app.theme.me);
    app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&bob, bob.other_user.id, me, "a line from bob"),
        }),
        std::time::Instant::now(),
    );
    let buf = draw_buffer(&mut app, 100, 24);
    let (x, y) = find(&buf, "bob: a line from bob").expect("bob's message");
    assert_eq!(buf[(x, y)].fg, bob_colour, "the name on the message");
    let (x, y) = find(&buf, "● bob").expect("bob in the list");
    assert_eq!(buf[(x + 2, y)].fg, bob_colour, "the name in the list");
    let (x, y) = find(&buf, "○ carol").expect("carol in the list");
    assert_eq!(buf[(x + 2, y)].fg, app.theme.user("carol"));

    app.theme.them = Some(Color::Yellow);
    let buf = draw_buffer(&mut app, 100, 24);
    let (x, y) = find(&buf, "bob: a line from bob").expect("bob's message");
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
}

/// Issue 18: a link is an OSC 8 hyperlink to the whole link, also where the wrap cut it
/// across two lines, and each of its columns is written once (inside the link); the
/// screen's text stays the same. `hyperlinks = false` leaves plain highlighted text.
#[test]
fn links_are_hyperlinks_to_the_whole_link() {
    let (mut app, me, bob) = sample();
    let url = "https://example.org/a/rather/long/path/that/the/wrap/cuts?q=1";
    let text = format!("read {url} today");
    app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&bob, bob.other_user.id, me, &text),
        }),
        std::time::Instant::now(),
    );
    // A pane about 60 columns wide: the link does not fit on the first line.
    let buf = draw_buffer(&mut app, 86, 24);
    let sequence = format!("\x1b]8;;{url}\x1b\\");
    let mut pieces = Vec::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            if let Some(rest) = sym.strip_prefix(sequence.as_str()) {
                let shown = rest.strip_suffix("\x1b]8;;\x1b\\").expect("closed");
                let width = shown.chars().count() as u16;
                for covered in x + 1..x + width {
                    assert!(buf[(covered, y)].skip, "column {covered} written twice");
                }
                assert!(!buf[(x + width, y)].skip, "the link ends at its text");
                pieces.push(shown.to_string());
            }
        }
    }
    assert_eq!(pieces.len(), 2, "two lines, two pieces: {pieces:?}");
    assert_eq!(pieces.concat(), url);
    let screen = render(&mut app, 86, 24);
    assert!(screen.contains(&pieces[0]), "{screen}");
    assert!(screen.contains(&format!("{} today", pieces[1])), "{screen}");

    app.theme.hyperlinks = false;
    let buf = draw_buffer(&mut app, 86, 24);
    assert!(
        buf.content()
            .iter()
            .all(|c| !c.symbol().contains('\x1b') && !c.skip),
        "no sequences when switched off"
    );
}

/// A link that ends a line of the text is not glued to the next line's first word (the
/// wrap's line ends are not cuts inside a link).
#[test]
fn a_link_ends_where_its_line_ends() {
    let (mut app, me, bob) = sample();
    app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&bob, bob.other_user.id, me, "https://a.example/x\nand more"),
        }),
        std::time::Instant::now(),
    );
    let buf = draw_buffer(&mut app, 100, 24);
    let targets: Vec<&str> = buf
        .content()
        .iter()
        .filter_map(|c| c.symbol().strip_prefix("\x1b]8;;"))
        .filter_map(|rest| rest.split_once('\x1b').map(|(url, _)| url))
        .filter(|url| !url.is_empty())
        .collect();
    assert_eq!(targets, ["https://a.example/x"]);
}

/// A link with a control character in it is highlighted but never made a hyperlink (it
/// could end the sequence early).
#[test]
fn only_clean_links_become_hyperlinks() {
    let (mut app, me, bob) = sample();
    app.update(
        Update::Server(ServerEvent::MessageNew {
            message: msg(&bob, bob.other_user.id, me, "x https://a.example/\u{7}b y"),
        }),
        std::time::Instant::now(),
    );
    let buf = draw_buffer(&mut app, 100, 24);
    assert!(buf.content().iter().all(|c| !c.symbol().contains("]8;;")));
}

/// Issue 18: links stand out, also where the wrap cuts one across two lines.
#[test]
fn links_are_highlighted_across_wraps() {
    let base = Style::new();
    let mut in_url = false;
    let spans = link_spans(
        "see https://example.com/a and",
        &mut in_url,
        base,
        Color::Blue,
    );
    let texts: Vec<&str> = spans.iter().map(|s| s.content.as_ref()).collect();
    assert_eq!(texts, ["see ", "https://example.com/a", " and"]);
    assert!(spans[1].style.add_modifier.contains(Modifier::UNDERLINED));
    assert!(!spans[2].style.add_modifier.contains(Modifier::UNDERLINED));
    assert!(!in_url);
    let first = link_spans("go http://exam", &mut in_url, base, Color::Blue);
    assert!(in_url, "cut by the wrap");
    let second = link_spans("ple.org/x then", &mut in_url, base, Color::Blue);
    assert_eq!(first[1].content, "http://exam");
    assert_eq!(second[0].content, "ple.org/x");
    assert!(second[0].style.add_modifier.contains(Modifier::UNDERLINED));
    assert!(!in_url);
}
