//! Sockets at scale: raise the open-file limit, and spread client sockets over several
//! loopback source addresses so one address's ephemeral ports are never the ceiling.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// Sockets per source address (the ephemeral range holds ~28k ports).
pub const PER_SOURCE: usize = 20_000;

/// Raise RLIMIT_NOFILE towards `want`; returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur >= want {
            return r.rlim_cur;
        }
        // Try to lift the hard limit too (works as root); else go as far as it allows.
        let both = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(r.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &both) == 0 {
            return want;
        }
        let soft = libc::rlimit {
            rlim_cur: r.rlim_max.min(want),
            rlim_max: r.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            soft.rlim_cur
        } else {
            r.rlim_cur
        }
    }
}

/// Where the server is: `http://host:port` → (socket address, "host:port").
pub async fn resolve(server: &str) -> Result<(SocketAddr, String)> {
    let rest = server
        .strip_prefix("http://")
        .with_context(|| format!("--server {server:?}: only http:// servers are supported"))?;
    let hostport = rest.trim_end_matches('/').to_string();
    let addr = tokio::net::lookup_host(&hostport)
        .await
        .with_context(|| format!("cannot resolve {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} has no address"))?;
    Ok((addr, hostport))
}

/// The source address for the `i`-th socket: spread over 127.0.0.x when the server is on
/// loopback, the system's choice otherwise.
pub fn source_for(server: SocketAddr, i: usize) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => {
            let n = (i / PER_SOURCE) as u8;
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1u8.saturating_add(n))))
        }
        _ => None,
    }
}

/// Open `/chat/ws` with a bearer token from `source`.
pub async fn connect_ws(
    server: SocketAddr,
    hostport: &str,
    token: &str,
    source: Option<IpAddr>,
) -> Result<WebSocketStream<TcpStream>> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("cannot bind source address {ip}"))?;
    }
    let stream = socket.connect(server).await.context("tcp connect")?;
    stream.set_nodelay(true)?;
    let mut req = format!("ws://{hostport}/chat/ws").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    // Small buffers: tungstenite's 128 KiB defaults would cost ~256 KiB per socket.
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.read_buffer_size = 4 * 1024;
    config.write_buffer_size = 0;
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
        .await
        .context("websocket handshake")?;
    Ok(ws)
}
