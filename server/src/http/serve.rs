//! chatd's accept loop: the axum router on hyper's HTTP/1 connections, with what
//! `axum::serve` cannot set (issue 16, item 3):
//!
//! - a **header-read timeout**: a request's headers must arrive within
//!   [`ConnLimits::header_read`], and a keep-alive connection waiting for its next request
//!   is closed after the same time (hyper starts that clock whenever it waits for a head),
//!   so half-sent requests and silent connections cannot pile up;
//! - a **cap per source address** on open connections, WebSockets included (the slot
//!   lives as long as the socket, upgraded or not): one more is closed at accept.
//!
//! Accepting runs on a thread of its own (`chatd-accept`, a one-thread runtime that does
//! nothing else): however busy the main runtime is with connect work (a 10k ramp, a
//! reconnect storm), the kernel's accept queue is drained as connections arrive instead of
//! waiting for the runtime (an overflow drops SYNs into the clients' 1 s / 3 s / 7 s retry
//! back-off; a burst larger than `net.core.somaxconn` can still overflow it). The accepted
//! sockets wait in a channel for the main runtime instead.
//!
//! An upgraded WebSocket is bounded by its own heartbeat (`CHAT_WS_IDLE_SECS`) instead.
//! Graceful shutdown is axum's: stop accepting, ask every connection to finish its
//! request, wait for all of them.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use crate::slots::{Slot, Slots};

/// Bounds on connections, whatever they carry.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections one source address may hold (0: no cap).
    pub per_address: usize,
    /// Time for a request's headers to arrive, and for an idle keep-alive connection.
    pub header_read: Duration,
}

/// A TCP connection holding its address's slot until it is closed.
struct Counted {
    tcp: TcpStream,
    _slot: Slot<IpAddr>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serve `app` on `listener` until `shutdown` resolves and every connection has finished.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let per_address = Slots::new(limits.per_address);
    // Dropping `signal_rx` tells the accept loop and every connection to wind down;
    // every connection task holds a `close_rx`, so `close_tx.closed()` waits for them.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let mut accepted = match start_acceptor(listener) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::error!(error = %e, "could not start the accept thread");
            return;
        }
    };
    loop {
        let (tcp, remote) = tokio::select! {
            next = accepted.recv() => match next {
                Some((tcp, remote)) => match TcpStream::from_std(tcp) {
                    Ok(tcp) => (tcp, remote),
                    Err(e) => {
                        tracing::warn!(error = %e, "accepted socket not registered");
                        continue;
                    }
                },
                None => break,
            },
            _ = signal_tx.closed() => break,
        };
        let Some(slot) = per_address.take(remote.ip()) else {
            crate::metrics::METRICS.refused("connections_per_address");
            tracing::debug!(%remote, "connection cap of this address reached; closed");
            continue;
        };
        let io = TokioIo::new(Counted { tcp, _slot: slot });
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|req: hyper::Request<Incoming>| req.map(Body::new)),
        );
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            let mut conn = pin!(builder.serve_connection(io, service).with_upgrades());
            let mut stopping = pin!(signal_tx.closed());
            let mut asked = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            if e.is_timeout() {
                                crate::metrics::METRICS.refused("header_timeout");
                            }
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = &mut stopping, if !asked => {
                        asked = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    // Stops the accept thread, which closes the listening socket.
    drop(accepted);
    close_tx.closed().await;
}

type Accepted = (std::net::TcpStream, SocketAddr);

/// Accept on a thread of its own until the returned receiver is dropped.
fn start_acceptor(listener: TcpListener) -> io::Result<mpsc::UnboundedReceiver<Accepted>> {
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("chatd-accept".into())
        .spawn(move || runtime.block_on(accept_loop(listener, tx)))?;
    Ok(rx)
}

async fn accept_loop(listener: std::net::TcpListener, tx: mpsc::UnboundedSender<Accepted>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "listening socket not registered");
            return;
        }
    };
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        // Chat frames are small and latency-bound: never let Nagle hold one back.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        match tcp.into_std() {
            Ok(tcp) => {
                if tx.send((tcp, remote)).is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "accepted socket not handed over"),
        }
    }
}

/// Accept failed: a connection reset before it was accepted costs nothing; anything else
/// (out of file descriptors) is worth a pause rather than a hot loop.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
