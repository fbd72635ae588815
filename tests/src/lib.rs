//! Shared test fixtures: a private PostgreSQL database per test, and a real `chatd`
//! process on a free port (on SQLite or PostgreSQL) with helpers to talk to it.
//!
//! PostgreSQL comes from `CHAT_TEST_POSTGRES_URL` (an admin URL; the Makefile sets it to
//! the local server). Without it, PostgreSQL tests are skipped, except under `CI=true`,
//! where a missing server is a failure.

pub mod files;
pub mod server;
pub mod ws;

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

/// Environment variable naming the PostgreSQL admin URL for tests.
pub const PG_ENV: &str = "CHAT_TEST_POSTGRES_URL";
/// Environment variable naming the Redis URL for tests.
pub const REDIS_ENV: &str = "CHAT_TEST_REDIS_URL";

/// Set to `1` to let a test whose service or tool is missing pass as skipped (it says so
/// on stderr); without it such a test fails, so a missing PostgreSQL never reads as green.
/// Ignored under CI, where every service is mandatory.
pub const ALLOW_SKIP_ENV: &str = "CHAT_TEST_ALLOW_SKIP";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A test needs `what`, which is missing: fail, unless skipping was asked for outside CI.
fn missing(what: &str, how: &str) {
    let allowed = std::env::var(ALLOW_SKIP_ENV).is_ok_and(|v| v == "1");
    if ci() || !allowed {
        panic!(
            "{what} is missing ({how}); run through `make test`, which provides it{}",
            if ci() {
                " (mandatory under CI)"
            } else {
                ", or set CHAT_TEST_ALLOW_SKIP=1 to skip"
            }
        );
    }
    eprintln!("SKIPPED: {what} is missing ({how}) and {ALLOW_SKIP_ENV}=1");
}

/// The URL in `env`; when unset, see [`missing`].
fn service_url(env: &str, what: &str) -> Option<String> {
    match std::env::var(env) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            missing(what, &format!("{env} is not set"));
            None
        }
    }
}

/// The PostgreSQL admin URL for tests (`None`: skipped, only with CHAT_TEST_ALLOW_SKIP=1).
pub fn postgres_admin_url() -> Option<String> {
    service_url(PG_ENV, "PostgreSQL")
}

/// Whether `ffmpeg` runs here (video posters). `make test` installs it on Debian
/// (scripts/ensure-services.sh); missing, the test fails unless skipping was asked for.
pub fn ffmpeg_available() -> bool {
    tool_available("ffmpeg", "-version")
}

/// Whether `tmux` runs here (the real-terminal run of chat-tui); same rules as ffmpeg.
pub fn tmux_available() -> bool {
    tool_available("tmux", "-V")
}

fn tool_available(tool: &str, version_flag: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg(version_flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing(
            tool,
            "not installed; scripts/ensure-services.sh installs it",
        );
    }
    ok
}

/// Assert a child process exited 0 (showing its stdout and stderr when not); its stdout.
pub fn exited_zero(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Environment variable naming the local S3 endpoint (moto) for tests.
pub const S3_ENV: &str = "CHAT_TEST_S3_URL";

/// The S3 endpoint (moto) for tests; `None` as [`postgres_admin_url`].
pub fn s3_url() -> Option<String> {
    service_url(S3_ENV, "S3 (moto)")
}

/// The Redis URL for tests; `None` as [`postgres_admin_url`].
pub fn redis_url() -> Option<String> {
    service_url(REDIS_ENV, "Redis")
}

/// A database created for one test and dropped by [`TestDatabase::drop_db`].
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

fn with_database(url: &str, db: &str) -> String {
    // Replace the path component (the database name), keep any query string.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDatabase {
    /// Create `chat_t_<random>`; `None` when PostgreSQL tests are skipped.
    pub async fn create() -> Option<TestDatabase> {
        let admin_url = postgres_admin_url()?;
        let name = format!("chat_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect_retry(&admin_url).await;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = conn.close().await;
        Some(TestDatabase {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }

    pub async fn drop_db(self) {
        if let Ok(mut conn) = PgConnection::connect(&self.admin_url).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
            let _ = conn.close().await;
        }
    }
}

async fn connect_retry(url: &str) -> PgConnection {
    let mut last = None;
    for _ in 0..20 {
        match PgConnection::connect(url).await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cannot connect to PostgreSQL at {url}: {last:?}");
}

/// A fresh SQLite URL in a temporary directory (removed by the caller or the OS).
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("chat.db").display())
}

/// A unique temporary directory.
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// One test body (`async fn name(s: &TestServer)` in the calling file) run against a
/// fresh chatd on SQLite (module `sqlite`) and on PostgreSQL (module `postgres`; skipped
/// outside CI when PostgreSQL is not configured, a failure under CI). `env = [...]`
/// passes extra environment to both servers.
#[macro_export]
macro_rules! on_both_backends {
    (env = $env:expr; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let s = $crate::server::TestServer::start_with($crate::server::Backend::Sqlite, $env)
                        .await
                        .expect("sqlite server");
                    super::$name(&s).await;
                    s.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(s) = $crate::server::TestServer::start_with($crate::server::Backend::Postgres, $env).await
                    else { return };
                    super::$name(&s).await;
                    s.stop().await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!(env = &[]; $($name),*);
    };
}

/// One test body (`async fn name(servers: &[&TestServer])`) run on every way chatd is
/// deployed: one instance on SQLite (module `sqlite`), one on PostgreSQL (`postgres`) and
/// two instances sharing PostgreSQL and Redis (`two_instances`, the body gets both).
/// Service-backed modules follow [`on_both_backends!`]'s rule: a failure under CI.
#[macro_export]
macro_rules! on_every_deployment {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let s = $crate::server::TestServer::start($crate::server::Backend::Sqlite)
                        .await
                        .expect("sqlite server");
                    super::$name(&[&s]).await;
                    s.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(s) = $crate::server::TestServer::start($crate::server::Backend::Postgres).await
                    else { return };
                    super::$name(&[&s]).await;
                    s.stop().await;
                }
            )*
        }
        mod two_instances {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((a, b, _)) = $crate::server::TestServer::pair().await else { return };
                    super::$name(&[&a, &b]).await;
                    b.stop().await;
                    a.stop().await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
