//! The real client address behind trusted proxies (`server.trusted_proxies`).
//!
//! A request's address is its connection's peer (after any PROXY protocol header). Only when
//! that peer is a trusted proxy are `Forwarded` (RFC 7239; it wins when both are present) or
//! `X-Forwarded-For` read, right to left, as nginx's `real_ip_recursive on` does: each hop a
//! trusted proxy appended is skipped, and the first address that is not a trusted proxy is the
//! client. A hop that is not an address (`unknown`, an obfuscated name) ends the walk at the
//! last address a trusted proxy vouched for. An untrusted peer's headers are ignored, so no
//! client can pick its own address.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// From `server.trusted_proxies` (validated at load; an entry that does not parse is skipped).
    pub fn new(entries: &[String]) -> TrustedProxies {
        let nets = entries
            .iter()
            .filter_map(|entry| {
                entry
                    .parse::<IpNet>()
                    .ok()
                    .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .collect();
        TrustedProxies { nets }
    }

    /// No proxy is trusted: the peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if self.nets.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        let hops = forwarded_hops(headers);
        let mut vouched = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else {
                return Some(vouched);
            };
            let ip = canonical(*ip);
            if !self.trusts(ip) {
                return Some(ip);
            }
            vouched = ip;
        }
        Some(vouched)
    }
}

/// The client address of a request on `session`: the connection's peer, or, when that peer
/// is one of `proxies`, the address its forwarding headers name.
pub fn client_ip(proxies: &TrustedProxies, session: &pingora::proxy::Session) -> Option<IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
    if proxies.is_empty() {
        return peer;
    }
    proxies.client(peer, &session.req_header().headers)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) compared as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The hops of `Forwarded`'s `for=` parameters, or else of `X-Forwarded-For`, in order;
/// `None` for a hop that is not an address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_address(value.trim()))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| node_address(hop.trim()))
        .collect()
}

/// An address from a `Forwarded` node (`192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:80"`)
/// or an `X-Forwarded-For` hop.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    // IPv4 with a port.
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn headers_count_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::new(&["10.0.0.0/8".into(), "192.168.1.5".into()]);
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &xff), Some(ip("203.0.113.9")));
        assert_eq!(trusted.client(Some(ip("198.51.100.1")), &xff), Some(ip("198.51.100.1")));
        assert_eq!(
            trusted.client(Some(ip("::ffff:192.168.1.5")), &xff),
            Some(ip("203.0.113.9"))
        );
        // A client-supplied hop left of the real client is never believed.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &spoofed), Some(ip("203.0.113.9")));
        let none = TrustedProxies::new(&[]);
        assert_eq!(none.client(Some(ip("10.0.0.2")), &xff), Some(ip("10.0.0.2")));
    }

    #[test]
    fn forwarded_wins_and_odd_hops_stop_the_walk() {
        let trusted = TrustedProxies::new(&["10.0.0.0/8".into()]);
        let both = headers(&[
            ("forwarded", "for=\"[2001:db8::7]:4711\";proto=https, for=10.2.2.2"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &both), Some(ip("2001:db8::7")));
        let unknown = headers(&[("x-forwarded-for", "unknown, 10.3.3.3")]);
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &unknown), Some(ip("10.3.3.3")));
        let ported = headers(&[("forwarded", "for=\"192.0.2.60:8080\"")]);
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &ported), Some(ip("192.0.2.60")));
    }
}
