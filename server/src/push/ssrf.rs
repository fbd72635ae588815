//! What push may connect to: public addresses only (unless `CHAT_PUSH_ALLOW_PRIVATE`),
//! checked on IP literals and on every address a name resolves to.

use super::PushError;

/// Whether chatd may send to this address on a user's behalf: public unicast only.
///
/// IPv6 is allow-listed rather than deny-listed: only global unicast (2000::/3) passes,
/// minus the ranges inside it that are not plain public hosts or that embed an IPv4
/// address chatd would then reach by translation (6to4 2002::/16, Teredo and the IETF
/// special block 2001::/23, documentation 2001:db8::/32 and 3fff::/20, the old 6bone
/// 3ffe::/16). Everything outside 2000::/3 is refused with it: NAT64 (64:ff9b::/96,
/// 64:ff9b:1::/48), IPv4-compatible (::/96), discard (100::/64), unique-local, site-local
/// (fec0::/10), link-local and multicast. IPv4-mapped addresses are judged as the IPv4
/// address they carry.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 IETF assignments
                || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 192.88.99/24 6to4 relays
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let global_unicast = (seg[0] & 0xe000) == 0x2000;
            let special = match seg[0] {
                // 2001::/23 (Teredo, benchmarking, ORCHID, …) and 2001:db8::/32
                0x2001 => seg[1] < 0x0200 || seg[1] == 0x0db8,
                0x2002 | 0x3ffe => true,   // 6to4, 6bone
                0x3fff => seg[1] < 0x1000, // 3fff::/20 documentation
                _ => false,
            };
            global_unicast && !special
        }
    }
}

/// A resolver that drops every non-public address (and fails when none is left).
pub(super) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuse an endpoint whose host is a non-public IP literal (those bypass the resolver).
pub(super) fn check_literal(endpoint: &str) -> Result<(), PushError> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| PushError::WebPush(format!("bad endpoint: {e}")))?;
    let Some(host) = url.host_str() else {
        return Err(PushError::WebPush("endpoint without a host".into()));
    };
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    else {
        return Ok(()); // a name: the resolver checks it
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(PushError::WebPush(format!(
            "endpoint address {ip} is not public (CHAT_PUSH_ALLOW_PRIVATE is off)"
        )))
    }
}
