//! The gateway at the edge: its listeners (plaintext or TLS, each with its roles, an optional
//! PROXY protocol header and cleartext HTTP/2), the real client address behind trusted
//! proxies, and the hand-over of listening sockets on `serve --upgrade`.
//!
//! Pingora accepts every listener as plain TCP; the connection wrapper (`crate::connection`)
//! then reads a PROXY header and runs the TLS handshake itself, under the handshake deadline,
//! before HTTP starts. That order is what the PROXY protocol needs (its header comes before
//! TLS), and it keeps one place where a connection's limits apply.

pub mod client_addr;
pub mod proxy_protocol;
pub mod tls;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use asbru_config::model::{Listener, ServerConfig};
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::services::ServiceWithDependents;

use crate::connection::{Entry, Guarded, Limits};
use crate::proxy::GatewayProxy;
use crate::state::Gateway;

/// What one listener serves, found by the local address a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerRoles {
    /// The listening address.
    pub address: SocketAddr,
    /// Inference routes.
    pub inference: bool,
    /// The management API and the dashboard.
    pub admin: bool,
}

/// The roles of each listener, or `None` when every listener serves everything (no check is
/// needed then).
pub fn roles(listeners: &[Listener]) -> Option<Vec<ListenerRoles>> {
    if listeners.iter().all(|l| l.inference && l.admin) {
        return None;
    }
    Some(
        listeners
            .iter()
            .filter_map(|l| {
                Some(ListenerRoles {
                    address: l.address.parse().ok()?,
                    inference: l.inference,
                    admin: l.admin,
                })
            })
            .collect(),
    )
}

/// The roles of the listener bound to `local` (a listener on an unspecified address matches
/// any local address with its port). An unknown address serves nothing.
pub fn roles_at(table: &[ListenerRoles], local: Option<SocketAddr>) -> (bool, bool) {
    let Some(local) = local else {
        return (false, false);
    };
    let exact = table.iter().find(|r| r.address == local);
    let wildcard = || {
        table
            .iter()
            .find(|r| r.address.port() == local.port() && r.address.ip().is_unspecified())
    };
    exact
        .or_else(wildcard)
        .map_or((false, false), |r| (r.inference, r.admin))
}

/// The client address of a request: the connection's peer, or, when that peer is a trusted
/// proxy, the address its forwarding headers name.
pub fn client_ip(state: &Gateway, session: &pingora::proxy::Session) -> Option<std::net::IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
    if state.trusted_proxies.is_empty() {
        return peer;
    }
    state.trusted_proxies.client(peer, &session.req_header().headers)
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The address does not parse.
    #[error("cannot listen on {0}: {1}")]
    Address(String, String),
    /// A certificate cannot be used.
    #[error("TLS listener {0}: {1}")]
    Certificate(String, tls::CertError),
}

/// One Pingora service per listener, sharing the connection count.
pub fn services(
    state: &Arc<Gateway>,
    listeners: &[Listener],
    server: &ServerConfig,
    conf: &Arc<ServerConf>,
) -> Result<Vec<Box<dyn ServiceWithDependents>>, ListenerError> {
    let open = Arc::new(AtomicUsize::new(0));
    let limits = Limits {
        max_connections: server.max_connections,
        header_timeout: Duration::from_secs(server.header_read_timeout_seconds),
        idle_drain: Duration::from_secs(server.grace_period_seconds),
    };
    let mut services: Vec<Box<dyn ServiceWithDependents>> = Vec::with_capacity(listeners.len());
    for listener in listeners {
        listener
            .address
            .parse::<SocketAddr>()
            .map_err(|e| ListenerError::Address(listener.address.clone(), e.to_string()))?;
        let acceptor = match &listener.tls {
            Some(files) => {
                let config =
                    tls::server_config(files).map_err(|e| ListenerError::Certificate(listener.address.clone(), e))?;
                Some(Arc::new(pingora::listeners::tls::Acceptor::from_server_config(config)))
            }
            None => None,
        };
        let mut http = pingora::proxy::HttpProxy::new(GatewayProxy::new(state.clone()), conf.clone());
        http.handle_init_modules();
        let mut options = HttpServerOptions::default();
        options.h2c = listener.h2c && acceptor.is_none();
        options.h2_idle_timeout =
            (server.h2_idle_timeout_seconds > 0).then(|| Duration::from_secs(server.h2_idle_timeout_seconds));
        http.server_options = Some(options);
        let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
        h2.max_concurrent_streams(server.h2_max_concurrent_streams);
        http.h2_options = Some(h2);
        let entry = Entry {
            proxy_protocol: listener.proxy_protocol,
            tls: acceptor,
            handshake_timeout: Duration::from_secs(server.tls_handshake_timeout_seconds.max(1)),
        };
        let scheme = if entry.tls.is_some() { "https" } else { "http" };
        let mut service = pingora::services::listening::Service::new(
            format!("asbru gateway {scheme}://{}", listener.address),
            Guarded::new(http, limits, entry, open.clone()),
        );
        service.add_tcp(&listener.address);
        services.push(Box::new(service));
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_found_by_exact_or_wildcard_address() {
        let table = vec![
            ListenerRoles {
                address: "127.0.0.1:8080".parse().expect("addr"),
                inference: true,
                admin: false,
            },
            ListenerRoles {
                address: "0.0.0.0:9090".parse().expect("addr"),
                inference: false,
                admin: true,
            },
        ];
        assert_eq!(roles_at(&table, "127.0.0.1:8080".parse().ok()), (true, false));
        assert_eq!(roles_at(&table, "10.1.2.3:9090".parse().ok()), (false, true));
        assert_eq!(roles_at(&table, "127.0.0.1:7070".parse().ok()), (false, false));
    }
}
