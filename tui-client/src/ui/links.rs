//! Links in messages: highlighted spans, and OSC 8 hyperlinks over them on the screen, so
//! a terminal that supports them opens the whole link on a click, also where the wrap cut
//! it across lines (the pane draws pre-wrapped lines, so each piece is its own hyperlink
//! to the whole target).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use unicode_width::UnicodeWidthStr;

/// Longest link made a hyperlink (terminals cap it; the text is still highlighted).
const MAX_URL: usize = 2048;

/// One wrapped chunk of message text as spans, links (`http://`, `https://`) underlined in
/// blue so they stand out and the terminal's own link detection has a clear target.
/// `in_url` carries a link that the wrap cut across chunks.
pub(super) fn link_spans(
    chunk: &str,
    in_url: &mut bool,
    base: Style,
    colour: Color,
) -> Vec<Span<'static>> {
    let link = link_style(base, colour);
    let mut spans = Vec::new();
    let mut rest = chunk;
    while !rest.is_empty() {
        if *in_url {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            spans.push(Span::styled(rest[..end].to_string(), link));
            *in_url = end == rest.len();
            rest = &rest[end..];
            continue;
        }
        match ["https://", "http://"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
        {
            Some(at) => {
                if at > 0 {
                    spans.push(Span::styled(rest[..at].to_string(), base));
                }
                *in_url = true;
                rest = &rest[at..];
            }
            None => {
                spans.push(Span::styled(rest.to_string(), base));
                rest = "";
            }
        }
    }
    spans
}

/// A piece of a link on one line of the message pane: where it starts (column in the
/// line), how wide it is, and the whole link it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LinkPiece {
    pub line: usize,
    pub col: usize,
    pub width: usize,
    pub url: String,
}

/// Collects the link pieces of the pane's lines while the messages are laid out.
#[derive(Debug, Default)]
pub(super) struct Links {
    done: Vec<LinkPiece>,
    /// Pieces of the link being read (it may go on on the next line), whole-link unknown.
    open: Vec<(usize, usize, usize, String)>,
    /// The pane line the current message starts at.
    offset: usize,
    style: Style,
}

impl Links {
    /// The next message starts at pane line `line`.
    pub fn at_line(&mut self, line: usize) {
        self.offset = line;
    }

    /// A message's text starts; its links are drawn in `colour` over `base`.
    pub fn start(&mut self, base: Style, colour: Color) {
        self.style = link_style(base, colour);
        self.open.clear();
    }

    /// The spans `link_spans` made of one line (`line` of the message's lines), drawn from
    /// column `col`; `in_url`: its last link goes on on the next line.
    pub fn add(&mut self, line: usize, col: usize, spans: &[Span<'static>], in_url: bool) {
        let mut x = col;
        for (i, s) in spans.iter().enumerate() {
            let w = s.width();
            if s.style == self.style {
                let piece = (self.offset + line, x, w, s.content.to_string());
                self.open.push(piece);
                if !(in_url && i + 1 == spans.len()) {
                    self.close();
                }
            }
            x += w;
        }
    }

    /// The message's text ended (and with it any link still open).
    pub fn end(&mut self) {
        self.close();
    }

    fn close(&mut self) {
        let url: String = self.open.iter().map(|p| p.3.as_str()).collect();
        let pieces = std::mem::take(&mut self.open);
        if !linkable(&url) {
            return;
        }
        for (line, col, width, _) in pieces {
            self.done.push(LinkPiece {
                line,
                col,
                width,
                url: url.clone(),
            });
        }
    }

    /// The pieces on pane lines `first..first + count`, their lines counted from `first`.
    pub fn shown(mut self, first: usize, count: usize) -> Vec<LinkPiece> {
        self.end();
        self.done
            .into_iter()
            .filter(|p| (first..first + count).contains(&p.line))
            .map(|p| LinkPiece {
                line: p.line - first,
                ..p
            })
            .collect()
    }
}

fn link_style(base: Style, colour: Color) -> Style {
    base.fg(colour).add_modifier(Modifier::UNDERLINED)
}

/// Whether `url` may go into an OSC 8 sequence: a bounded length and nothing that could
/// end the sequence early or start another (the server refuses control characters in
/// text; this does not rely on it).
fn linkable(url: &str) -> bool {
    !url.is_empty() && url.len() <= MAX_URL && !url.chars().any(char::is_control)
}

/// Turn each piece (line `line` of `area`) into an OSC 8 hyperlink in `buf`: its first
/// cell carries the sequence and the piece's text, and the cells it covers are skipped
/// when the screen is written, so each column is written once, inside the link.
pub(super) fn hyperlink_pieces(buf: &mut Buffer, area: Rect, pieces: Vec<LinkPiece>) {
    for p in pieces {
        let y = area.y + p.line as u16;
        let x0 = area.x + p.col as u16;
        let end = (usize::from(x0) + p.width).min(usize::from(area.right())) as u16;
        // One column stays plain text: the screen diff steps over the cell after a cell
        // whose symbol it takes for wide, and that cell would not be part of the link.
        if y >= area.bottom() || end <= x0 + 1 {
            continue;
        }
        let mut text = String::new();
        let mut x = x0;
        while x < end {
            let sym = buf[(x, y)].symbol();
            text.push_str(sym);
            x += sym.width().max(1) as u16;
        }
        let link = format!("\x1b]8;;{}\x1b\\{text}\x1b]8;;\x1b\\", p.url);
        buf[(x0, y)].set_symbol(&link);
        for x in x0 + 1..end {
            buf[(x, y)].set_skip(true);
        }
    }
}
