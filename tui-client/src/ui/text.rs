//! Text as a terminal draws it: widths in columns (CJK and emoji take two), tabs
//! expanded, clipping and wrapping by columns, and the day separators of the message pane.

use chrono::NaiveDate;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The line between two days of messages: `── Today ──`, `── Yesterday ──`, the weekday
/// within the last week, else the ISO date; centred in `width` columns.
pub fn day_separator(date: NaiveDate, today: NaiveDate, width: usize) -> String {
    let days = (today - date).num_days();
    let label = match days {
        0 => "Today".to_string(),
        1 => "Yesterday".to_string(),
        2..=6 => date.format("%A").to_string(),
        _ => date.format("%Y-%m-%d").to_string(),
    };
    centred(&format!(" {label} "), width)
}

/// `label` in the middle of a `─` rule `width` columns wide.
pub fn centred(label: &str, width: usize) -> String {
    let side = width.saturating_sub(columns(label)) / 2;
    format!("{}{label}{}", "─".repeat(side), "─".repeat(side))
}

/// Columns a string takes on a terminal (CJK and most emoji take two).
pub fn columns(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

pub(super) fn char_columns(c: char) -> usize {
    UnicodeWidthChar::width(c).unwrap_or(0)
}

/// Text as a terminal can draw it: tabs expanded to the next multiple of four columns
/// (a raw tab moves the terminal's cursor past what ratatui thinks it drew, so borders and
/// text after it end up in the wrong cells).
pub fn expand_tabs(s: &str) -> String {
    if !s.contains('\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut col = 0;
    for c in s.chars() {
        match c {
            '\t' => {
                let pad = 4 - col % 4;
                out.extend(std::iter::repeat_n(' ', pad));
                col += pad;
            }
            '\n' => {
                out.push(c);
                col = 0;
            }
            _ => {
                out.push(c);
                col += char_columns(c);
            }
        }
    }
    out
}

/// Truncate to `n` columns with an ellipsis.
pub(super) fn clip(s: &str, n: usize) -> String {
    if columns(s) <= n {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_columns(c);
        if used + w + 1 > n {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// The longest tail of `s` that fits in `n` columns.
pub(super) fn tail_within(s: &str, n: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices().rev() {
        used += char_columns(c);
        if used > n {
            return &s[i + c.len_utf8()..];
        }
    }
    s
}

/// Hard-wrap each line of `s` at `width` terminal columns (at a space when there is one).
/// Nothing is lost: a character wider than the whole width gets a line of its own.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    wrap_parts(s, width).into_iter().map(|(l, _)| l).collect()
}

/// [`wrap`], each line with whether it was cut inside a word (the next line goes on with
/// that word) rather than at a space or the end of a line.
pub fn wrap_parts(s: &str, width: usize) -> Vec<(String, bool)> {
    let width = width.max(2);
    let mut out = Vec::new();
    for line in s.split('\n') {
        let mut rest: Vec<char> = line.chars().collect();
        if rest.is_empty() {
            out.push((String::new(), false));
        }
        while !rest.is_empty() {
            // How many characters fit, and whether the next one is a space.
            let (mut fit, mut used) = (0, 0);
            while fit < rest.len() && used + char_columns(rest[fit]) <= width {
                used += char_columns(rest[fit]);
                fit += 1;
            }
            if fit == rest.len() {
                out.push((rest.iter().collect(), false));
                break;
            }
            let fit = fit.max(1);
            // A space right at the limit is a clean break too.
            let cut = rest[..=fit.min(rest.len() - 1)]
                .iter()
                .rposition(|c| *c == ' ')
                .filter(|&i| i > 0)
                .unwrap_or(fit);
            let at_space = rest.get(cut) == Some(&' ');
            out.push((rest[..cut].iter().collect(), !at_space));
            let skip = if at_space { cut + 1 } else { cut };
            rest.drain(..skip);
        }
    }
    out
}
