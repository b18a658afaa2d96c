//! The real client address behind trusted proxies (`server.trusted_proxies`).
//!
//! A request's address is its connection's peer (after any PROXY protocol header). Only when
//! that peer is a trusted proxy is the forwarding header read: `X-Forwarded-For` by default, or
//! the one `server.real_ip_header` names (`Forwarded`, RFC 7239, reads its `for=` parameters;
//! any other name is read like `X-Forwarded-For`, so `X-Real-IP` works too). Only that one
//! header: a proxy that appends to `X-Forwarded-For` passes a client's own `Forwarded` through
//! untouched. The hops are read right to left, as nginx's `real_ip_recursive on` does: each
//! hop a trusted proxy appended is skipped, and the first address that is not a trusted proxy
//! is the client. A hop that is not an address (`unknown`, an obfuscated name, bytes that are
//! not text) makes the client unknown, [`UNKNOWN`]: never loopback, and one bucket for the
//! login rate limit. An untrusted peer's headers are ignored, so no client picks its address.

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// The address of a client whose forwarding chain cannot be read.
pub const UNKNOWN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: HeaderName,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies {
            nets: Vec::new(),
            header: HeaderName::from_static("x-forwarded-for"),
        }
    }
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
        TrustedProxies {
            nets,
            ..TrustedProxies::default()
        }
    }

    /// Reads `header` instead of `X-Forwarded-For` (validated at load; a name that is not a
    /// header name keeps the default).
    pub fn with_header(mut self, header: &str) -> TrustedProxies {
        if let Ok(name) = HeaderName::from_bytes(header.trim().as_bytes()) {
            self.header = name;
        }
        self
    }

    /// No proxy is trusted: the peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if self.nets.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        let hops = self.hops(headers);
        let mut vouched = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else {
                return Some(UNKNOWN);
            };
            let ip = canonical(*ip);
            if !self.trusts(ip) {
                return Some(ip);
            }
            vouched = ip;
        }
        Some(vouched)
    }

    /// The hops of the configured header, in order; `None` for a hop that is not an address.
    fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let values = headers.get_all(&self.header).iter().map(|v| v.as_bytes());
        if self.header == http::header::FORWARDED {
            values
                .flat_map(|v| v.split(|b| *b == b','))
                .map(|element| {
                    element
                        .split(|b| *b == b';')
                        .find_map(|pair| {
                            let at = pair.iter().position(|b| *b == b'=')?;
                            let name = std::str::from_utf8(&pair[..at]).ok()?;
                            name.trim().eq_ignore_ascii_case("for").then(|| &pair[at + 1..])
                        })
                        .and_then(node_address)
                })
                .collect()
        } else {
            values.flat_map(|v| v.split(|b| *b == b',')).map(node_address).collect()
        }
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

/// An address from a `Forwarded` node (`192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:80"`)
/// or an `X-Forwarded-For` hop.
fn node_address(node: &[u8]) -> Option<IpAddr> {
    let node = std::str::from_utf8(node).ok()?.trim().trim_matches('"');
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
    fn only_the_configured_header_counts_and_odd_hops_make_the_client_unknown() {
        let trusted = TrustedProxies::new(&["10.0.0.0/8".into()]);
        let both = headers(&[
            ("forwarded", "for=\"[2001:db8::7]:4711\";proto=https, for=10.2.2.2"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        // A client's own `Forwarded` is not read while the proxies speak X-Forwarded-For.
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &both), Some(ip("198.51.100.3")));
        let forwarded = trusted.clone().with_header("Forwarded");
        assert_eq!(forwarded.client(Some(ip("10.0.0.2")), &both), Some(ip("2001:db8::7")));
        let ported = headers(&[("forwarded", "for=\"192.0.2.60:8080\"")]);
        assert_eq!(forwarded.client(Some(ip("10.0.0.2")), &ported), Some(ip("192.0.2.60")));
        let unknown = headers(&[("x-forwarded-for", "unknown, 10.3.3.3")]);
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &unknown), Some(UNKNOWN));
        // Bytes that are not text in one hop spoil only that hop: the real address appended
        // after it still counts.
        let mut raw = HeaderMap::new();
        raw.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"1.2.3.4\xff, 203.0.113.5").expect("value"),
        );
        assert_eq!(trusted.client(Some(ip("10.0.0.2")), &raw), Some(ip("203.0.113.5")));
        let real_ip = TrustedProxies::new(&["10.0.0.0/8".into()]).with_header("X-Real-IP");
        let single = headers(&[("x-real-ip", "198.51.100.77")]);
        assert_eq!(real_ip.client(Some(ip("10.0.0.2")), &single), Some(ip("198.51.100.77")));
    }
}
