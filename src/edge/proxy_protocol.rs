//! The PROXY protocol (HAProxy's, versions 1 and 2), read off the front of a connection accepted
//! from a TCP load balancer: the client's address replaces the balancer's as the connection's
//! peer address, which is what the rest of the gateway sees.
//!
//! Parsing is the `ppp` crate's. A listener with `proxy_protocol: true` requires the header, as
//! HAProxy's `accept-proxy` does: a connection without one is closed, since its first bytes
//! could otherwise claim any address. A `LOCAL` header (a balancer's own health check) keeps
//! the socket's peer address.

use std::net::SocketAddr;

use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;

/// Longest header accepted: version 2's 16 fixed bytes and its largest body.
const MOST: usize = 16 + u16::MAX as usize;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection closed or failed before a whole header.
    #[error("connection ended before a whole PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a PROXY protocol header.
    #[error("not a PROXY protocol header")]
    Invalid,
}

/// What a header says, once parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A header of `length` bytes naming the client `source` (`None`: keep the peer address).
    Header { length: usize, source: Option<SocketAddr> },
    /// More bytes are needed.
    Incomplete,
    /// Not a header.
    Invalid,
}

/// Version 1's signature, and its longest header (CRLF included).
const V1_SIGNATURE: &[u8] = b"PROXY ";
const V1_MOST: usize = 107;
/// Version 2's signature.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Parses the start of `input`.
pub fn parse(input: &[u8]) -> Parsed {
    // Version 1 is a line: until its CRLF has arrived it is incomplete, whatever a prefix of
    // it looks like (ppp reads `... 5555 ` without the destination port as invalid).
    let signature = &V1_SIGNATURE[..input.len().min(V1_SIGNATURE.len())];
    if !input.is_empty() && input.starts_with(signature) {
        let head = &input[..input.len().min(V1_MOST)];
        let Some(end) = head.iter().position(|b| *b == b'\n') else {
            return if input.len() < V1_MOST {
                Parsed::Incomplete
            } else {
                Parsed::Invalid
            };
        };
        // The whole line is here: whatever does not parse now never will.
        return match v1::Header::try_from(&input[..=end]) {
            Ok(header) => Parsed::Header {
                length: end + 1,
                source: match header.addresses {
                    v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    v1::Addresses::Unknown => None,
                },
            },
            Err(_) => Parsed::Invalid,
        };
    }
    // Anything else must be version 2: its 12-byte signature first.
    let v2_signature = &V2_SIGNATURE[..input.len().min(V2_SIGNATURE.len())];
    if !input.starts_with(signature) && !input.starts_with(v2_signature) {
        return Parsed::Invalid;
    }
    let result: HeaderResult<'_> = v2::Header::try_from(input).into();
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V2(Ok(header)) => {
            let source = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Parsed::Header {
                length: header.len(),
                source,
            }
        }
        _ => Parsed::Invalid,
    }
}

/// Reads the PROXY header at the front of `stream`; bytes read past it are put back. The
/// client's address becomes the stream's peer address.
pub async fn read_header(stream: &mut L4Stream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse(&buf) {
            Parsed::Incomplete if buf.len() < MOST => continue,
            Parsed::Incomplete | Parsed::Invalid => return Err(ProxyHeaderError::Invalid),
            Parsed::Header { length, source } => {
                stream.rewind(&buf[length.min(buf.len())..]);
                if let Some(source) = source {
                    set_peer(stream, source);
                }
                return Ok(source);
            }
        }
    }
}

/// Makes `address` the stream's peer address (its local address still comes from the socket).
fn set_peer(stream: &mut L4Stream, address: SocketAddr) {
    use std::os::unix::io::AsRawFd;
    let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
    let _ = digest.peer_addr.set(Some(PeerAddr::Inet(address)));
    stream.set_socket_digest(digest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_one_and_two_headers_are_read_and_their_length_known() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(v1),
            Parsed::Header {
                length: 43,
                source: Some("203.0.113.7:51000".parse().expect("addr"))
            }
        );
        let mut v2 = vec![
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C,
        ];
        v2.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 1, 0xC3, 0x50, 0x01, 0xBB]);
        assert_eq!(parse(&v2[..20]), Parsed::Incomplete);
        v2.extend_from_slice(b"GET");
        assert_eq!(
            parse(&v2),
            Parsed::Header {
                length: 28,
                source: Some("198.51.100.9:50000".parse().expect("addr"))
            }
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Parsed::Invalid);
        // Version 1 split anywhere, even right after a field's separator, waits for the rest.
        let line = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n";
        for cut in 1..line.len() {
            assert_eq!(parse(&line[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        assert_eq!(
            parse(line),
            Parsed::Header {
                length: line.len(),
                source: Some("203.0.113.7:5555".parse().expect("addr"))
            }
        );
        assert_eq!(parse(&[b'P'; 120]), Parsed::Invalid);
        assert_eq!(parse(b"PROXY TCP4 garbage\r\n"), Parsed::Invalid);
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                length: 15,
                source: None
            }
        );
    }
}
