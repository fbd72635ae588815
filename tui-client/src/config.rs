//! `$XDG_CONFIG_HOME/chat-tui/config.toml` (or `~/.config/chat-tui/config.toml`, or
//! `--config PATH`): defaults for the command-line options. A flag or its environment
//! variable wins over the file, the file over the built-in default. Unknown keys are an
//! error, so a typo does not silently do nothing.
//!
//! ```toml
//! server = "https://chat.example.org"
//! token = "…"                 # or: user = "alice" with jwt_secret = "…" (local servers)
//! download_dir = "~/Downloads"
//! bell = true
//! notify = "osc777"           # osc777 | osc9 | off
//! title = true
//! hyperlinks = true           # links as OSC 8 hyperlinks (clickable where supported)
//!
//! [colours]                   # names, #rrggbb or 0-255
//! me = "cyan"
//! them = "#ff8800"          # everyone else; unset: a colour per person
//! link = "lightblue"
//!
//! [keys]                      # action = key; see chat-tui's help (F1) for the defaults
//! reply = "R"
//! next_conversation = "ctrl-j"
//! help = "f2"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::notify::Desktop;

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub jwt_secret: Option<String>,
    pub download_dir: Option<String>,
    pub bell: Option<bool>,
    pub notify: Option<String>,
    pub title: Option<bool>,
    pub hyperlinks: Option<bool>,
    pub colours: Option<Colours>,
    /// `[keys]`: action name to key (crate::keymap lists both).
    pub keys: Option<std::collections::BTreeMap<String, String>>,
}

/// `[colours]`: names (`cyan`, `lightblue`), `#rrggbb`, or 0–255.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Colours {
    pub me: Option<String>,
    pub them: Option<String>,
    pub link: Option<String>,
}

impl FileConfig {
    /// `notify` as the option's value (`osc777`, `osc9`, `off`).
    pub fn desktop(&self) -> anyhow::Result<Option<Desktop>> {
        use clap::ValueEnum;
        self.notify
            .as_deref()
            .map(|v| {
                Desktop::from_str(v, true).map_err(|_| {
                    anyhow::anyhow!("config: notify = {v:?}; expected osc777, osc9 or off")
                })
            })
            .transpose()
    }
}

/// The theme: the defaults with the file's colours over them.
pub fn theme(file: &FileConfig) -> anyhow::Result<crate::app::Theme> {
    use std::str::FromStr;
    let mut theme = crate::app::Theme::default();
    theme.hyperlinks = file.hyperlinks.unwrap_or(theme.hyperlinks);
    let Some(c) = &file.colours else {
        return Ok(theme);
    };
    let colour = |key: &str, v: &Option<String>, into: &mut ratatui::style::Color| {
        if let Some(v) = v {
            *into = ratatui::style::Color::from_str(v).map_err(|_| {
                anyhow::anyhow!(
                    "config: colours.{key} = {v:?} is not a colour (a name, #rrggbb or 0-255)"
                )
            })?;
        }
        Ok::<_, anyhow::Error>(())
    };
    colour("me", &c.me, &mut theme.me)?;
    if c.them.is_some() {
        let mut them = ratatui::style::Color::Reset;
        colour("them", &c.them, &mut them)?;
        theme.them = Some(them);
    }
    colour("link", &c.link, &mut theme.link)?;
    Ok(theme)
}

/// Where the file is looked for when `--config` is not given.
pub fn default_path(xdg: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    match (xdg.filter(|x| !x.is_empty()), home) {
        (Some(x), _) => Some(Path::new(x).join("chat-tui/config.toml")),
        (None, Some(h)) => Some(Path::new(h).join(".config/chat-tui/config.toml")),
        (None, None) => None,
    }
}

/// Read the file at `path`. A missing file is an empty configuration unless it was asked
/// for by name (`required`).
pub fn load(path: &Path, required: bool) -> anyhow::Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    Ok(toml::from_str(text)?)
}

/// `~` and `~/…` as the home directory, as a shell reads them (the settings file's paths
/// and `/attach`'s unquoted arguments).
pub fn expand_home(p: &str, home: Option<&std::ffi::OsStr>) -> PathBuf {
    match (p, home) {
        ("~", Some(h)) => PathBuf::from(h),
        (_, Some(h)) if p.starts_with("~/") => Path::new(h).join(&p[2..]),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key_and_refuses_unknown_ones() {
        let c = parse(
            r#"
            server = "https://chat.example.org"
            user = "alice"
            jwt_secret = "s"
            download_dir = "~/Downloads"
            bell = false
            notify = "OSC9"
            title = true
            "#,
        )
        .unwrap();
        assert_eq!(c.server.as_deref(), Some("https://chat.example.org"));
        assert_eq!(c.bell, Some(false));
        assert_eq!(c.desktop().unwrap(), Some(Desktop::Osc9));
        assert!(parse("sever = \"typo\"").is_err(), "unknown key");
        assert!(parse("bell = \"yes\"").is_err(), "wrong type");
        assert!(parse("notify = \"growl\"").unwrap().desktop().is_err());
        assert_eq!(parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn colours_come_from_the_file_and_bad_ones_are_refused() {
        use ratatui::style::Color;
        let c = parse("[colours]\nthem = \"#ff8800\"\nlink = \"lightblue\"").unwrap();
        let t = theme(&c).unwrap();
        assert_eq!(t.them, Some(Color::Rgb(0xff, 0x88, 0x00)));
        assert_eq!(
            t.user("bob"),
            Color::Rgb(0xff, 0x88, 0x00),
            "one colour for all"
        );
        assert_eq!(t.link, Color::LightBlue);
        assert_eq!(t.me, Color::Cyan, "not set: the default");
        assert!(theme(&parse("[colours]\nme = \"puce-ish\"").unwrap()).is_err());
        assert!(theme(&parse("[colours]\nthem = \"puce-ish\"").unwrap()).is_err());
        // Not set: a colour per person, the same on every start, never mine or the links'.
        let t = theme(&FileConfig::default()).unwrap();
        assert_eq!(t.them, None);
        let names = [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
        ];
        let colours: std::collections::HashSet<String> =
            names.iter().map(|n| format!("{:?}", t.user(n))).collect();
        assert!(
            colours.len() >= 4,
            "names spread over the palette: {colours:?}"
        );
        for n in names {
            assert_eq!(t.user(n), t.user(n));
            assert!(![t.me, t.link, Color::DarkGray, Color::Gray].contains(&t.user(n)));
        }
        assert!(
            parse("[colours]\nbackground = \"red\"").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn the_file_is_found_where_xdg_says() {
        assert_eq!(
            default_path(Some("/x"), Some("/home/a")),
            Some(PathBuf::from("/x/chat-tui/config.toml"))
        );
        assert_eq!(
            default_path(Some(""), Some("/home/a")),
            Some(PathBuf::from("/home/a/.config/chat-tui/config.toml"))
        );
        assert_eq!(default_path(None, None), None);
        assert_eq!(
            expand_home("~/Downloads", Some("/home/a".as_ref())),
            PathBuf::from("/home/a/Downloads")
        );
    }

    #[test]
    fn a_missing_default_file_is_empty_but_a_named_one_must_exist() {
        let missing = std::env::temp_dir().join(format!("no-such-{}.toml", uuid::Uuid::new_v4()));
        assert_eq!(load(&missing, false).unwrap(), FileConfig::default());
        assert!(load(&missing, true).is_err());
    }
}
