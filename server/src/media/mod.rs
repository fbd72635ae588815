//! Media messages: uploads are streamed to a spool file (never held in memory), typed from
//! their bytes, size-checked while they stream, cleaned and thumbnailed off the async
//! runtime, then put in the object store under random keys. Stored messages keep object
//! keys; every message that leaves the server carries freshly signed, expiring URLs.

pub mod detect;
pub mod process;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_protocol::rest::{MediaItem, Message, MessageType};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::model::StoredMessage;
use crate::slots::{Slot, Slots};
use chat_protocol::UserId;
use detect::{Detected, SNIFF_LEN};
use process::ProcessError;
use storage::{DynStorage, LocalStorage, StorageError};

/// Images per message, at most.
pub const MAX_IMAGES: usize = 10;
/// Uploads one user may have in progress at once, unless configured.
pub const DEFAULT_UPLOADS_PER_USER: usize = 1;

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "media storage failed");
        Error::Unavailable("media storage is unavailable; try again".into())
    }
}

impl From<ProcessError> for Error {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Invalid(m) => Error::UnsupportedMediaType(m),
            ProcessError::TooLarge(m) => Error::PayloadTooLarge(m),
            ProcessError::Io(e) => Error::Internal(format!("media processing: {e}")),
        }
    }
}

/// Largest multipart body: ten full-size images plus form overhead.
pub const MAX_BODY: usize = MAX_IMAGES * (detect::IMAGE_MAX as usize) + 1024 * 1024;

/// A spooled upload; the file is removed when this is dropped.
#[derive(Debug)]
pub struct SpoolFile {
    pub path: PathBuf,
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One received file, typed and size-checked.
#[derive(Debug)]
pub struct Upload {
    pub spool: SpoolFile,
    pub detected: Detected,
    pub size: u64,
    /// The client's file name, cleaned (display only; never used in a path).
    pub name: Option<String>,
}

/// Objects stored for one message, so a failed send can take them back.
#[derive(Debug, Default)]
pub struct Stored {
    pub items: Vec<MediaItem>,
    pub keys: Vec<String>,
}

/// The object store named by `CHAT_MEDIA_STORE`, and the local store when it is local.
pub fn open_storage(
    cfg: &crate::config::CommonConfig,
    signing_key: &[u8],
) -> Result<(DynStorage, Option<Arc<LocalStorage>>), StorageError> {
    let url = cfg.media_store.trim();
    if url == "local" || url.is_empty() {
        let local = Arc::new(LocalStorage::new(
            cfg.effective_media_dir().join("objects"),
            cfg.public_url.as_deref().unwrap_or(""),
            signing_key,
        )?);
        return Ok((local.clone(), Some(local)));
    }
    if url.starts_with("s3://") {
        return Ok((Arc::new(storage::S3Storage::from_url(url)?), None));
    }
    if url.starts_with("bunny://") {
        let bunny = storage::BunnyStorage::from_url(
            url,
            storage::BunnyConfig {
                endpoint: cfg.bunny_storage_endpoint.clone(),
                access_key: cfg.bunny_access_key.clone(),
                cdn_url: cfg.bunny_cdn_url.clone(),
                token_key: cfg.bunny_token_key.clone(),
            },
        )?;
        return Ok((Arc::new(bunny), None));
    }
    Err(StorageError::Config(format!(
        "CHAT_MEDIA_STORE={url:?}: expected local, s3://bucket/prefix or bunny://zone"
    )))
}

pub struct Media {
    storage: DynStorage,
    local: Option<Arc<LocalStorage>>,
    spool: PathBuf,
    url_ttl: Duration,
    workers: Arc<Semaphore>,
    /// Uploads each user may have in progress at once (`CHAT_UPLOADS_PER_USER`).
    uploads: Arc<Slots<UserId>>,
    images: process::ImageLimits,
}

impl Media {
    /// Media as configured: the object store, a spool under the media dir.
    pub fn from_config(
        cfg: &crate::config::CommonConfig,
        signing_key: &[u8],
    ) -> Result<Self, StorageError> {
        let (storage, local) = open_storage(cfg, signing_key)?;
        Ok(Media::new(
            storage,
            local,
            cfg.effective_media_dir().join("spool"),
            Duration::from_secs(cfg.media_url_ttl_secs.max(1)),
            cfg.media_workers,
        )?
        .with_uploads_per_user(cfg.caps.uploads_per_user)
        .with_image_limits(process::ImageLimits {
            max_side: cfg.image_max_side.max(1),
            pixels_per_message: cfg.image_megapixels_per_message.max(1) * 1_000_000,
        }))
    }

    pub fn with_image_limits(mut self, limits: process::ImageLimits) -> Self {
        self.images = limits;
        self
    }

    /// At most `n` uploads in progress per user (default 1: one user never holds more
    /// than one of the decode workers, so image work cannot starve anyone else).
    pub fn with_uploads_per_user(mut self, n: usize) -> Self {
        self.uploads = Slots::new(n.max(1));
        self
    }

    /// A place for one more upload of `user` (held until its send is done), or `None`
    /// when the user already has their share in progress.
    pub fn upload_slot(&self, user: UserId) -> Option<Slot<UserId>> {
        self.uploads.take(user)
    }

    /// `workers` bounds concurrent image decodes (each may use up to 512 MiB).
    pub fn new(
        storage: DynStorage,
        local: Option<Arc<LocalStorage>>,
        spool: PathBuf,
        url_ttl: Duration,
        workers: usize,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&spool)?;
        Ok(Media {
            storage,
            local,
            spool,
            url_ttl,
            workers: Arc::new(Semaphore::new(workers.max(1))),
            uploads: Slots::new(DEFAULT_UPLOADS_PER_USER),
            images: process::ImageLimits::default(),
        })
    }

    /// The local store, when media is served by chatd itself.
    pub fn local(&self) -> Option<&Arc<LocalStorage>> {
        self.local.as_ref()
    }

    pub fn storage(&self) -> &DynStorage {
        &self.storage
    }

    /// A fresh spool path (removed when the guard drops).
    fn new_spool(&self, suffix: &str) -> SpoolFile {
        SpoolFile {
            path: self
                .spool
                .join(format!("{}.{suffix}", uuid::Uuid::new_v4().simple())),
        }
    }

    /// `bytes` written to a fresh spool file.
    async fn spool_bytes(&self, suffix: &str, bytes: &[u8]) -> Result<SpoolFile, Error> {
        let spool = self.new_spool(suffix);
        tokio::fs::write(&spool.path, bytes)
            .await
            .map_err(|e| Error::Internal(format!("spool: {e}")))?;
        Ok(spool)
    }

    /// Stream one uploaded file (its client-side name and its body's chunks) to a spool
    /// file, typing it from its first bytes and refusing it (413) the moment it passes its
    /// type's limit.
    pub async fn receive(
        &self,
        file_name: Option<&str>,
        chunks: impl Stream<Item = Result<Bytes, Error>>,
    ) -> Result<Upload, Error> {
        let name = file_name.and_then(clean_name);
        let mut chunks = std::pin::pin!(chunks);
        let spool = self.new_spool("up");
        let mut file = tokio::fs::File::create(&spool.path)
            .await
            .map_err(|e| Error::Internal(format!("spool: {e}")))?;
        let io = |e: std::io::Error| Error::Internal(format!("spool: {e}"));
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_LEN);
        let mut detected: Option<Detected> = None;
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await.transpose()? {
            size += chunk.len() as u64;
            match detected {
                Some(d) => {
                    check_size(d, size)?;
                    file.write_all(&chunk).await.map_err(io)?;
                }
                None => {
                    head.extend_from_slice(&chunk);
                    if head.len() >= SNIFF_LEN {
                        let d = detect::detect(&head[..SNIFF_LEN])
                            .map_err(Error::UnsupportedMediaType)?;
                        check_size(d, size)?;
                        file.write_all(&head).await.map_err(io)?;
                        head = Vec::new();
                        detected = Some(d);
                    }
                }
            }
        }
        let detected = match detected {
            Some(d) => d,
            None => {
                let d = detect::detect(&head).map_err(Error::UnsupportedMediaType)?;
                check_size(d, size)?;
                file.write_all(&head).await.map_err(io)?;
                d
            }
        };
        file.flush().await.map_err(io)?;
        Ok(Upload {
            spool,
            detected,
            size,
            name,
        })
    }

    /// Process and store every upload of one message. On any failure, whatever was
    /// already stored is deleted again.
    pub async fn store_all(&self, uploads: Vec<Upload>) -> Result<Stored, Error> {
        self.check_pixel_budget(&uploads).await?;
        let mut stored = Stored::default();
        for upload in uploads {
            if let Err(e) = self.store_one(upload, &mut stored).await {
                self.discard(&stored.keys).await;
                return Err(e);
            }
        }
        Ok(stored)
    }

    /// From the headers alone, before anything is decoded: the message's images together
    /// stay within the per-message pixel budget.
    async fn check_pixel_budget(&self, uploads: &[Upload]) -> Result<(), Error> {
        let images: Vec<(PathBuf, &'static str)> = uploads
            .iter()
            .filter(|u| u.detected.kind == MessageType::Image)
            .map(|u| (u.spool.path.clone(), u.detected.mime))
            .collect();
        if images.is_empty() {
            return Ok(());
        }
        let limits = self.images;
        let total = tokio::task::spawn_blocking(move || {
            images.iter().try_fold(0u64, |sum, (path, mime)| {
                Ok::<_, ProcessError>(sum + process::pixels(path, mime, &limits)?)
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("image worker: {e}")))??;
        if total > self.images.pixels_per_message {
            crate::metrics::METRICS.refused("image_pixels");
            return Err(Error::PayloadTooLarge(format!(
                "the images of one message may decode to at most {} megapixels together; these would be {}",
                self.images.pixels_per_message / 1_000_000,
                total / 1_000_000
            )));
        }
        Ok(())
    }

    async fn store_one(&self, upload: Upload, stored: &mut Stored) -> Result<(), Error> {
        let d = upload.detected;
        let key = storage::new_key(d.ext);
        let mut item = MediaItem {
            kind: d.kind,
            url: key.clone(),
            thumbnail_url: None,
            mime: d.mime.to_string(),
            size: upload.size,
            width: None,
            height: None,
            duration_ms: None,
            name: upload.name.clone(),
        };
        let mut thumbnail: Option<(Vec<u8>, &'static str)> = None;
        let mut body_path = upload.spool.path.clone();
        let mut cleaned_spool = None;
        match d.kind {
            MessageType::Image => {
                let _permit = self
                    .workers
                    .acquire()
                    .await
                    .map_err(|_| Error::Unavailable("server is shutting down".into()))?;
                let (path, mime, limits) = (upload.spool.path.clone(), d.mime, self.images);
                let img = tokio::task::spawn_blocking(move || process::image(&path, mime, &limits))
                    .await
                    .map_err(|e| Error::Internal(format!("image worker: {e}")))??;
                item.width = Some(img.width);
                item.height = Some(img.height);
                if let Some(bytes) = img.cleaned {
                    let spool = self.spool_bytes("clean", &bytes).await?;
                    item.size = bytes.len() as u64;
                    body_path = spool.path.clone();
                    cleaned_spool = Some(spool);
                }
                thumbnail = Some((img.thumbnail, img.thumbnail_ext));
            }
            MessageType::Video => {
                let (path, mime) = (upload.spool.path.clone(), d.mime);
                let info = tokio::task::spawn_blocking(move || process::video_info(&path, mime))
                    .await
                    .unwrap_or_default();
                item.width = info.width;
                item.height = info.height;
                item.duration_ms = info.duration_ms;
                thumbnail = process::video_thumbnail(&upload.spool.path)
                    .await
                    .map(|b| (b, "jpg"));
            }
            _ => {}
        }
        self.storage.put(&key, &body_path, d.mime).await?;
        stored.keys.push(key.clone());
        if let Some((bytes, ext)) = thumbnail {
            let tkey = storage::thumbnail_key(&key, ext);
            let spool = self.spool_bytes("thumb", &bytes).await?;
            let mime = if ext == "png" {
                "image/png"
            } else {
                "image/jpeg"
            };
            self.storage.put(&tkey, &spool.path, mime).await?;
            stored.keys.push(tkey.clone());
            item.thumbnail_url = Some(tkey);
        }
        drop(cleaned_spool);
        stored.items.push(item);
        Ok(())
    }

    /// Delete objects (best effort: a failure is logged, and `chatctl purge media
    /// --orphaned` finds what is left).
    pub async fn discard(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.storage.delete(k).await {
                tracing::warn!(key = %k, error = %e, "could not delete a media object");
            }
        }
    }

    /// The message as a client sees it: the object keys of its media replaced by signed,
    /// expiring URLs.
    pub async fn present(&self, m: StoredMessage) -> Message {
        let mut m = m.into_keyed();
        for item in &mut m.media {
            item.url = self.sign(&item.url).await;
            if let Some(t) = item.thumbnail_url.take() {
                item.thumbnail_url = Some(self.sign(&t).await);
            }
        }
        m
    }

    async fn sign(&self, key: &str) -> String {
        if !storage::is_valid_key(key) {
            return key.to_string();
        }
        match self.storage.url(key, self.url_ttl).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "could not sign a media URL");
                String::new()
            }
        }
    }
}

fn check_size(d: Detected, size: u64) -> Result<(), Error> {
    if size > d.max_size() {
        return Err(Error::PayloadTooLarge(format!(
            "{} files may be at most {} MB",
            d.mime,
            d.max_size() / (1024 * 1024)
        )));
    }
    Ok(())
}

/// A display name from the client's file name: the last path component, control
/// characters removed, at most 255 characters; `None` when nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    // Control characters and bidirectional controls go (a right-to-left override only
    // serves to disguise an extension), and so do other invisible characters.
    let cleaned: String = last
        .chars()
        .filter(|&c| !c.is_control() && !crate::model::is_invisible(c))
        .take(255)
        .collect();
    let cleaned = cleaned.trim().to_string();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(
            clean_name("C:\\Users\\a\\report.pdf").as_deref(),
            Some("report.pdf")
        );
        assert_eq!(clean_name("a\u{0}b\nc.txt").as_deref(), Some("abc.txt"));
        assert_eq!(clean_name(".."), None);
        // A right-to-left override cannot disguise the extension (issue 16).
        assert_eq!(
            clean_name("invoice\u{202E}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
        assert_eq!(
            clean_name("\u{200B}\u{2066}a.pdf").as_deref(),
            Some("a.pdf")
        );
        assert_eq!(clean_name("\u{FEFF}"), None);
        assert_eq!(clean_name("   "), None);
    }
}
