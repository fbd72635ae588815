//! Validated input values: each `parse` returns `Result`, so a value that exists is
//! valid. Refusals are [`InvalidInput`]; the domain error maps them to the SPEC codes.

use chrono::{DateTime, Utc};

/// Why an input value was refused. The message is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// A field breaks its rule (`validation_failed`).
    #[error("{0}")]
    Field(String),
    /// A page or window size out of range (`invalid_limit`).
    #[error("{0}")]
    Limit(String),
}

/// Current time at the precision every backend stores (microseconds), so a value read
/// back compares equal to the value written.
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A username: 1..=64 characters of `[a-z0-9_.-]`, stored lower-case so that
/// `Alice` and `alice` are the same person.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() || s.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::Field(format!(
                "username must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(InvalidInput::Field(
                "username may contain only letters, digits, '_', '.' and '-'".into(),
            ));
        }
        Ok(Username(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text of a message: 1..=4000 Unicode scalar values after trimming, no control
/// characters other than newline and tab. Stored trimmed, never escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

/// Characters that draw nothing: zero-width spaces and joiners, the BOM, bidirectional
/// marks, embeddings, overrides and isolates, invisible operators, fillers, variation
/// selectors and tags. In a file name they only serve to disguise it
/// (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E0FFF}')
}

impl MessageBody {
    pub const MAX_CHARS: usize = chat_protocol::rest::MAX_MESSAGE_CHARS;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = raw.trim();
        let n = s.chars().count();
        if n == 0 {
            return Err(InvalidInput::Field("content must not be empty".into()));
        }
        if n > Self::MAX_CHARS {
            return Err(InvalidInput::Field(format!(
                "content is {n} characters; the limit is {}",
                Self::MAX_CHARS
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() && *c != '\n' && *c != '\t')
        {
            return Err(InvalidInput::Field(format!(
                "content contains a control character (U+{:04X})",
                c as u32
            )));
        }
        // A message of zero-width characters or a lone BOM is an invisible message.
        if s.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
            return Err(InvalidInput::Field(
                "content has no visible character".into(),
            ));
        }
        Ok(MessageBody(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A client's idempotency key: 1..=128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempId(String);

impl TempId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::Field(format!(
                "temp_id must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidInput::Field(
                "temp_id must not contain control characters".into(),
            ));
        }
        Ok(TempId(raw.to_string()))
    }

    pub fn parse_opt(raw: Option<&str>) -> Result<Option<Self>, InvalidInput> {
        raw.map(Self::parse).transpose()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Page size: default 50, 1..=100; anything else is refused, not clamped, so a client
/// bug shows up at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: u32 = 50;
    pub const MAX: u32 = 100;

    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidInput> {
        Self::parse_in(raw, Self::DEFAULT, Self::MAX, "limit")
    }

    /// Same rule with another default/maximum (e.g. the context window).
    pub fn parse_in(
        raw: Option<&str>,
        default: u32,
        max: u32,
        name: &str,
    ) -> Result<Self, InvalidInput> {
        let Some(raw) = raw else {
            return Ok(Limit(default));
        };
        match raw.trim().parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Limit(n)),
            _ => Err(InvalidInput::Limit(format!(
                "{name} must be an integer from 1 to {max}"
            ))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A context window's size on one side (`before` / `after` around a message): like a
/// [`Limit`] but 0 is allowed (a window may want nothing on one side).
pub fn window_size(
    raw: Option<&str>,
    default: u32,
    max: u32,
    name: &str,
) -> Result<u32, InvalidInput> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(InvalidInput::Limit(format!(
            "{name} must be an integer from 0 to {max}"
        ))),
    }
}

/// A reaction: exactly one emoji as Unicode lists it (skin tones, ZWJ sequences and flags
/// included), stored in its fully qualified form, so `❤` and `❤️` are one reaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Emoji(&'static str);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let found = emojis::get(raw).or_else(|| {
            // Typed without the emoji presentation selector (U+FE0F).
            (raw.len() < 64)
                .then(|| format!("{raw}\u{fe0f}"))
                .and_then(|q| emojis::get(&q))
        });
        match found {
            Some(e) => Ok(Emoji(e.as_str())),
            None => Err(InvalidInput::Field(
                "a reaction must be exactly one emoji".into(),
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_real_emoji() {
        for ok in ["👍", "❤️", "🤞🏼", "👩‍👩‍👧‍👦", "🇿🇦", "🏳️‍🌈", "1️⃣"]
        {
            assert_eq!(Emoji::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
        // Without the presentation selector it is the same reaction.
        assert_eq!(Emoji::parse("\u{2764}").unwrap().as_str(), "❤️");
        for bad in [
            "", " ", "a", "ab", ":)", "👍👍", "👍 ", "👍a", "\u{200d}", "\u{fe0f}", "🇿", "<b>",
            "x\u{301}",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Emoji::parse(&"👍".repeat(1000)).is_err());
    }

    #[test]
    fn username_is_lowercased_and_restricted() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("../etc").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("bob_1.x-y").is_ok());
    }

    #[test]
    fn message_body_rules() {
        assert_eq!(MessageBody::parse("  hi\n ").unwrap().as_str(), "hi");
        assert!(MessageBody::parse("   ").is_err());
        assert!(MessageBody::parse("a\u{0}b").is_err());
        assert!(MessageBody::parse("a\u{1b}[31mred").is_err());
        assert!(MessageBody::parse("tab\tand\nnewline").is_ok());
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse(&"é".repeat(4001)).is_err());
        // 4000 emoji are 4000 scalar values even though they are 16000 bytes.
        assert!(MessageBody::parse(&"😀".repeat(4000)).is_ok());
        assert!(MessageBody::parse("<script>alert(1)</script>")
            .unwrap()
            .as_str()
            .contains("<script>"));
        // Nothing visible (issue 16): zero-width characters, a BOM, bidi controls.
        for invisible in [
            "\u{200B}",
            "\u{FEFF}",
            "\u{200B}\u{200D} \u{FEFF}",
            "\u{202E}\u{2066}",
        ] {
            assert!(MessageBody::parse(invisible).is_err(), "{invisible:?}");
        }
        // They stay allowed beside visible text (emoji sequences, RTL marks).
        assert!(MessageBody::parse("👩\u{200D}💻").is_ok());
        assert!(MessageBody::parse("\u{200F}שלום").is_ok());
    }

    #[test]
    fn limit_default_range_and_refusal() {
        assert_eq!(Limit::parse(None).unwrap().get(), 50);
        assert_eq!(Limit::parse(Some("100")).unwrap().get(), 100);
        for bad in ["0", "101", "-1", "abc", "1.5", ""] {
            assert!(Limit::parse(Some(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn temp_id_rules() {
        assert!(TempId::parse("abc-123").is_ok());
        assert!(TempId::parse("").is_err());
        assert!(TempId::parse(&"x".repeat(129)).is_err());
        assert!(TempId::parse("a\nb").is_err());
    }
}
