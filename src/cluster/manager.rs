//! [`LeaseManager`]: the background task that keeps this node's leases (see [`super`]). It
//! runs a round when a meter wakes it (short of its lease, or running low) and at least every
//! [`ROUND`]; every [`REPORT`] it also renews the node's leases, reads the usage over all
//! nodes, hands back leases left idle and refreshes the metrics. All store calls run on a
//! blocking thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asbru_config::governance::{ClusterConfig, StoreDown};
use asbru_filters::policy::MeterLimit;
use asbru_store::backend::ConfigStore;
use asbru_store::backend::leases::{LeaseAsk, LeaseGrant};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::metrics::ClusterMetrics;
use super::signal::LeaseSignal;
use crate::state::Gateway;

/// The longest a round waits for a wake.
pub const ROUND: Duration = Duration::from_millis(250);
/// How often leases are renewed and usage over all nodes is read.
pub const REPORT: Duration = Duration::from_secs(1);
/// How long the store must keep failing before `fail_open` applies: one lost connection or a
/// deadlock retried is not an outage.
pub const OPEN_AFTER: Duration = Duration::from_secs(3);

/// What the manager knows of one meter between rounds.
#[derive(Debug)]
struct Tracked {
    /// The lease this node holds in the meter's window (its cap when admitting by lease).
    granted: i64,
    /// `total` at the last report, and since when it has not moved.
    last_total: i64,
    quiet_since: Instant,
}

/// Per meter id: an amount and the start of the window it belongs to.
type Ledger = HashMap<String, (i64, i64)>;

/// One fetch a round makes.
struct Ask {
    limit: MeterLimit,
    /// What to ask for beyond the room held.
    want: i64,
    /// What a refused request needed (0: the lease was only running low).
    need: i64,
}

/// Keeps this node's leases.
pub struct LeaseManager {
    /// The gateway (its live governance names every meter with its limit).
    pub state: Arc<Gateway>,
    /// The shared PostgreSQL store.
    pub store: Arc<dyn ConfigStore>,
    /// This node's id (its spend journal's owner).
    pub node: String,
    /// The request path's side.
    pub signal: Arc<LeaseSignal>,
    /// `governance.cluster`.
    pub settings: ClusterConfig,
    /// Metrics.
    pub metrics: ClusterMetrics,
    tracked: Mutex<HashMap<String, Tracked>>,
    /// When the store started failing (`None` while it answers).
    down_since: Mutex<Option<Instant>>,
}

impl LeaseManager {
    /// A manager for `node`.
    pub fn new(
        state: Arc<Gateway>,
        store: Arc<dyn ConfigStore>,
        node: String,
        signal: Arc<LeaseSignal>,
        settings: ClusterConfig,
        metrics: ClusterMetrics,
    ) -> LeaseManager {
        LeaseManager {
            state,
            store,
            node,
            signal,
            settings,
            metrics,
            tracked: Mutex::new(HashMap::new()),
            down_since: Mutex::new(None),
        }
    }

    fn ttl(&self) -> i64 {
        i64::try_from(self.settings.lease_ttl_seconds).unwrap_or(i64::MAX)
    }

    /// One round: the fetches meters asked for (and windows that ended), plus, with `report`,
    /// renewal, usage over all nodes, idle hand-backs and metrics.
    pub fn round(&self, report: bool) {
        self.signal.begin_round();
        let live = self.state.live.load_full();
        let now = crate::state::unix_now();
        let limits: Vec<MeterLimit> = live
            .governance
            .limits(now)
            .into_iter()
            .filter(|l| l.meter.is_leased())
            .collect();
        let idle = Duration::from_secs(self.settings.idle_return_seconds);
        let quiet: std::collections::HashSet<String> = match self.tracked.lock() {
            Ok(tracked) => tracked
                .iter()
                .filter(|(_, t)| t.quiet_since.elapsed() >= idle)
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => Default::default(),
        };
        let mut asks = Vec::new();
        for limit in &limits {
            if report {
                // A meter found dry may find room now (a lease handed back, a reset).
                limit.meter.set_dry(false);
            }
            let wanted = limit.meter.take_wanted();
            // A window that ended on a quiet meter rolls when a request next needs a lease.
            let ended = limit.meter.window_end() <= now && !quiet.contains(limit.meter.id());
            if wanted.is_none() && !ended {
                continue;
            }
            let need = wanted.unwrap_or(0);
            // What refused requests need beyond the room held, at least one typical request
            // (a lease running low is topped up by one).
            let least = limit.meter.typical().max(1);
            // A window that ended starts with a lease of one request in the new one, so the
            // traffic that rolls it does not wait, plus what requests in flight hold: they
            // settle into the new window, and its lease must cover them.
            let in_flight = limit.meter.total().saturating_sub(limit.meter.settled()).max(0);
            let want = match wanted {
                Some(need) => need.saturating_sub(limit.meter.headroom()).max(least),
                None => least.saturating_add(in_flight),
            };
            asks.push(Ask {
                limit: limit.clone(),
                want,
                need,
            });
        }
        for ask in &asks {
            self.fetch(ask);
        }
        // Requests waiting for these fetches ask again now, not after the report's reads.
        self.signal.end_round();
        for ask in &asks {
            ask.limit.meter.fetch_ended();
        }
        if report {
            self.report(&limits);
        }
    }

    fn fetch(&self, ask: &Ask) {
        let meter = &ask.limit.meter;
        let window = ask.limit.window;
        let window_of = move |now: i64, anchor: Option<i64>| match anchor {
            Some(anchor) => window.containing(now, anchor),
            None => window.first(now),
        };
        let begun = Instant::now();
        let result = self.store.lease_grant(
            &self.node,
            &LeaseAsk {
                counter_id: meter.id(),
                unit: meter.unit().as_str(),
                max: ask.limit.max,
                want: ask.want,
                held: if meter.cap() == i64::MAX {
                    0
                } else {
                    meter.headroom().max(0)
                },
                least: meter.typical().max(1),
                fraction: self.settings.lease_fraction,
                ttl_seconds: self.ttl(),
                window: &window_of,
            },
        );
        self.metrics.fetch_seconds.observe(begun.elapsed().as_secs_f64());
        match result {
            Ok(grant) => {
                self.store_answered();
                self.granted(ask, &grant);
            }
            Err(e) => {
                self.metrics.fetches.with_label_values(&[meter.id(), "error"]).inc();
                self.store_failed(&e.to_string());
            }
        }
    }

    fn granted(&self, ask: &Ask, grant: &LeaseGrant) {
        let meter = &ask.limit.meter;
        meter.fetch_answered();
        let result = if grant.granted > 0 { "granted" } else { "empty" };
        if ask.want > 0 {
            self.metrics.fetches.with_label_values(&[meter.id(), result]).inc();
        }
        // Topped up again when less than half of the room after this grant is left.
        let low_water = (meter.headroom().max(0).saturating_add(grant.granted)) / 2;
        let Ok(mut tracked) = self.tracked.lock() else {
            return;
        };
        let entry = tracked.entry(meter.id().to_string()).or_insert_with(|| Tracked {
            granted: 0,
            last_total: 0,
            quiet_since: Instant::now(),
        });
        if grant.window_start != meter.window_start() {
            meter.adopt_window(grant.window_start, grant.window_end, grant.granted, low_water);
            entry.granted = grant.granted;
        } else {
            meter.add_lease(grant.granted, low_water);
            entry.granted = entry.granted.saturating_add(grant.granted);
        }
        entry.quiet_since = Instant::now();
        meter.set_global(grant.spent);
        if grant.granted > 0 {
            meter.need_covered();
        }
        if ask.want > 0 && grant.granted == 0 {
            meter.set_dry(true);
            // What this node holds cannot serve the request that asked: handed back, so the
            // last of the limit can come together on one node.
            if ask.need > meter.headroom() {
                let taken = meter.take_headroom(0);
                if taken > 0 {
                    entry.granted -= taken;
                    drop(tracked);
                    self.give_back(meter, taken);
                }
            }
        } else {
            meter.set_dry(false);
        }
    }

    /// Hands `amount` of `meter`'s lease back to the store. On failure it stays off the meter
    /// and counted in the store (the update may have landed): parked, never spent twice, until
    /// the node's leases are released or the window ends.
    fn give_back(&self, meter: &asbru_filters::policy::Meter, amount: i64) {
        match self
            .store
            .lease_return(&self.node, meter.id(), meter.window_start(), amount)
        {
            Ok(()) => self.store_answered(),
            Err(e) => {
                tracing::warn!(meter = meter.id(), amount, "a lease could not be handed back: {e}");
                self.store_failed(&e.to_string());
            }
        }
    }

    /// Renews this node's leases and reads, per meter, the usage over all nodes and the
    /// stranded leases, each with its window's start.
    fn renew_and_read(&self) -> Result<(Ledger, Ledger), asbru_store::backend::StoreError> {
        self.store.lease_renew(&self.node, self.ttl())?;
        let usage = self
            .store
            .load_usage()?
            .into_iter()
            .map(|r| (r.counter_id, (r.value, r.window_start)))
            .collect();
        let stranded = self
            .store
            .lease_totals()?
            .into_iter()
            .map(|t| (t.counter_id, (t.stranded, t.window_start)))
            .collect();
        Ok((usage, stranded))
    }

    fn report(&self, limits: &[MeterLimit]) {
        let (usage, stranded) = match self.renew_and_read() {
            Ok(read) => {
                self.store_answered();
                read
            }
            Err(e) => {
                self.store_failed(&e.to_string());
                return;
            }
        };
        let idle = Duration::from_secs(self.settings.idle_return_seconds);
        let mut give_back = Vec::new();
        if let Ok(mut tracked) = self.tracked.lock() {
            for limit in limits {
                let meter = &limit.meter;
                let start = meter.window_start();
                let spent = usage.get(meter.id()).filter(|u| u.1 == start).map_or(0, |u| u.0);
                let lost = stranded.get(meter.id()).filter(|s| s.1 == start).map_or(0, |s| s.0);
                // A dead node's lease is counted as spent: nothing can be spent past the limit.
                meter.set_global(spent.saturating_add(lost));
                self.metrics
                    .global_usage
                    .with_label_values(&[meter.id()])
                    .set(spent.saturating_add(lost));
                self.metrics.stranded.with_label_values(&[meter.id()]).set(lost);
                let Some(entry) = tracked.get_mut(meter.id()) else {
                    continue;
                };
                let total = meter.total();
                let quiet = total == entry.last_total;
                if !quiet {
                    entry.last_total = total;
                    entry.quiet_since = Instant::now();
                }
                // A lease left idle goes back; so does room too small for one typical request,
                // which another node may put together with what it holds.
                let idle_now = quiet && entry.quiet_since.elapsed() >= idle;
                let fragment = meter.headroom() > 0 && meter.headroom() < meter.typical();
                if meter.cap() != i64::MAX && (idle_now || fragment) {
                    let taken = meter.take_headroom(0);
                    if taken > 0 {
                        entry.granted -= taken;
                        give_back.push((meter.clone(), taken));
                    }
                }
                let held = if meter.cap() == i64::MAX { 0 } else { meter.headroom() };
                self.metrics.lease_held.with_label_values(&[meter.id()]).set(held);
            }
        }
        for (meter, amount) in give_back {
            self.give_back(&meter, amount);
        }
    }

    fn store_answered(&self) {
        let was_down = self.down_since.lock().ok().and_then(|mut since| since.take());
        if was_down.is_some() {
            self.metrics.store_up.set(1);
            self.signal.set_open(false);
            tracing::info!("cluster store reachable again: leases resume");
        }
    }

    fn store_failed(&self, error: &str) {
        let Ok(mut since) = self.down_since.lock() else {
            return;
        };
        let first = since.is_none();
        let began = *since.get_or_insert_with(Instant::now);
        drop(since);
        if first {
            self.metrics.store_up.set(0);
            match self.settings.on_store_down {
                StoreDown::FailClosed => tracing::error!(
                    "cluster store unreachable ({error}): serving within the leases held, then refusing (on_store_down: fail_closed)"
                ),
                StoreDown::FailOpen => tracing::error!(
                    "cluster store unreachable ({error}): serving within the leases held; if it stays down, admitting against each limit on this node alone (on_store_down: fail_open)"
                ),
            }
        }
        if self.settings.on_store_down == StoreDown::FailOpen
            && began.elapsed() >= OPEN_AFTER
            && !asbru_filters::policy::meter::LeaseSource::open(self.signal.as_ref())
        {
            self.signal.set_open(true);
            tracing::error!(
                "cluster store still down: admitting against each limit on this node alone until it is back"
            );
        }
    }
}

/// After the server stopped (every request finished): this node's journal is added to the
/// store, then its leases are released, so nothing it held stays parked. When the flush fails,
/// the leases stay counted and the next start on this data dir settles them.
pub fn release_at_exit(state: &Gateway) {
    let cluster = state
        .file
        .governance
        .as_ref()
        .and_then(|g| g.cluster.as_ref())
        .is_some_and(|c| c.enabled);
    let (Some(journal), Some(store)) = (&state.spend_journal, &state.store) else {
        return;
    };
    if !cluster {
        return;
    }
    match journal.flush(store.as_ref()) {
        Ok(_) => match store.lease_release_node(journal.owner()) {
            Ok(_) => tracing::info!("cluster leases released"),
            Err(e) => tracing::warn!("cluster leases not released (the next start settles them): {e}"),
        },
        Err(e) => tracing::warn!("spend journal not flushed, cluster leases kept for the next start: {e}"),
    }
}

/// The background service: rounds until shutdown, then the leases' unused room handed back.
pub struct LeaseService(pub Arc<LeaseManager>);

#[async_trait]
impl BackgroundService for LeaseService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let manager = self.0.clone();
        let mut last_report = Instant::now() - REPORT;
        let mut stopping = false;
        // The first round runs at once: it opens the store connection and reads the usage over
        // all nodes before the first request needs a lease.
        let mut first = true;
        loop {
            // Requests are still served through the grace period after a stop was asked for:
            // rounds go on until the server drops this task, and the leases are released
            // after the last request (`release_at_exit`).
            if !std::mem::take(&mut first) {
                tokio::select! {
                    _ = manager.signal.woken(ROUND) => {}
                    _ = shutdown.changed(), if !stopping => stopping = true,
                }
            }
            let report = last_report.elapsed() >= REPORT;
            if report {
                last_report = Instant::now();
            }
            let worker = manager.clone();
            if tokio::task::spawn_blocking(move || worker.round(report)).await.is_err() {
                tracing::warn!("a cluster lease round failed");
            }
        }
    }
}
