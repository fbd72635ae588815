//! A real `chatd` process on a free loopback port, and a small HTTP client for it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chat_protocol::UserId;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{sqlite_url, temp_dir, TestDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Path of a workspace binary (built by `cargo build --workspace` / `make test`).
pub fn binary(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("{}_BIN", name.to_uppercase().replace('-', "_"))) {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} not found; run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

pub struct TestServer {
    child: Child,
    pub base: String,
    pub secret: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    db: Option<TestDatabase>,
    pub http: reqwest::Client,
}

/// One response: status, headers and the body parsed as JSON (Null when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The SPEC error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        &self.body
    }

    /// Assert an error answer: status and code, in the SPEC shape.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(self.code(), code, "unexpected code; body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.body
        );
    }
}

/// A user as the tests know it: id, name and a valid token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: UserId,
    pub username: String,
    pub token: String,
}

impl TestServer {
    /// Start chatd on `backend`; `None` when PostgreSQL tests are skipped.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Option<TestServer> {
        let data_dir = temp_dir("chatd-e2e");
        let (db, database_url) = match backend {
            Backend::Sqlite => (None, sqlite_url(&data_dir)),
            Backend::Postgres => {
                let db = TestDatabase::create().await?;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let secret = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        Some(Self::spawn(data_dir, database_url, secret, db, env).await)
    }

    /// Two instances (PostgreSQL + Redis) sharing a fresh database and a fresh Redis key
    /// prefix (returned), so tests run in parallel on the shared Redis; `None` when
    /// PostgreSQL/Redis tests are skipped.
    pub async fn pair() -> Option<(TestServer, TestServer, String)> {
        Self::pair_with(&[]).await
    }

    /// [`TestServer::pair`] with more settings for both instances.
    pub async fn pair_with(extra: &[(&str, &str)]) -> Option<(TestServer, TestServer, String)> {
        let redis = crate::redis_url()?;
        let prefix = format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut env = vec![
            ("CHAT_REDIS_URL", redis.as_str()),
            ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ];
        env.extend_from_slice(extra);
        let a = TestServer::start_with(Backend::Postgres, &env).await?;
        let b = a.sibling(&env).await;
        Some((a, b, prefix))
    }

    /// chatd on a database the test runs itself (chaos tests stop and start it).
    pub async fn start_on_database(database_url: &str, env: &[(&str, &str)]) -> TestServer {
        let secret = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        Self::spawn(
            temp_dir("chatd-e2e"),
            database_url.to_string(),
            secret,
            None,
            env,
        )
        .await
    }

    /// Another instance on the same database and secret (it does not own the database).
    pub async fn sibling(&self, env: &[(&str, &str)]) -> TestServer {
        Self::spawn(
            temp_dir("chatd-e2e"),
            self.database_url.clone(),
            self.secret.clone(),
            None,
            env,
        )
        .await
    }

    async fn spawn(
        data_dir: PathBuf,
        database_url: String,
        secret: String,
        db: Option<TestDatabase>,
        env: &[(&str, &str)],
    ) -> TestServer {
        let mut cmd = Command::new(binary("chatd"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHAT_LISTEN", "127.0.0.1:0")
            .env("CHAT_DATA_DIR", &data_dir)
            .env("CHAT_DATABASE_URL", &database_url)
            .env("CHAT_JWT_SECRET", &secret)
            .env("CHAT_LOG", "warn")
            .env("CHAT_DB_MAX_CONNECTIONS", "5")
            // Presence tests expect `user.offline` as soon as a socket closes; the grace
            // period has its own tests, which set it.
            .env("CHAT_PRESENCE_GRACE_MS", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn chatd");
        let stdout = child.stdout.take().expect("chatd stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("chatd did not become ready within 60 s")
            .expect("read chatd stdout")
            .expect("chatd exited before it was ready");
        let base = line
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or_else(|| panic!("unexpected ready line: {line}"))
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TestServer {
            child,
            base,
            secret,
            data_dir,
            database_url,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// Stop this chatd (SIGTERM), stay down for `down_for`, then start it again on the same
    /// address, database, data directory and secret: what a client sees as a restart.
    pub async fn restart(&mut self, down_for: Duration) {
        terminate(&mut self.child).await;
        tokio::time::sleep(down_for).await;
        let listen = self.addr();
        let fresh = Self::spawn(
            self.data_dir.clone(),
            self.database_url.clone(),
            self.secret.clone(),
            None,
            &[("CHAT_LISTEN", &listen)],
        )
        .await;
        assert_eq!(fresh.base, self.base, "restarted on another address");
        self.child = fresh.child;
    }

    /// Process id of this chatd.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("chatd is running")
    }

    /// Run `chatctl` on this server's configuration (database, data dir, secret).
    pub fn chatctl(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(binary("chatctl"))
            .env_clear()
            .env("CHAT_DATA_DIR", &self.data_dir)
            .env("CHAT_DATABASE_URL", &self.database_url)
            .env("CHAT_JWT_SECRET", &self.secret)
            .args(args)
            .output()
            .expect("run chatctl")
    }

    /// Set `action`'s limit (`N/PERIOD`, e.g. `3/min`) with chatctl and wait until this
    /// chatd has it in force: polls `/metrics` (`chat_rate_limit_requests`) instead of
    /// sleeping through a reload period.
    pub async fn set_rate_limit(&self, action: &str, limit: &str) {
        let out = self.chatctl(&["ratelimit", "set", action, limit]);
        assert!(out.status.success(), "{out:?}");
        let (n, period) = chat_protocol::units::rate(limit).expect("a valid N/PERIOD");
        self.wait_metric(
            &format!("chat_rate_limit_requests{{action=\"{action}\"}}"),
            |v| v == f64::from(n),
        )
        .await;
        self.wait_metric(
            &format!("chat_rate_limit_period_seconds{{action=\"{action}\"}}"),
            |v| v == f64::from(period),
        )
        .await;
    }

    /// The value of one series in `/metrics` (`name{labels}` exactly as rendered), or
    /// `None` when it is absent or `/metrics` cannot be read right now.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Poll `/metrics` until `series` satisfies `ok` (30 s at most): how a test waits for
    /// something chatd does in the background instead of sleeping for a guessed time.
    pub async fn wait_metric(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.metric(series).await;
            if let Some(v) = value.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} still {value:?} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `host:port` chatd listens on (for raw TCP clients).
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Mint a token with this server's secret.
    pub fn mint(&self, id: UserId, username: &str, exp_offset_secs: i64) -> String {
        mint_hs256(&self.secret, id, username, exp_offset_secs)
    }

    /// A new user with a valid token (the server provisions it on first request).
    pub fn user(&self, prefix: &str) -> TestUser {
        let id = UserId::new();
        let username = format!(
            "{prefix}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let token = self.mint(id, &username, 3600);
        TestUser {
            id,
            username,
            token,
        }
    }

    /// A user that has already made one request (so others can find it by name).
    pub async fn registered_user(&self, prefix: &str) -> TestUser {
        let u = self.user(prefix);
        self.get(&u, "/chat/blocks").await.expect(200);
        u
    }

    pub async fn request(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request to chatd");
        Self::reply(resp).await
    }

    pub async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("response body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, user: &TestUser, path: &str) -> Reply {
        self.request(Method::GET, Some(&user.token), path, None)
            .await
    }

    pub async fn post(&self, user: &TestUser, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, Some(&user.token), path, Some(body))
            .await
    }

    pub async fn delete(&self, user: &TestUser, path: &str) -> Reply {
        self.request(Method::DELETE, Some(&user.token), path, None)
            .await
    }

    /// Open (or create) the conversation between two users; returns its id.
    pub async fn conversation(&self, a: &TestUser, b: &TestUser) -> String {
        let r = self
            .get(a, &format!("/chat/conversations/with/{}", b.username))
            .await;
        assert!(r.status.is_success(), "get-or-create failed: {}", r.body);
        r.body["id"].as_str().expect("conversation id").to_string()
    }

    /// Send a text message and return the stored message.
    pub async fn send(&self, from: &TestUser, conv: &str, content: &str) -> Value {
        let r = self
            .post(
                from,
                &format!("/chat/conversations/{conv}/messages"),
                &serde_json::json!({ "content": content }),
            )
            .await;
        r.expect(201).clone()
    }

    /// Send a multipart media message: `files` are (file name, declared type, bytes),
    /// `fields` extra form fields (`content`, `temp_id`, …).
    pub async fn upload(
        &self,
        user: &TestUser,
        conv: &str,
        files: Vec<(&str, &str, Vec<u8>)>,
        fields: &[(&str, &str)],
    ) -> Reply {
        use reqwest::multipart::{Form, Part};
        let mut form = Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        for (name, declared, bytes) in files {
            let part = Part::bytes(bytes)
                .file_name(name.to_string())
                .mime_str(declared)
                .expect("a valid content type");
            form = form.part("file", part);
        }
        let resp = self
            .http
            .post(self.url(&format!("/chat/conversations/{conv}/messages")))
            .bearer_auth(&user.token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        Self::reply(resp).await
    }

    /// SIGTERM, wait for a clean exit, drop the test database. Returns the exit status.
    pub async fn stop(mut self) -> Option<std::process::ExitStatus> {
        let status = terminate(&mut self.child).await;
        if let Some(db) = self.db.take() {
            db.drop_db().await;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        status
    }
}

/// Send SIGTERM and wait up to 20 s; kill after that.
pub async fn terminate(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(Ok(s)) => Some(s),
        _ => {
            let _ = child.kill().await;
            None
        }
    }
}

/// An HS256 token whose `exp` is `exp_offset_secs` from now (negative: already expired).
pub fn mint_hs256(secret: &str, id: UserId, username: &str, exp_offset_secs: i64) -> String {
    chat_client::mint_token_for(secret, id, username, exp_offset_secs).expect("sign token")
}
