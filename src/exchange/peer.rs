//! The upstream peer handed to Pingora's pooled connector: an [`HttpPeer`] in every respect but
//! one. When Pingora takes a pooled connection for an `HttpPeer`, it first asks the kernel for
//! the socket's peer address (`getpeername`, one system call per request) to catch a file
//! descriptor that was closed and reused behind the pool's back. Pooled connections here are
//! only ever owned by the pool or by the request that took them, never closed by number, so that
//! check cannot fail; this peer skips it. Connections are shared with plain `HttpPeer`s that
//! have the same pool key ([`Peer::reuse_hash`]: address, SNI, verification flags and group key;
//! the provider's trust store goes into the group key, see `make_peer`).

use pingora::protocols::l4::socket::SocketAddr;
use std::fmt;
use std::os::fd::AsRawFd;

use pingora::upstreams::peer::{HttpPeer, Peer, PeerOptions, Proxy, Tracer};
use pingora::utils::tls::CertKey;

/// An upstream peer whose pooled connections are reused without the `getpeername` check.
#[derive(Debug, Clone)]
pub struct UpstreamPeer(pub HttpPeer);

impl fmt::Display for UpstreamPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Peer for UpstreamPeer {
    fn address(&self) -> &SocketAddr {
        self.0.address()
    }

    fn tls(&self) -> bool {
        self.0.tls()
    }

    fn sni(&self) -> &str {
        self.0.sni()
    }

    fn reuse_hash(&self) -> u64 {
        self.0.reuse_hash()
    }

    fn get_proxy(&self) -> Option<&Proxy> {
        self.0.get_proxy()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        self.0.get_peer_options()
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        self.0.get_mut_peer_options()
    }

    fn get_client_cert_key(&self) -> Option<&std::sync::Arc<CertKey>> {
        self.0.get_client_cert_key()
    }

    fn get_tracer(&self) -> Option<Tracer> {
        self.0.get_tracer()
    }

    fn matches_fd<V: AsRawFd>(&self, _fd: V) -> bool {
        true
    }
}
