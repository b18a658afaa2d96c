//! What crossing CPU cores costs a request on this machine, so that the latency a pinned proxy
//! adds at one request in flight can be split into wake-ups and work.
//!
//! The direct run's client and mock share one core. A proxy pinned to the other core puts two
//! cross-core round trips in each request's path (client to proxy and back, proxy to mock and
//! back), and each crossing wakes a sleeping thread on the other core through the scheduler (an
//! inter-processor interrupt on a VM). To price one round trip, the direct run's requests go to a
//! second mock pinned to the proxy's core; its latency minus the direct run's is that cost.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::load::{self, LoadOptions};
use super::process;
use super::report::Percentiles;
use crate::compare_setup::CompareError;

/// The wake-up figures of one run at one request in flight.
#[derive(Debug, Serialize)]
pub struct WakeUps {
    /// The direct requests, answered by a mock on the proxy's core.
    pub cross_core: Percentiles,
    /// Its p50 minus the direct run's p50 (same core): one cross-core round trip, µs.
    pub round_trip_us: i64,
    /// Two round trips (the proxy's path has two), µs: the part of a proxy's added p50 that is
    /// wake-ups rather than the proxy's own work.
    pub proxy_path_us: i64,
}

struct MockChild(Child);

impl Drop for MockChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `direct` (the direct run's options, URL path included) to a mock started from `bin` on
/// `cpu`, and prices a cross-core round trip against the direct run's percentiles.
pub async fn measure(
    bin: &Path,
    cpu: usize,
    mock_latency: Duration,
    direct: &LoadOptions,
    warmup: Duration,
    same_core: &Percentiles,
) -> Result<WakeUps, CompareError> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| CompareError::Start(format!("no free port: {e}")))?;
    let child = process::pinned(bin, Some(cpu))
        .args(["bench", "mock", "--listen", &addr.to_string(), "--latency-ms"])
        .arg(mock_latency.as_millis().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CompareError::Start(format!("cannot start the pinned mock: {e}")))?;
    let _child = MockChild(child);
    let listening = tokio::task::spawn_blocking(move || {
        (0..1000).any(|_| {
            let up = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(10));
            }
            up
        })
    })
    .await;
    if !matches!(listening, Ok(true)) {
        return Err(CompareError::Start(format!("the pinned mock did not listen on {addr}")));
    }
    let path = direct
        .url
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_else(|| "/".into());
    let options = LoadOptions {
        url: format!("http://{addr}{path}"),
        ..direct.clone()
    };
    if !warmup.is_zero() {
        load::run(&LoadOptions {
            duration: warmup,
            ..options.clone()
        })
        .await?;
    }
    let cross = load::run(&options).await?;
    let round_trip_us = cross.latency_us.p50 as i64 - same_core.p50 as i64;
    Ok(WakeUps {
        cross_core: cross.latency_us,
        round_trip_us,
        proxy_path_us: 2 * round_trip_us,
    })
}
