//! The interactive client's runtime: the terminal (raw mode, alternate screen, mouse;
//! restored on exit and on panic), a thread reading keys, the socket task with
//! reconnect/backoff (interactive/socket.rs), and REST calls run as tasks. All of them feed [`Update`]s into one
//! loop that applies them to the [`App`] and redraws.

use std::io::Stdout;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_client::{Client, PageQuery, Upload};
use chat_protocol::ws::ClientEvent;
use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture, Event,
};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::app::{Action, App, Browse, Update, PAGE};
use crate::notify::{notice_bytes, window_title, Notices};
use crate::ui;

mod socket;
use socket::socket_task;

type Term = Terminal<CrosstermBackend<Stdout>>;

/// Updates applied between two draws at most (the screen still refreshes under a flood).
const MAX_UPDATES_PER_FRAME: usize = 1024;

/// Raw mode, the alternate screen, and the reports chat-tui reads (mouse, bracketed
/// paste, focus): at start and again after an external editor had the terminal.
fn take_terminal() -> anyhow::Result<()> {
    enable_raw_mode().context("raw mode (is this a terminal?)")?;
    execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste,
        EnableFocusChange
    )?;
    Ok(())
}

fn enter() -> anyhow::Result<Term> {
    take_terminal()?;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        hook(info);
    }));
    Ok(Terminal::new(CrosstermBackend::new(std::io::stdout()))?)
}

fn leave() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        DisableFocusChange,
        LeaveAlternateScreen,
        DisableMouseCapture
    );
}

pub async fn run(
    client: Client,
    download_dir: PathBuf,
    notices: Notices,
    theme: crate::app::Theme,
    keymap: crate::keymap::Keymap,
) -> anyhow::Result<()> {
    let (up_tx, mut up_rx) = mpsc::unbounded_channel::<Update>();
    let (ws_tx, ws_rx) = mpsc::unbounded_channel::<ClientEvent>();
    tokio::spawn(socket_task(client.clone(), ws_rx, up_tx.clone()));
    // crossterm's reader lives on its own thread, for the life of the process. It polls, so
    // it can be paused while an external editor owns the terminal.
    let keys = up_tx.clone();
    let reader = Reader::default();
    let this = reader.clone();
    std::thread::spawn(move || loop {
        if this.paused.load(Ordering::Acquire) {
            this.idle.store(true, Ordering::Release);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        this.idle.store(false, Ordering::Release);
        match crossterm::event::poll(Duration::from_millis(50)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let update = match crossterm::event::read() {
            Ok(Event::Key(k)) => Update::Key(k),
            Ok(Event::Mouse(m)) => Update::Mouse(m),
            Ok(Event::Resize(..)) => Update::Resize,
            // A paste arrives whole (bracketed paste), not as one key event per character.
            Ok(Event::Paste(text)) => Update::Paste(text),
            // Terminals that report focus: no read receipts while it is elsewhere.
            Ok(Event::FocusGained) => Update::Focus(true),
            Ok(Event::FocusLost) => Update::Focus(false),
            Err(_) => return,
        };
        if keys.send(update).is_err() {
            return;
        }
    });

    let mut term = enter()?;
    let mut app = App::new();
    app.theme = theme;
    app.keys = keymap;
    let exec = Exec {
        client,
        up: up_tx,
        ws: ws_tx,
        download_dir,
        notices,
    };
    let mut titled: Option<u64> = None;
    for a in app.start() {
        exec.run(a, &app);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result: anyhow::Result<()> = loop {
        if let Err(e) = term.draw(|f| ui::draw(f, &mut app)) {
            break Err(e.into());
        }
        if notices.title && titled != Some(app.unread_total) {
            titled = Some(app.unread_total);
            let _ = execute!(
                std::io::stdout(),
                crossterm::terminal::SetTitle(window_title(app.unread_total))
            );
        }
        let mut actions = tokio::select! {
            u = up_rx.recv() => match u {
                Some(u) => app.update(u, std::time::Instant::now()),
                None => break Ok(()),
            },
            _ = tick.tick() => app.tick(std::time::Instant::now()),
        };
        // Everything else already waiting is applied before the next draw: a burst of
        // keys or events costs one frame, not one frame each.
        for _ in 0..MAX_UPDATES_PER_FRAME {
            match up_rx.try_recv() {
                Ok(u) => actions.extend(app.update(u, std::time::Instant::now())),
                Err(_) => break,
            }
        }
        for a in actions {
            match a {
                Action::Edit(text) => {
                    let edited = tokio::task::block_in_place(|| edit(&mut term, &reader, &text));
                    for a in app.update(Update::Edited(edited), std::time::Instant::now()) {
                        exec.run(a, &app);
                    }
                }
                a => exec.run(a, &app),
            }
        }
        if app.quit {
            break Ok(());
        }
    };
    leave();
    term.show_cursor()?;
    result
}

/// The key reader's pause switch: `paused` asks it to stop reading the terminal, `idle`
/// says it has.
#[derive(Clone, Default)]
struct Reader {
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
}

/// The editor to run: `$VISUAL`, else `$EDITOR`, else `vi`; with its own arguments
/// (`code -w`).
fn editor_command(visual: Option<String>, editor: Option<String>) -> Vec<String> {
    let chosen = visual
        .filter(|v| !v.trim().is_empty())
        .or(editor.filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    chosen.split_whitespace().map(str::to_string).collect()
}

/// Hand the terminal to an editor on `text` and take back what was saved (Alt-E).
fn edit(term: &mut Term, reader: &Reader, text: &str) -> Result<String, String> {
    reader.paused.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while !reader.idle.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let path = std::env::temp_dir().join(format!("chat-tui-{}.txt", uuid::Uuid::new_v4()));
    let result = (|| {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        let cmd = editor_command(std::env::var("VISUAL").ok(), std::env::var("EDITOR").ok());
        leave();
        let status = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .arg(&path)
            .status();
        let entered = resume(term);
        let status = status.map_err(|e| format!("{}: {e}", cmd[0]))?;
        entered.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{} exited with {status}; nothing changed", cmd[0]));
        }
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    })();
    let _ = std::fs::remove_file(&path);
    reader.paused.store(false, Ordering::Release);
    result
}

/// Take the terminal back after an external program had it.
fn resume(term: &mut Term) -> anyhow::Result<()> {
    take_terminal()?;
    term.clear()?;
    Ok(())
}

/// Carries out [`Action`]s; results come back as [`Update`]s.
struct Exec {
    client: Client,
    up: mpsc::UnboundedSender<Update>,
    ws: mpsc::UnboundedSender<ClientEvent>,
    download_dir: PathBuf,
    notices: Notices,
}

impl Exec {
    fn run(&self, action: Action, app: &App) {
        let c = self.client.clone();
        let up = self.up.clone();
        // Each REST call is its own task; its error becomes the status line.
        macro_rules! spawn {
            ($body:expr) => {{
                tokio::spawn(async move {
                    let r: Result<Update, String> = async { $body }.await;
                    let _ = up.send(r.unwrap_or_else(Update::Error));
                });
            }};
        }
        let e = |e: chat_client::ClientError| e.to_string();
        match action {
            Action::Ws(ev) => {
                if app.conn == crate::app::Conn::Online {
                    let _ = self.ws.send(ev);
                }
            }
            Action::Quit => {}
            // Run by the main loop, which owns the terminal.
            Action::Edit(_) => {}
            Action::Copy(text) => {
                use base64::Engine;
                use std::io::Write;
                // OSC 52: the terminal puts it on the system clipboard (over ssh too).
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                let mut out = std::io::stdout();
                let _ = write!(out, "\x1b]52;c;{b64}\x07");
                let _ = out.flush();
            }
            Action::Notify { title, body } => {
                use std::io::Write;
                let bytes = notice_bytes(self.notices, &title, &body);
                if !bytes.is_empty() {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(bytes.as_bytes());
                    let _ = out.flush();
                }
            }
            Action::LoadConversations => spawn!({
                let mut all = Vec::new();
                let mut q = PageQuery::limit(100);
                loop {
                    let page = c.conversations(&q).await.map_err(e)?;
                    all.extend(page.data);
                    match page.next_cursor.filter(|_| page.has_more) {
                        Some(next) if all.len() < 1000 => q = PageQuery::before(next, 100),
                        _ => break,
                    }
                }
                Ok(Update::Conversations(all))
            }),
            Action::LoadUnread => spawn!(Ok(Update::Unread(c.unread_count().await.map_err(e)?))),
            Action::LoadHistory {
                conv,
                before,
                after,
            } => spawn!({
                let older = after.is_none();
                let q = PageQuery {
                    before,
                    after,
                    limit: Some(PAGE),
                };
                match c.messages(conv, &q).await {
                    Ok(page) => Ok(Update::History { conv, page, older }),
                    Err(err) => Ok(Update::HistoryFailed {
                        conv,
                        error: err.to_string(),
                    }),
                }
            }),
            Action::OpenWith(user) => {
                spawn!(Ok(Update::Opened(
                    c.conversation_with(&user).await.map_err(e)?
                )))
            }
            Action::SendMedia {
                conv,
                paths,
                caption,
                temp_id,
            } => spawn!({
                let result = async {
                    let mut files = Vec::new();
                    for p in &paths {
                        files.push(read_upload(p).await?);
                    }
                    c.send_media(conv, files, caption.as_deref(), Some(&temp_id))
                        .await
                        .map_err(e)
                }
                .await;
                Ok(Update::MediaSent { temp_id, result })
            }),
            Action::Block(u) => spawn!(Ok(Update::BlockChanged(c.block(&u).await.map_err(e)?))),
            Action::Unblock(u) => {
                spawn!(Ok(Update::BlockChanged(c.unblock(&u).await.map_err(e)?)))
            }
            Action::BlockStatus(username) => spawn!({
                let status = c.block_status(&username).await.map_err(e)?;
                Ok(Update::BlockStatus { username, status })
            }),
            Action::Blocked => spawn!({
                let page = c.blocks(&PageQuery::limit(100)).await.map_err(e)?;
                Ok(Update::Blocked(page.data))
            }),
            Action::Browse { conv, what } => spawn!({
                let q = PageQuery::limit(100);
                let (messages, links) = match what {
                    Browse::Media => (c.media(conv, &q).await.map_err(e)?.data, Vec::new()),
                    Browse::Files => (c.files(conv, &q).await.map_err(e)?.data, Vec::new()),
                    Browse::Links => (Vec::new(), c.links(conv, &q).await.map_err(e)?.data),
                };
                Ok(Update::Browsed {
                    what,
                    messages,
                    links,
                })
            }),
            Action::Search(q) => spawn!({
                let page = c.search(&q, None, None, 50).await.map_err(e)?;
                Ok(Update::Searched { q, hits: page.data })
            }),
            Action::Jump(id) => {
                spawn!(Ok(Update::Context(c.context(id, 20, 20).await.map_err(e)?)))
            }
            Action::Save { items, open } => {
                let dir = self.download_dir.clone();
                spawn!({
                    let mut saved = Vec::new();
                    for item in &items {
                        let bytes = c.download(&item.url).await.map_err(e)?;
                        let name = item
                            .name
                            .as_deref()
                            .and_then(|n| Path::new(n).file_name())
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "download".into());
                        let path = write_new(&dir, &name, &bytes)
                            .await
                            .map_err(|err| format!("{}: {err}", dir.join(&name).display()))?;
                        saved.push(path);
                    }
                    if let (true, Some(first)) = (open, saved.first()) {
                        std::process::Command::new("xdg-open")
                            .arg(first)
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .map_err(|err| format!("saved {}; xdg-open: {err}", first.display()))?;
                    }
                    let names: Vec<String> =
                        saved.iter().map(|p| p.display().to_string()).collect();
                    Ok(Update::Info(format!("saved {}", names.join(", "))))
                });
            }
        }
    }
}

async fn read_upload(path: &Path) -> Result<Upload, String> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Upload {
        name: path
            .file_name()
            .map_or_else(|| "upload".into(), |n| n.to_string_lossy().into_owned()),
        // The server decides the type from the bytes.
        content_type: "application/octet-stream".into(),
        bytes,
    })
}

/// Write `bytes` to a new file named `name` in `dir`, never over an existing one: if the
/// name is taken, `name (1).ext`, `name (2).ext`, … (created exclusively, so two saves at
/// once cannot pick the same name).
async fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use tokio::io::AsyncWriteExt;
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem} ({n}){ext}"))
        };
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
            .await
        {
            Ok(mut f) => {
                f.write_all(bytes).await?;
                f.flush().await?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "1,000 files of that name already",
    ))
}

#[cfg(test)]
mod tests {
    use super::socket::{backoff, final_refusal, refusal_is_final};
    use super::*;

    /// Issue 18 bug 13: saving never overwrites; the next free name is taken.
    #[tokio::test]
    async fn saving_never_overwrites_a_file() {
        let dir = std::env::temp_dir().join(format!("chat-tui-save-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = write_new(&dir, "photo.jpg", b"one").await.unwrap();
        let second = write_new(&dir, "photo.jpg", b"two").await.unwrap();
        let third = write_new(&dir, "README", b"three").await.unwrap();
        let fourth = write_new(&dir, "README", b"four").await.unwrap();
        assert_eq!(first, dir.join("photo.jpg"));
        assert_eq!(second, dir.join("photo (1).jpg"));
        assert_eq!(fourth, dir.join("README (1)"));
        assert_eq!(std::fs::read(&first).unwrap(), b"one", "not overwritten");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        assert_eq!(std::fs::read(&third).unwrap(), b"three");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_editor_is_visual_then_editor_then_vi() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(editor_command(s("code -w"), s("nano")), ["code", "-w"]);
        assert_eq!(editor_command(s(" "), s("nano")), ["nano"]);
        assert_eq!(editor_command(None, None), ["vi"]);
    }

    #[test]
    fn refusals_that_retrying_cannot_cure_stop_the_loop() {
        for s in [400, 401, 403, 404, 409] {
            assert!(refusal_is_final(s), "{s}");
        }
        for s in [408, 429, 500, 502, 503] {
            assert!(!refusal_is_final(s), "{s}");
        }
        let taken = final_refusal(409, "conflict: username alice is taken");
        assert!(taken.contains("chatctl token issue"), "{taken}");
        assert!(final_refusal(401, "invalid token").contains("valid token"));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps_at_30_s() {
        for attempt in 0..12 {
            let cap = Duration::from_millis(500)
                .saturating_mul(1u32 << attempt.min(6))
                .min(Duration::from_secs(30));
            for _ in 0..50 {
                let d = backoff(attempt);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {attempt}: {d:?} vs cap {cap:?}"
                );
            }
        }
        assert!(backoff(0) <= Duration::from_millis(500));
        assert!(backoff(20) <= Duration::from_secs(30));
        assert!(backoff(20) >= Duration::from_secs(15));
    }
}
