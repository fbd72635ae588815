//! `chatd`: parse configuration, bind, serve until SIGTERM/ctrl-c. Nothing else.

use anyhow::Context;
use chat_server::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    chat_server::telemetry::init(&config.common);
    raise_nofile();
    let listener = chat_server::app::listen(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(chat_server::app::serve_with_ready(
        config,
        listener,
        shutdown_signal(),
        ready_tx,
    ));
    if ready_rx.await.is_ok() {
        // The one line operators and scripts wait for.
        println!("chatd listening on http://{addr}");
    }
    server.await.context("server task")??;
    Ok(())
}

/// Every socket is a file descriptor: lift the soft open-file limit to the hard limit (as
/// Go and nginx do), so a default `ulimit -n` of 1024 is not a connection ceiling.
fn raise_nofile() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => tracing::debug!(limit = now, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; draining");
}
