//! `chat-loadgen media`: upload one file many times as media messages and report
//! throughput, latency percentiles and the server's peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chat_protocol::UserId;
use clap::Args;
use tokio::sync::Semaphore;

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
    /// Uploads in flight at once.
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
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (sender, receiver) = (format!("media_{tag}_a"), format!("media_{tag}_b"));
    let (ta, tb) = (
        token(&args.jwt_secret, &sender)?,
        token(&args.jwt_secret, &receiver)?,
    );
    http.get(format!("{base}/chat/blocks"))
        .bearer_auth(&tb)
        .send()
        .await?
        .error_for_status()
        .context("provision the receiver")?;
    let conv: serde_json::Value = http
        .get(format!("{base}/chat/conversations/with/{receiver}"))
        .bearer_auth(&ta)
        .send()
        .await?
        .error_for_status()
        .context("open the conversation")?
        .json()
        .await?;
    let conv = conv["id"].as_str().context("conversation id")?.to_string();
    let url = format!("{base}/chat/conversations/{conv}/messages");

    let rss_before = args.server_pid.and_then(rss_kib);
    let sem = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..args.count {
        let permit = sem.clone().acquire_owned().await?;
        let (http, url, ta, file) = (http.clone(), url.clone(), ta.clone(), file.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let form = file.form(&format!("up-{i}"))?;
            let t = Instant::now();
            let r = http
                .post(url)
                .bearer_auth(ta)
                .multipart(form)
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            Ok::<_, anyhow::Error>((t.elapsed(), status, text))
        });
    }
    let mut hist = crate::report::histogram();
    let mut failed = 0u32;
    while let Some(done) = tasks.join_next().await {
        match done? {
            Ok((took, status, _)) if status.as_u16() == 201 => {
                hist.saturating_record(took.as_micros() as u64);
            }
            Ok((_, status, text)) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("upload refused: HTTP {status}: {text}");
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
