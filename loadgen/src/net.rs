//! Sockets at scale: raise the open-file limit, and spread client sockets over several
//! loopback source addresses so one address's ephemeral ports are never the ceiling.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// Sockets per source address (the ephemeral range holds ~28k ports; sockets of earlier
/// runs may still hold some in TIME_WAIT).
pub const PER_SOURCE: usize = 10_000;

/// Raise RLIMIT_NOFILE towards `want`; returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    use rlimit::Resource;
    let Ok((soft, hard)) = Resource::NOFILE.get() else {
        return 0;
    };
    if soft >= want {
        return soft;
    }
    // Lift the hard limit too where allowed (as root); else go as far as it allows.
    if Resource::NOFILE.set(want, want.max(hard)).is_ok() {
        return want;
    }
    rlimit::increase_nofile_limit(want).unwrap_or(soft)
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

/// The source address for the `i`-th socket: spread over 127.x.y.z when the server is on
/// loopback, starting at an address picked from this process's id, so that several
/// generator processes (and the previous run's TIME_WAIT sockets) do not share ports;
/// the system's choice otherwise.
pub fn source_for(server: SocketAddr, i: usize) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => {
            let base = u32::from(Ipv4Addr::new(127, 0, 1, 1)) + (std::process::id() % 4096) * 64;
            Some(IpAddr::V4(Ipv4Addr::from(base + (i / PER_SOURCE) as u32)))
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
    since: Option<u64>,
) -> Result<WebSocketStream<TcpStream>> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        // Ports of this address still in TIME_WAIT from an earlier run may be reused.
        socket.set_reuseaddr(true)?;
        defer_port_choice(&socket);
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("cannot bind source address {ip}"))?;
    }
    let stream = socket.connect(server).await.context("tcp connect")?;
    stream.set_nodelay(true)?;
    let resume = since.map(|s| format!("?since={s}")).unwrap_or_default();
    let url = chat_client::ws_url(&format!("http://{hostport}"));
    let mut req = format!("{url}{resume}").into_client_request()?;
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

/// Let `connect` pick the source port (`IP_BIND_ADDRESS_NO_PORT`) instead of `bind`:
/// `bind(ip, 0)` searches the bind table for a port free for every destination, which
/// grows with the sockets already bound; with thousands of sockets that search was most of
/// the generator's CPU (a 5,000-socket reconnect storm: 13 s of CPU, 70 % of it in the
/// kernel's `inet_bind2_bucket_find` / `inet_csk_get_port`; docs/benchmarks.md, session
/// 9). `connect` only needs the 4-tuple to be unique. Best effort: where the option is
/// unknown the bind picks the port as before.
#[cfg(target_os = "linux")]
fn defer_port_choice(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a c_int option value of the size passed.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn defer_port_choice(_socket: &TcpSocket) {}

/// SCHED_FIFO priorities: the pacer above the workers.
pub const PACER_PRIORITY: i32 = 20;
pub const WORKER_PRIORITY: i32 = 10;

/// Ask for SCHED_FIFO at `priority` for the calling thread; false without the privilege
/// (CAP_SYS_NICE or an RLIMIT_RTPRIO allowance). The pacer runs above the workers, so that
/// workers busy with a reconnect storm cannot hold it back.
pub fn realtime_thread(priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pthread_self() is the calling thread; param outlives the call.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn loopback_sources_stay_loopback_and_change_every_per_source_sockets() {
        let server: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let a = source_for(server, 0).expect("source");
        assert!(a.is_loopback());
        assert_eq!(source_for(server, PER_SOURCE - 1), Some(a));
        let b = source_for(server, PER_SOURCE).expect("source");
        assert!(b.is_loopback() && b != a);
        let remote: SocketAddr = "10.0.0.1:8080".parse().expect("addr");
        assert_eq!(source_for(remote, 0), None);
    }
}
