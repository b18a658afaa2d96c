//! One Pingora service per configured listener: its address, TLS acceptor, PROXY protocol
//! and HTTP/2 settings, all sharing one count of open connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use asbru_config::model::{Listener, ServerConfig};
use pingora::apps::HttpServerOptions;
use pingora::listeners::{DEFAULT_L4_WRITE_BUFFER_SIZE, L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::services::ServiceWithDependents;

use super::tls;
use crate::connection::{Entry, Guarded, Limits};
use crate::proxy::GatewayProxy;
use crate::state::Gateway;

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

/// Plaintext connections read straight from the socket. Pingora's default puts a 64 KiB read
/// buffer in front of every accepted socket, zero-filled when the connection opens: 64 KiB of
/// memory per open connection, and one more copy of every byte read, because the HTTP/1
/// session reads its head and body into buffers of its own anyway. TLS connections keep it:
/// rustls reads at most 4 KiB at a time, so without it a 16 KiB record would take four reads.
/// Writes keep Pingora's small write buffer, which gathers a response head and a short body
/// into one send.
fn read_buffering(tls: bool) -> L4BufferSettings {
    if tls {
        L4BufferSettings::default()
    } else {
        L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE)
    }
}

/// One Pingora service per listener, sharing the connection count.
pub fn services(
    state: &Arc<Gateway>,
    listeners: &[Listener],
    server: &ServerConfig,
    conf: &Arc<ServerConf>,
) -> Result<Vec<Box<dyn ServiceWithDependents>>, ListenerError> {
    let open = Arc::new(AtomicUsize::new(0));
    let trusted = Arc::new(super::client_addr::TrustedProxies::new(&server.trusted_proxies));
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
        let options_h2c = listener.h2c && acceptor.is_none();
        options.h2c = options_h2c;
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
            h2c: options_h2c,
            trusted: trusted.clone(),
        };
        let tls = entry.tls.is_some();
        let scheme = if tls { "https" } else { "http" };
        let mut service = pingora::services::listening::Service::new(
            format!("asbru gateway {scheme}://{}", listener.address),
            Guarded::new(http, limits, entry, open.clone()),
        );
        service.add_listener(ListenerConfig::tcp(&listener.address).l4_buffer(read_buffering(tls)));
        services.push(Box::new(service));
    }
    Ok(services)
}
