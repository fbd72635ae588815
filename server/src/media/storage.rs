//! Where media objects live: local disk (served by chatd with HMAC-signed URLs), any
//! S3-compatible store (presigned URLs) or Bunny Storage (token-authenticated CDN URLs).
//! Keys are random (see [`new_key`]); nothing a user sends ends up in a path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("media storage configuration: {0}")]
    Config(String),
    #[error("media storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("media storage backend: {0}")]
    Backend(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// One object store. `put` takes a finished local file so uploads never sit in memory.
#[async_trait]
pub trait ObjectStorage: Send + Sync {
    async fn put(&self, key: &str, file: &Path, mime: &str) -> StorageResult<()>;
    async fn delete(&self, key: &str) -> StorageResult<()>;
    /// A URL that serves `key` for `ttl`, then stops working.
    async fn url(&self, key: &str, ttl: Duration) -> StorageResult<String>;
    /// Every object this store holds under its prefix (for orphan scans).
    async fn list(&self) -> StorageResult<Vec<ObjectInfo>>;
    /// `local`, `s3` or `bunny`.
    fn kind(&self) -> &'static str;
}

/// One stored object, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

pub type DynStorage = Arc<dyn ObjectStorage>;

/// A fresh random key: 32 hex characters and the extension of the detected type.
pub fn new_key(ext: &str) -> String {
    format!("{}.{ext}", uuid::Uuid::new_v4().simple())
}

/// Keys chatd generated, and nothing else (this is what makes traversal impossible on the
/// local file server): `[0-9a-f]{32}(_t)?.[a-z0-9]{2,4}`.
pub fn is_valid_key(key: &str) -> bool {
    let Some((stem, ext)) = key.split_once('.') else {
        return false;
    };
    let stem = stem.strip_suffix("_t").unwrap_or(stem);
    stem.len() == 32
        && stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (2..=4).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The thumbnail key belonging to an object key.
pub fn thumbnail_key(key: &str, ext: &str) -> String {
    let stem = key.split_once('.').map_or(key, |(s, _)| s);
    format!("{stem}_t.{ext}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---- local disk ------------------------------------------------------------------------

/// Objects under `<dir>/<first two characters>/<key>`, served by chatd at
/// `/media/<key>?exp=<unix>&sig=<HMAC-SHA256(key "\n" exp)>`.
pub struct LocalStorage {
    dir: PathBuf,
    public_base: String,
    key: Vec<u8>,
}

impl LocalStorage {
    pub fn new(dir: PathBuf, public_base: &str, signing_key: &[u8]) -> StorageResult<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(LocalStorage {
            dir,
            public_base: public_base.trim_end_matches('/').to_string(),
            key: signing_key.to_vec(),
        })
    }

    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        is_valid_key(key).then(|| self.dir.join(&key[..2]).join(key))
    }

    fn mac(&self, key: &str, exp: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(exp.to_string().as_bytes());
        mac
    }

    pub fn sign(&self, key: &str, exp: u64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(key, exp).finalize().into_bytes())
    }

    /// Whether `sig` is this server's signature of (key, exp) and `exp` is still ahead.
    pub fn verify(&self, key: &str, exp: u64, sig: &str) -> Result<(), &'static str> {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(sig) else {
            return Err("invalid signature");
        };
        self.mac(key, exp)
            .verify_slice(&raw)
            .map_err(|_| "invalid signature")?;
        if exp < unix_now() {
            return Err("this link has expired");
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStorage for LocalStorage {
    async fn put(&self, key: &str, file: &Path, _mime: &str) -> StorageResult<()> {
        let dest = self
            .path_of(key)
            .ok_or_else(|| StorageError::Backend(format!("refusing key {key:?}")))?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Same filesystem (uploads are spooled under the media dir): a rename is atomic.
        if tokio::fs::rename(file, &dest).await.is_err() {
            let part = dest.with_extension("part");
            tokio::fs::copy(file, &part).await?;
            tokio::fs::rename(&part, &dest).await?;
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        if let Some(p) = self.path_of(key) {
            match tokio::fs::remove_file(p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn url(&self, key: &str, ttl: Duration) -> StorageResult<String> {
        let exp = unix_now() + ttl.as_secs();
        Ok(format!(
            "{}/media/{key}?exp={exp}&sig={}",
            self.public_base,
            self.sign(key, exp)
        ))
    }

    async fn list(&self) -> StorageResult<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut shards = tokio::fs::read_dir(&self.dir).await?;
        while let Some(shard) = shards.next_entry().await? {
            if !shard.file_type().await?.is_dir() {
                continue;
            }
            let mut files = tokio::fs::read_dir(shard.path()).await?;
            while let Some(f) = files.next_entry().await? {
                let name = f.file_name().to_string_lossy().into_owned();
                // Only keys chatd makes; half-copied `.part` files are not objects.
                if !is_valid_key(&name) {
                    continue;
                }
                let meta = f.metadata().await?;
                out.push(ObjectInfo {
                    key: name,
                    size: meta.len(),
                    modified: meta.modified().ok().map(chrono::DateTime::from),
                });
            }
        }
        Ok(out)
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

// ---- S3-compatible ---------------------------------------------------------------------

/// An S3 bucket (AWS, MinIO, R2, Ceph, …) through the `object_store` crate. Credentials,
/// region and endpoint come from the usual `AWS_*` variables.
pub struct S3Storage {
    store: object_store::aws::AmazonS3,
    prefix: String,
}

impl S3Storage {
    /// `s3://bucket/optional/prefix`.
    pub fn from_url(url: &str) -> StorageResult<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StorageError::Config(format!("{url:?} is not s3://bucket/prefix")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::Config(format!("{url:?} names no bucket")));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        // Common spellings of the endpoint for S3-compatible stores.
        if let Ok(ep) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder.with_endpoint(ep);
        }
        if std::env::var("AWS_ENDPOINT")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .is_ok_and(|e| e.starts_with("http://"))
        {
            builder = builder.with_allow_http(true);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(e.to_string()))?;
        Ok(S3Storage {
            store,
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    fn path(&self, key: &str) -> object_store::path::Path {
        if self.prefix.is_empty() {
            object_store::path::Path::from(key)
        } else {
            object_store::path::Path::from(format!("{}/{key}", self.prefix))
        }
    }
}

#[async_trait]
impl ObjectStorage for S3Storage {
    async fn put(&self, key: &str, file: &Path, mime: &str) -> StorageResult<()> {
        use object_store::{
            Attribute, Attributes, ObjectStore, PutMultipartOptions, WriteMultipart,
        };
        use tokio::io::AsyncReadExt;
        let backend = |e: object_store::Error| StorageError::Backend(e.to_string());
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, mime.to_string().into());
        attributes.insert(Attribute::ContentDisposition, "attachment".into());
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&self.path(key), opts)
            .await
            .map_err(backend)?;
        // 5 MiB parts (the S3 minimum), at most 2 in flight: bounded memory for any size.
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
        let mut f = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await.map_err(backend)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        use object_store::ObjectStore;
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::Backend(e.to_string())),
        }
    }

    async fn url(&self, key: &str, ttl: Duration) -> StorageResult<String> {
        use object_store::signer::Signer;
        let url = self
            .store
            .signed_url(axum::http::Method::GET, &self.path(key), ttl)
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(url.to_string())
    }

    async fn list(&self) -> StorageResult<Vec<ObjectInfo>> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let prefix =
            (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()));
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.filename()?.to_string();
                Some(ObjectInfo {
                    key,
                    size: m.size,
                    modified: Some(m.last_modified),
                })
            })
            .collect())
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}

// ---- Bunny Storage ---------------------------------------------------------------------

/// A Bunny Storage zone: objects are PUT/DELETEd through the storage API with the zone's
/// `AccessKey`; reads go through the pull zone (`CHAT_BUNNY_CDN_URL`) with Bunny's URL
/// token authentication (`token = base64url(sha256(token_key + path + expires))`).
pub struct BunnyStorage {
    http: reqwest::Client,
    api: String,
    zone: String,
    access_key: String,
    cdn_url: String,
    token_key: String,
}

#[derive(Debug, Clone)]
pub struct BunnyConfig {
    pub endpoint: String,
    pub access_key: String,
    pub cdn_url: String,
    pub token_key: String,
}

impl BunnyStorage {
    /// `bunny://zone`.
    pub fn from_url(url: &str, cfg: BunnyConfig) -> StorageResult<Self> {
        let zone = url
            .strip_prefix("bunny://")
            .map(|z| z.trim_matches('/'))
            .filter(|z| !z.is_empty() && !z.contains('/'))
            .ok_or_else(|| StorageError::Config(format!("{url:?} is not bunny://zone")))?;
        for (name, v) in [
            ("CHAT_BUNNY_ACCESS_KEY", &cfg.access_key),
            ("CHAT_BUNNY_CDN_URL", &cfg.cdn_url),
            ("CHAT_BUNNY_TOKEN_KEY", &cfg.token_key),
        ] {
            if v.is_empty() {
                return Err(StorageError::Config(format!(
                    "{name} is required for {url}"
                )));
            }
        }
        Ok(BunnyStorage {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .map_err(|e| StorageError::Config(e.to_string()))?,
            api: cfg.endpoint.trim_end_matches('/').to_string(),
            zone: zone.to_string(),
            access_key: cfg.access_key,
            cdn_url: cfg.cdn_url.trim_end_matches('/').to_string(),
            token_key: cfg.token_key,
        })
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.api, self.zone)
    }

    /// Bunny's token for `path` valid until `expires` (unix seconds).
    pub fn token(token_key: &str, path: &str, expires: u64) -> String {
        let mut h = Sha256::new();
        h.update(token_key.as_bytes());
        h.update(path.as_bytes());
        h.update(expires.to_string().as_bytes());
        URL_SAFE_NO_PAD.encode(h.finalize())
    }
}

#[async_trait]
impl ObjectStorage for BunnyStorage {
    async fn put(&self, key: &str, file: &Path, mime: &str) -> StorageResult<()> {
        let f = tokio::fs::File::open(file).await?;
        let len = f.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
        let r = self
            .http
            .put(self.object_url(key))
            .header("AccessKey", &self.access_key)
            .header("Content-Type", mime)
            .header("Content-Length", len)
            .body(body)
            .send()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        if !r.status().is_success() {
            return Err(StorageError::Backend(format!(
                "Bunny PUT answered {}",
                r.status()
            )));
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let r = self
            .http
            .delete(self.object_url(key))
            .header("AccessKey", &self.access_key)
            .send()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        if !r.status().is_success() && r.status() != reqwest::StatusCode::NOT_FOUND {
            return Err(StorageError::Backend(format!(
                "Bunny DELETE answered {}",
                r.status()
            )));
        }
        Ok(())
    }

    async fn url(&self, key: &str, ttl: Duration) -> StorageResult<String> {
        let expires = unix_now() + ttl.as_secs();
        let path = format!("/{key}");
        let token = Self::token(&self.token_key, &path, expires);
        Ok(format!(
            "{}{path}?token={token}&expires={expires}",
            self.cdn_url
        ))
    }

    async fn list(&self) -> StorageResult<Vec<ObjectInfo>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            object_name: String,
            #[serde(default)]
            length: u64,
            #[serde(default)]
            last_changed: Option<String>,
            #[serde(default)]
            is_directory: bool,
        }
        let r = self
            .http
            .get(format!("{}/{}/", self.api, self.zone))
            .header("AccessKey", &self.access_key)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        if !r.status().is_success() {
            return Err(StorageError::Backend(format!(
                "Bunny list answered {}",
                r.status()
            )));
        }
        let entries: Vec<Entry> = r
            .json()
            .await
            .map_err(|e| StorageError::Backend(format!("Bunny list: {e}")))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_directory)
            .map(|e| ObjectInfo {
                key: e.object_name,
                size: e.length,
                // Bunny writes UTC without a zone: `2026-01-02T03:04:05.678`.
                modified: e.last_changed.and_then(|t| {
                    chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                }),
            })
            .collect())
    }

    fn kind(&self) -> &'static str {
        "bunny"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generated_keys_are_valid() {
        let k = new_key("jpg");
        assert!(is_valid_key(&k));
        assert!(is_valid_key(&thumbnail_key(&k, "png")));
        for bad in [
            "../etc/passwd",
            "0123456789abcdef0123456789abcdef.jpg/../x",
            "0123456789abcdef0123456789abcdeF.jpg",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef.",
            "0123456789abcdef0123456789abcdef.jpeg5",
            "..",
            "",
        ] {
            assert!(!is_valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn local_signatures_expire_and_resist_tampering() {
        let dir = std::env::temp_dir().join(format!("chat-ls-{}", uuid::Uuid::new_v4()));
        let s = LocalStorage::new(dir.clone(), "", b"k").unwrap();
        let key = new_key("png");
        let future = unix_now() + 60;
        let sig = s.sign(&key, future);
        assert!(s.verify(&key, future, &sig).is_ok());
        assert!(s.verify(&key, future + 1, &sig).is_err());
        assert!(s.verify(&new_key("png"), future, &sig).is_err());
        let past = unix_now() - 1;
        assert_eq!(
            s.verify(&key, past, &s.sign(&key, past)),
            Err("this link has expired")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
