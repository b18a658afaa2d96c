//! Provider host name resolution, kept off the hot path: once at start-up, then refreshed by a
//! background service. Requests only read the resolved addresses.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use asbru_filters::snapshot::Snapshot;
use asbru_filters::snapshot::Upstream;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::Gateway;

/// How often host names are resolved again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Resolves every provider host that is not an IP literal (blocking). A failed lookup keeps the
/// previous addresses and logs a warning.
pub fn resolve_all(snapshot: &Snapshot) {
    for provider in snapshot.providers.values() {
        resolve(&provider.name, &provider.upstream);
        for key in &provider.keys {
            if let Some(azure) = &key.azure {
                resolve(&provider.name, &azure.upstream);
            }
            if let Some(bedrock) = &key.bedrock {
                resolve(&provider.name, &bedrock.upstream);
            }
            if let Some(vertex) = &key.vertex {
                resolve(&provider.name, &vertex.upstream);
                if let Some(account) = &vertex.service_account {
                    resolve(&provider.name, &account.token_upstream);
                }
            }
        }
    }
}

fn resolve(provider: &str, upstream: &Upstream) {
    if !upstream.needs_dns() {
        return;
    }
    match (upstream.host.as_str(), upstream.port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                tracing::warn!(provider, host = %upstream.host, "host name resolved to no address");
            } else if **upstream.addrs.load() != addrs {
                upstream.addrs.store(Arc::new(addrs));
            }
        }
        Err(e) => tracing::warn!(provider, host = %upstream.host, "cannot resolve host name: {e}"),
    }
}

/// Background service refreshing provider addresses.
pub struct DnsRefresh {
    /// Shared state whose snapshot is refreshed.
    pub state: Arc<Gateway>,
}

#[async_trait]
impl BackgroundService for DnsRefresh {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
            let live = self.state.live.load_full();
            let _ = tokio::task::spawn_blocking(move || resolve_all(&live.snapshot)).await;
        }
    }
}
