//! REST readers of a run: the weighted call mix, and the open-loop loop that makes the calls.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_client::{ClientError, PageQuery};
use chat_protocol::rest::DeleteScope;
use rand::Rng;
use tokio::sync::Semaphore;

use crate::media::UploadFile;
use crate::pacer::pacer;
use crate::report;
use crate::setup::User;
use crate::shared::{elapsed_us, Shared};

/// The REST calls a reader makes, with their relative weights.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RestMix(Vec<(RestOp, u32)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestOp {
    Conversations,
    Messages,
    MarkRead,
    BlockStatus,
    /// Edit the caller's newest acknowledged message (`PATCH /chat/messages/:id`).
    Edit,
    /// React to the partner's newest acknowledged message (`PUT …/reactions/:emoji`).
    React,
    /// Delete the caller's newest acknowledged message for everyone.
    Delete,
    /// Search the caller's messages for one message's words (`GET /chat/search`).
    Search,
    /// Only through --media-rate, never in --rest-mix.
    MediaUpload,
}

impl RestOp {
    fn metric(self) -> &'static str {
        match self {
            RestOp::MediaUpload => "media_upload",
            RestOp::Conversations => "rest_conversations",
            RestOp::Messages => "rest_messages",
            RestOp::MarkRead => "rest_mark_read",
            RestOp::BlockStatus => "rest_block_status",
            RestOp::Edit => "rest_edit",
            RestOp::React => "rest_react",
            RestOp::Delete => "rest_delete",
            RestOp::Search => "rest_search",
        }
    }

    /// Calls that act on a message sent earlier in the run.
    fn needs_recent(self) -> bool {
        matches!(self, RestOp::Edit | RestOp::React | RestOp::Delete)
    }
}

/// Reactions the `react` calls choose from.
const EMOJI: [&str; 6] = ["👍", "❤️", "😂", "🎉", "🔥", "👀"];

/// `--rest-mix`: `NAME=WEIGHT,...`; calls of weight 0 are left out.
pub(crate) fn parse_mix(s: &str) -> Result<RestMix, String> {
    let mut mix = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected NAME=WEIGHT"))?;
        let op = match name.trim() {
            "conversations" => RestOp::Conversations,
            "messages" => RestOp::Messages,
            "mark_read" => RestOp::MarkRead,
            "block_status" => RestOp::BlockStatus,
            "edit" => RestOp::Edit,
            "react" => RestOp::React,
            "delete" => RestOp::Delete,
            "search" => RestOp::Search,
            other => {
                return Err(format!(
                    "unknown REST call {other:?}: one of conversations, messages, mark_read, \
                     block_status, edit, react, delete, search"
                ))
            }
        };
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
        if w > 0 {
            mix.push((op, w));
        }
    }
    if mix.is_empty() {
        return Err("the REST mix needs at least one call with a positive weight".into());
    }
    Ok(RestMix(mix))
}

impl RestMix {
    /// Whether some call acts on messages sent earlier (so acks must be remembered).
    pub(crate) fn needs_recent(&self) -> bool {
        self.0.iter().any(|(op, _)| op.needs_recent())
    }

    /// A mix of `op` alone.
    pub(crate) fn only(op: RestOp) -> Self {
        RestMix(vec![(op, 1)])
    }

    fn pick(&self, rng: &mut impl Rng) -> RestOp {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut x = rng.gen_range(0..total);
        for (op, w) in &self.0 {
            if x < *w {
                return *op;
            }
            x -= w;
        }
        self.0[0].0
    }
}

/// Who the REST readers call as, where, and when.
#[derive(Clone)]
pub(crate) struct Readers {
    pub(crate) http: reqwest::Client,
    /// Base URL of each server.
    pub(crate) servers: Vec<String>,
    pub(crate) users: Arc<Vec<User>>,
    /// The users calls are made as (paired and connected).
    pub(crate) active: Vec<usize>,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) shared: Arc<Shared>,
}

/// Open-loop REST readers: call `i` is due at `start + i / rate`.
pub(crate) async fn rest_loop(
    readers: Readers,
    mix: RestMix,
    rate: f64,
    upload: Option<Arc<UploadFile>>,
) {
    let Readers {
        http,
        servers,
        users,
        active,
        start,
        end,
        shared,
    } = readers;
    let period = Duration::from_secs_f64(1.0 / rate);
    let inflight = Arc::new(Semaphore::new(4096));
    let mut tasks = tokio::task::JoinSet::new();
    let calls = ((end - start).as_secs_f64() * rate).ceil() as u64;
    // REST lateness is not judged: an ordinary thread does.
    let mut ticks = pacer(start, period, calls, false);
    while let Some(i) = ticks.recv().await {
        let due = start + period.mul_f64(i as f64);
        if due >= end {
            break;
        }
        let (op, ui) = {
            let mut rng = rand::thread_rng();
            (mix.pick(&mut rng), active[rng.gen_range(0..active.len())])
        };
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            shared.error("rest: 4096 calls in flight, call skipped");
            continue;
        };
        let (http, shared, users) = (http.clone(), shared.clone(), users.clone());
        let base = servers[users[ui].server].clone();
        let upload = upload.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let u = &users[ui];
            let (conv, partner) = u.pair.expect("active users are paired");
            let api = chat_client::Client::with_http(http, &base, &u.token);
            let outcome = match op {
                RestOp::Conversations => api.conversations(&PageQuery::limit(20)).await.map(drop),
                RestOp::Messages => api.messages(conv, &PageQuery::limit(50)).await.map(drop),
                RestOp::MarkRead => api.mark_read(conv, None).await.map(drop),
                RestOp::BlockStatus => api.block_status(&users[partner].username).await.map(drop),
                RestOp::Edit | RestOp::Delete | RestOp::React => {
                    let owner = if op == RestOp::React {
                        users[partner].id
                    } else {
                        u.id
                    };
                    let Some(id) = shared.recent_of(owner) else {
                        // Nothing acknowledged yet for this user: no call, not an error.
                        return;
                    };
                    match op {
                        RestOp::Edit => api
                            .edit_message(id, &format!("load edit {i}"))
                            .await
                            .map(drop),
                        RestOp::Delete => {
                            shared.forget(owner, id);
                            api.delete_message(id, DeleteScope::Everyone)
                                .await
                                .map(drop)
                        }
                        _ => api
                            .react(id, EMOJI[i as usize % EMOJI.len()], true)
                            .await
                            .map(drop),
                    }
                }
                RestOp::Search => {
                    let k =
                        rand::thread_rng().gen_range(0..=shared.max_acked.load(Ordering::Relaxed));
                    api.search(&format!("load {k}"), None, None, 20)
                        .await
                        .map(drop)
                }
                RestOp::MediaUpload => {
                    let form = match upload.as_deref().map(|f| f.form(&format!("md-{i}"))) {
                        Some(Ok(form)) => form,
                        _ => {
                            shared.error("media_upload: no usable --media-file");
                            return;
                        }
                    };
                    api.send_form(conv, form).await.map(drop)
                }
            };
            shared.rest_done.fetch_add(1, Ordering::Relaxed);
            // Two calls on one message can cross (an edit after its delete): the server's
            // 409 is the right answer there, timed like any other.
            let outcome = match outcome {
                Err(ClientError::Api { status: 409, .. }) if op.needs_recent() => Ok(()),
                other => other,
            };
            match outcome {
                Ok(()) => {
                    let mut h = shared.hists.lock().expect("hists lock");
                    h.rest
                        .entry(op.metric())
                        .or_insert_with(report::histogram)
                        .saturating_record(elapsed_us(due));
                }
                Err(e) => shared.error(format!("{}: {}", op.metric(), failure(&e))),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// What went wrong with one call, short enough to count by kind in the summary.
fn failure(e: &ClientError) -> String {
    match e {
        ClientError::Api { status, .. } => format!("HTTP {status}"),
        ClientError::Transport(t) if t.is_timeout() => "timeout".into(),
        ClientError::Transport(_) => "transport error".into(),
        ClientError::Decode(_) => "body unreadable".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_mix_parses_and_picks_by_weight() {
        let mix = parse_mix("conversations=1,messages=0,block_status=3").unwrap();
        assert_eq!(
            mix,
            RestMix(vec![(RestOp::Conversations, 1), (RestOp::BlockStatus, 3)])
        );
        let mut rng = rand::thread_rng();
        let picks: Vec<RestOp> = (0..2000).map(|_| mix.pick(&mut rng)).collect();
        let status = picks.iter().filter(|o| **o == RestOp::BlockStatus).count();
        assert!((1300..1700).contains(&status), "{status} of 2000");
        assert!(parse_mix("bogus=1").is_err());
        let lifecycle = parse_mix("messages=90,edit=4,react=4,delete=1,search=1").unwrap();
        assert!(lifecycle.needs_recent());
        assert!(!parse_mix("search=1,messages=1").unwrap().needs_recent());
        assert!(parse_mix("messages=0").is_err());
    }
}
