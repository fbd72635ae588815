//! `chat-loadgen media`: upload one file many times as media messages and report
//! throughput, latency percentiles and the server's peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chat_client::PageQuery;
use chat_protocol::UserId;
use clap::Args;

use crate::memory::{proc_status_kib, rss_kib};

#[derive(Debug, Args)]
pub struct MediaArgs {
    /// chatd base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The server's HS256 secret, to mint the two users' tokens.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// The file to upload (its extension picks the declared type).
    #[arg(long)]
    file: String,
    /// How many uploads.
    #[arg(long, default_value_t = 50)]
    count: u32,
    /// Uploads in flight at once, each from its own sender (chatd takes one upload at a
    /// time from each user).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// chatd's process id: report its RSS before and its peak RSS (VmHWM) after.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn mime_of(path: &str) -> &'static str {
    match path
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("mp4") => "video/mp4",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn token(secret: &str, name: &str) -> Result<String> {
    chat_client::mint_token_for(secret, UserId::new(), name, 24 * 3600).map_err(anyhow::Error::msg)
}

/// A file read once and sent as the `file` part of many media messages.
pub struct UploadFile {
    name: String,
    mime: &'static str,
    body: bytes::Bytes,
}

impl UploadFile {
    pub async fn read(path: &str) -> Result<Self> {
        let body = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {path}"))?;
        Ok(UploadFile {
            name: std::path::Path::new(path)
                .file_name()
                .map_or("upload".into(), |n| n.to_string_lossy().into_owned()),
            mime: mime_of(path),
            body: body.into(),
        })
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// A multipart form holding the file (the bytes are shared, not copied).
    pub fn form(&self, temp_id: &str) -> Result<reqwest::multipart::Form> {
        let part =
            reqwest::multipart::Part::stream_with_length(self.body.clone(), self.len() as u64)
                .file_name(self.name.clone())
                .mime_str(self.mime)?;
        Ok(reqwest::multipart::Form::new()
            .text("temp_id", temp_id.to_string())
            .part("file", part))
    }
}

/// Returns whether every upload was accepted.
pub async fn media(args: MediaArgs) -> Result<bool> {
    let file = Arc::new(UploadFile::read(&args.file).await?);
    let size = file.len();
    let base = args.server.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    // One sender per upload in flight: chatd takes one upload at a time from each user
    // (`CHAT_MEDIA_UPLOADS_PER_USER`), so parallel uploads come from parallel users, all
    // to one receiver.
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let receiver = format!("media_{tag}_r");
    let bob =
        chat_client::Client::with_http(http.clone(), &base, &token(&args.jwt_secret, &receiver)?);
    bob.blocks(&PageQuery::limit(1))
        .await
        .context("provision the receiver")?;
    let workers = args.concurrency.max(1);
    let mut senders = Vec::with_capacity(workers);
    for w in 0..workers {
        let name = format!("media_{tag}_s{w}");
        let api =
            chat_client::Client::with_http(http.clone(), &base, &token(&args.jwt_secret, &name)?);
        let conv = api
            .conversation_with(&receiver)
            .await
            .context("open a conversation")?
            .id;
        senders.push((api, conv));
    }

    let rss_before = args.server_pid.and_then(rss_kib);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (w, (api, conv)) in senders.into_iter().enumerate() {
        let (file, count) = (file.clone(), args.count as usize);
        tasks.spawn(async move {
            let mut results = Vec::new();
            for i in (w..count).step_by(workers) {
                let form = match file.form(&format!("up-{i}")) {
                    Ok(form) => form,
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                };
                let t = Instant::now();
                let sent = api.send_form(conv, form).await;
                results.push(Ok((t.elapsed(), sent)));
            }
            results
        });
    }
    let mut hist = crate::report::histogram();
    let mut failed = 0u32;
    let results: Vec<Result<_>> = tasks.join_all().await.into_iter().flatten().collect();
    for result in results {
        match result {
            Ok((took, Ok(_))) => {
                hist.saturating_record(took.as_micros() as u64);
            }
            Ok((_, Err(e))) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("upload refused: {e}");
                }
            }
            Err(e) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("upload failed: {e:#}");
                }
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let ok = hist.len();
    if ok == 0 {
        bail!("no upload succeeded");
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} x {:.2} MB ({}), {} in flight: {ok} accepted, {failed} failed in {wall:.1} s",
        args.count,
        size as f64 / 1e6,
        mime_of(&args.file),
        args.concurrency
    );
    println!(
        "throughput {:.1} uploads/s, {:.1} MB/s",
        ok as f64 / wall,
        ok as f64 * size as f64 / 1e6 / wall
    );
    println!(
        "latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    if let Some(pid) = args.server_pid {
        println!(
            "server RSS before {} KiB, peak (VmHWM) after {} KiB",
            rss_before.unwrap_or(0),
            proc_status_kib(pid, "VmHWM:").unwrap_or(0)
        );
    }
    Ok(failed == 0)
}
