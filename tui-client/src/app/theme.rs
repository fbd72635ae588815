//! How the screen looks: colours (one per person unless the settings file names one),
//! links, and whether links are OSC 8 hyperlinks.

/// How the screen looks (the `[colours]` table and `hyperlinks` of the settings file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    /// My name on my messages, and the border of the focused pane.
    pub me: ratatui::style::Color,
    /// Every other person's name, when the settings file names one colour for all; else
    /// each person has their own ([`Theme::user`]).
    pub them: Option<ratatui::style::Color>,
    /// Links in messages (also underlined).
    pub link: ratatui::style::Color,
    /// Links are OSC 8 hyperlinks too (`hyperlinks = false` in the settings file: not).
    pub hyperlinks: bool,
}

impl Default for Theme {
    fn default() -> Self {
        use ratatui::style::Color;
        Theme {
            me: Color::Cyan,
            them: None,
            link: Color::Blue,
            hyperlinks: true,
        }
    }
}

/// The colours people get by name: none of them is `me`'s cyan, the links' blue or the
/// grey of dates and previews.
const USER_COLOURS: [ratatui::style::Color; 8] = {
    use ratatui::style::Color::*;
    [
        Magenta,
        Yellow,
        Green,
        LightRed,
        LightMagenta,
        LightGreen,
        LightYellow,
        Red,
    ]
};

impl Theme {
    /// `username`'s colour: the settings file's `them`, or one of [`USER_COLOURS`] chosen
    /// by the name (FNV-1a), so a person has the same colour everywhere and on every start.
    pub fn user(&self, username: &str) -> ratatui::style::Color {
        self.them.unwrap_or_else(|| {
            let hash = username.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            USER_COLOURS[(hash % USER_COLOURS.len() as u64) as usize]
        })
    }
}
