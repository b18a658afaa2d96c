//! Lock-free meters: the live usage of one budget (micro-dollars) or one side of a rate limit
//! (tokens or requests) in its current window.
//!
//! A meter keeps two atomics: `settled`, what has been charged in this window, and `total`,
//! `settled` plus every reservation still in flight. Admission is one compare-and-swap on
//! `total`, so concurrent requests can never reserve past the cap; settling moves a
//! reservation's amount from held to settled and gives back the difference. Every update is an
//! atomic add, so the invariant `total = settled + held` holds once concurrent updates land.
//!
//! Meters live in a [`Registry`] outside the snapshot, keyed by id, so a config change keeps
//! the usage of every id that survives it.
//!
//! In cluster mode (`governance.cluster`) a meter is *leased*: besides the limit it is checked
//! against a `cap`, the share of the limit this node holds ([`LeaseSource`] fetches it, in the
//! background). `total` then counts this node's own usage in the window, windows change only
//! when a grant says the database rolled them, and a meter short of its lease or running low
//! wakes the lease source. Outside cluster mode the cap is `i64::MAX` and costs one load.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use asbru_config::usage::{SpendKind, UsageRecord};

use super::window::Window;

/// What a meter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Micro-dollars.
    UsdMicros,
    /// Tokens.
    Tokens,
    /// Requests.
    Requests,
}

impl Unit {
    /// The persisted spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::UsdMicros => "usd_micros",
            Unit::Tokens => "tokens",
            Unit::Requests => "requests",
        }
    }
}

/// One change to a meter, for the spend journal.
#[derive(Debug, Clone, Copy)]
pub struct Spent<'a> {
    /// The meter's id.
    pub meter: &'a str,
    /// What it counts.
    pub unit: Unit,
    /// Start of the window the change belongs to.
    pub window_start: i64,
    /// End of that window.
    pub window_end: i64,
    /// The change.
    pub kind: SpendKind,
}

/// Where settled spend is written before a reply ends, so a killed process loses none of it:
/// an append-only journal of this process, turned into additions to the store by the usage
/// flush. Implemented by the gateway; one call per settlement.
pub trait SpendJournal: Send + Sync + std::fmt::Debug {
    /// Appends the changes of one settlement.
    fn append(&self, changes: &[Spent<'_>]);
}

/// Where a leased meter's share of its limit comes from (the gateway's cluster lease manager).
/// Called from the request path: each method only flips flags and wakes a task.
pub trait LeaseSource: Send + Sync + std::fmt::Debug {
    /// A meter ran short of its lease, or low: fetch more in the background.
    fn wake(&self);
    /// The fetch round a refused request can wait for: `Some(mark)` while a fetch a shortfall
    /// asked for is pending, `None` when waiting would not help.
    fn pending(&self) -> Option<u64>;
    /// Completes once the fetch round after `mark` has ended, or its bound passes: the
    /// configured wait, or a longer one for a `first` fetch (a meter the store has not answered
    /// for yet, whose fetch may open a connection on a node just started).
    fn after(&self, mark: u64, first: bool) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
    /// Fetch rounds ended so far. A refusal compares it with its value before admission: a
    /// round that ended in between may have brought the room the refusal lacked.
    fn rounds_ended(&self) -> u64;
    /// The store has been down long enough and `on_store_down` is `fail_open`: leased meters
    /// admit against their limits alone.
    fn open(&self) -> bool;
}

/// One meter's live state.
#[derive(Debug)]
pub struct Meter {
    id: String,
    unit: Unit,
    total: AtomicI64,
    settled: AtomicI64,
    window_start: AtomicI64,
    window_end: AtomicI64,
    dirty: AtomicBool,
    /// The last config build that used this meter.
    generation: AtomicU64,
    /// The most `total` may reach on this node: the lease held (`i64::MAX` when not leased).
    cap: AtomicI64,
    /// Leased meters: who fetches the lease.
    lease: Option<Arc<dyn LeaseSource>>,
    /// A lease with less room than this left is topped up in the background.
    low_water: AtomicI64,
    /// A fetch was asked for and has not been made yet.
    wanted: AtomicBool,
    /// A fetch was taken by a round that has not ended yet.
    fetching: AtomicBool,
    /// The store has answered a fetch for this meter since the process started.
    answered: AtomicBool,
    /// What the requests refused since the last fetch needed, added up.
    need: AtomicI64,
    /// The database had no room at the last fetch: shortfalls are refused without waiting
    /// until the next periodic fetch.
    dry: AtomicBool,
    /// Usage over every node, as last read from the database (-1: not read yet).
    global: AtomicI64,
    /// The amount the last request reserved (leased meters): leases are fetched in multiples
    /// of it, so a lease never ends in a fragment no request can use.
    typical: AtomicI64,
}

impl Meter {
    fn new(id: String, unit: Unit, settled: i64, window: (i64, i64)) -> Meter {
        Meter {
            id,
            unit,
            total: AtomicI64::new(settled),
            settled: AtomicI64::new(settled),
            window_start: AtomicI64::new(window.0),
            window_end: AtomicI64::new(window.1),
            dirty: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            cap: AtomicI64::new(i64::MAX),
            lease: None,
            low_water: AtomicI64::new(0),
            wanted: AtomicBool::new(false),
            fetching: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            need: AtomicI64::new(0),
            dry: AtomicBool::new(false),
            global: AtomicI64::new(-1),
            typical: AtomicI64::new(1),
        }
    }

    fn leased(mut self, source: Arc<dyn LeaseSource>) -> Meter {
        self.lease = Some(source);
        self.cap = AtomicI64::new(0);
        self
    }

    /// Whether this meter is metered across nodes by leases.
    pub fn is_leased(&self) -> bool {
        self.lease.is_some()
    }

    /// A refusal for lack of lease (the limit itself had room for `amount`): ask for a fetch.
    fn short(&self, current: i64, amount: i64, max: i64) {
        let Some(source) = &self.lease else {
            return;
        };
        if current.saturating_add(amount.max(1)) > max || self.dry.load(Ordering::Acquire) {
            return;
        }
        self.typical.store(amount.max(1), Ordering::Relaxed);
        // Every refused request's need adds up: the fetch asks for what the burst needs.
        self.need.fetch_add(amount.max(1), Ordering::AcqRel);
        if !self.wanted.swap(true, Ordering::AcqRel) {
            source.wake();
        }
    }

    /// An admission of `amount` left `room` of the lease: top it up in the background when
    /// it runs low.
    fn after_admit(&self, amount: i64, room: i64) {
        if let Some(source) = &self.lease {
            if self.typical.load(Ordering::Relaxed) != amount {
                self.typical.store(amount.max(1), Ordering::Relaxed);
            }
            if room < self.low_water.load(Ordering::Relaxed) && !self.wanted.swap(true, Ordering::AcqRel) {
                source.wake();
            }
        }
    }

    /// The amount a request of this meter typically reserves (the last one's).
    pub fn typical(&self) -> i64 {
        self.typical.load(Ordering::Relaxed)
    }

    /// A leased meter whose lease has no room for `amount` asks for a fetch (as a refusal
    /// would); nothing otherwise.
    pub fn ask_lease(&self, amount: i64, max: i64) {
        let current = self.total.load(Ordering::Acquire);
        // A request that costs nothing (a model with no price) still needs room: a meter at its
        // cap refuses it (see `reserve_within`), so an empty lease is short for it too.
        if self.lease.is_some() && current.saturating_add(amount.max(1)) > self.cap() {
            self.short(current, amount, max);
        }
    }

    /// Whether a refusal of this meter could clear once a lease fetch ends (a shortfall was
    /// flagged and the database was not found dry).
    pub fn lease_pending(&self) -> bool {
        self.lease.is_some()
            && (self.wanted.load(Ordering::Acquire) || self.fetching.load(Ordering::Acquire))
            && !self.dry.load(Ordering::Acquire)
    }

    /// The meter's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the meter counts.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// Starts a new window if the current one has ended at `now`. The thread that wins the
    /// compare-and-swap on the window's end clears the settled amount; reservations in flight
    /// stay held.
    pub fn roll(&self, window: &Window, now: i64) {
        let end = self.window_end.load(Ordering::Acquire);
        // A leased meter's windows are decided by the database (see the module doc).
        if now < end || self.lease.is_some() {
            return;
        }
        let (start, new_end) = window.containing(now, self.window_start.load(Ordering::Acquire));
        if self
            .window_end
            .compare_exchange(end, new_end, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.window_start.store(start, Ordering::Release);
            let cleared = self.settled.swap(0, Ordering::AcqRel);
            self.total.fetch_sub(cleared, Ordering::AcqRel);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Reserves `amount` if the meter stays within `max`: refused when the meter is already at
    /// its cap, or when the amount would take it past. Returns the usage with this reservation,
    /// or the usage seen when refused.
    pub fn try_reserve(&self, amount: i64, max: i64) -> Result<i64, i64> {
        let limit = self.limit(max);
        let reserved = self.reserve_within(amount, limit);
        if limit < max {
            match reserved {
                Ok(used) => self.after_admit(amount, limit - used),
                Err(current) => self.short(current, amount, max),
            }
        }
        reserved
    }

    /// One compare-and-swap loop on `total`: adds `amount` if it stays within `limit`. Returns
    /// the total with it, or the total seen when refused.
    fn reserve_within(&self, amount: i64, limit: i64) -> Result<i64, i64> {
        let mut current = self.total.load(Ordering::Acquire);
        loop {
            if current >= limit || current.saturating_add(amount) > limit {
                return Err(current);
            }
            match self
                .total
                .compare_exchange_weak(current, current + amount, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(current + amount),
                Err(seen) => current = seen,
            }
        }
    }

    /// Refused when the meter is already at `max` (tokens are counted after the response), or
    /// at its lease.
    pub fn check_below(&self, max: i64) -> Result<(), i64> {
        let limit = self.limit(max);
        let current = self.total.load(Ordering::Acquire);
        if current >= limit {
            if limit < max {
                self.short(current, 1, max);
            }
            Err(current)
        } else {
            if limit < max {
                self.after_admit(1, limit - current);
            }
            Ok(())
        }
    }

    /// What admission checks against: the limit, or the lease when it is lower (unless the
    /// lease source is failing open).
    fn limit(&self, max: i64) -> i64 {
        let cap = self.cap.load(Ordering::Acquire);
        if cap < max && self.lease.as_ref().is_some_and(|source| source.open()) {
            return max;
        }
        max.min(cap)
    }

    /// The lease held (`i64::MAX` when not leased).
    pub fn cap(&self) -> i64 {
        self.cap.load(Ordering::Acquire)
    }

    /// Sets the lease held (the lease manager only).
    pub fn set_cap(&self, cap: i64) {
        self.cap.store(cap, Ordering::Release);
    }

    /// Adds a granted slice to the lease held, and sets the level below which it is topped up.
    pub fn add_lease(&self, slice: i64, low_water: i64) {
        self.cap.fetch_add(slice, Ordering::AcqRel);
        self.low_water.store(low_water, Ordering::Release);
    }

    /// Moves a leased meter into the window the database decided: this node's usage of the old
    /// window is cleared (reservations in flight stay held) and the lease is `slice` alone.
    pub fn adopt_window(&self, start: i64, end: i64, slice: i64, low_water: i64) {
        // No admission between the old lease and the new: the cap is closed first, and the
        // old window's usage leaves `total` only after.
        self.cap.store(0, Ordering::Release);
        self.window_start.store(start, Ordering::Release);
        self.window_end.store(end, Ordering::Release);
        let cleared = self.settled.swap(0, Ordering::AcqRel);
        self.total.fetch_sub(cleared, Ordering::AcqRel);
        self.cap.store(slice, Ordering::Release);
        self.low_water.store(low_water, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
    }

    /// Takes the fetch a shortfall or a low lease asked for: what the refused requests needed
    /// (0 when it was only running low), or `None` when none was asked.
    pub fn take_wanted(&self) -> Option<i64> {
        if !self.wanted.load(Ordering::Acquire) {
            return None;
        }
        // Marked as being fetched before the want is cleared: a refusal checking in between
        // sees one or the other.
        self.fetching.store(true, Ordering::Release);
        let need = self.need.swap(0, Ordering::AcqRel);
        self.wanted.store(false, Ordering::Release);
        Some(need)
    }

    /// The store answered a fetch for this meter (with room or without).
    pub fn fetch_answered(&self) {
        self.answered.store(true, Ordering::Release);
    }

    /// Whether the store has answered a fetch for this meter since the process started.
    pub fn fetch_was_answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    /// Whether a fetch is pending for this meter and the store has never answered one: the
    /// first of a node just started.
    pub fn first_lease_pending(&self) -> bool {
        self.lease_pending() && !self.answered.load(Ordering::Acquire)
    }

    /// The round that took this meter's fetch has ended (called after its end is signalled,
    /// so a refusal sees the fetch pending or the round ended).
    pub fn fetch_ended(&self) {
        self.fetching.store(false, Ordering::Release);
    }

    /// After a grant: requests refused while it was being fetched are served by the room it
    /// brought when that covers them (they ask again as the round ends), so they are not
    /// fetched for twice.
    pub fn need_covered(&self) {
        if self.need.load(Ordering::Acquire) <= self.headroom() {
            self.need.store(0, Ordering::Release);
            self.wanted.store(false, Ordering::Release);
        }
    }

    /// Whether the database had no room at the last fetch.
    pub fn set_dry(&self, dry: bool) {
        self.dry.store(dry, Ordering::Release);
    }

    /// Whether the database had no room at the last fetch.
    pub fn is_dry(&self) -> bool {
        self.dry.load(Ordering::Acquire)
    }

    /// Room left on the lease.
    pub fn headroom(&self) -> i64 {
        self.cap().saturating_sub(self.total())
    }

    /// Takes the lease's unused room above `keep` off the lease, for handing back: reserved
    /// first (so no admission can use it meanwhile), then taken off the cap. Returns the
    /// amount taken.
    pub fn take_headroom(&self, keep: i64) -> i64 {
        let cap = self.cap();
        if cap == i64::MAX {
            return 0;
        }
        let amount = cap.saturating_sub(self.total()).saturating_sub(keep.max(0));
        if amount <= 0 {
            return 0;
        }
        if self.reserve_within(amount, cap).is_err() {
            return 0;
        }
        self.cap.fetch_sub(amount, Ordering::AcqRel);
        self.total.fetch_sub(amount, Ordering::AcqRel);
        amount
    }

    /// Usage over every node, as last read from the database.
    pub fn global(&self) -> Option<i64> {
        let v = self.global.load(Ordering::Acquire);
        (v >= 0).then_some(v)
    }

    /// Records the usage over every node.
    pub fn set_global(&self, value: i64) {
        self.global.store(value.max(0), Ordering::Release);
    }

    /// Turns a reservation of `reserved` into a charge of `actual`.
    pub fn settle(&self, reserved: i64, actual: i64) {
        self.settled.fetch_add(actual, Ordering::AcqRel);
        self.total.fetch_add(actual - reserved, Ordering::AcqRel);
        self.dirty.store(true, Ordering::Release);
    }

    /// Adds usage another process settled (read back from the store): counted against the
    /// limit here, never journaled again by this process.
    pub fn absorb(&self, amount: i64) {
        self.settled.fetch_add(amount, Ordering::AcqRel);
        self.total.fetch_add(amount, Ordering::AcqRel);
    }

    /// Gives back a reservation.
    pub fn release(&self, reserved: i64) {
        self.total.fetch_sub(reserved, Ordering::AcqRel);
    }

    /// Settled usage in the current window.
    pub fn settled(&self) -> i64 {
        self.settled.load(Ordering::Acquire)
    }

    /// Settled usage plus reservations in flight.
    pub fn total(&self) -> i64 {
        self.total.load(Ordering::Acquire)
    }

    /// Start of the current window.
    pub fn window_start(&self) -> i64 {
        self.window_start.load(Ordering::Acquire)
    }

    /// End of the current window.
    pub fn window_end(&self) -> i64 {
        self.window_end.load(Ordering::Acquire)
    }

    fn record(&self) -> UsageRecord {
        UsageRecord {
            counter_id: self.id.clone(),
            unit: self.unit.as_str().to_string(),
            value: self.settled(),
            window_start: self.window_start(),
            window_end: self.window_end(),
        }
    }
}

/// What [`Registry::absorb`] did with another process's spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absorbed {
    /// Added to the live meter.
    Added,
    /// The meter is still in an earlier window: to be counted after it rolls.
    Behind,
    /// Nothing to add here (no such meter yet, another unit, an older window, nothing new).
    Skipped,
}

/// Every meter, by id. Locked only when a snapshot is built and when usage is flushed, never
/// by a request.
#[derive(Debug, Default)]
pub struct Registry {
    meters: Mutex<HashMap<String, Arc<Meter>>>,
    /// The spend journal settlements are written to, when usage is persisted.
    journal: OnceLock<Arc<dyn SpendJournal>>,
    /// Cluster mode: meters are leased from this source.
    leases: OnceLock<Arc<dyn LeaseSource>>,
    /// Meters whose config-given usage was journaled by this process: a meter dropped by a
    /// rebuild and created again must not set its value back to the config's.
    initial_journaled: Mutex<std::collections::HashSet<String>>,
    restored: Mutex<HashMap<String, UsageRecord>>,
    /// The config build in progress: meters it uses are marked with it, and the others dropped
    /// at its end. Builds are serialized by the gateway.
    generation: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Sets the spend journal (once, at start, before the first config is built).
    pub fn set_journal(&self, journal: Arc<dyn SpendJournal>) {
        let _ = self.journal.set(journal);
    }

    /// The spend journal, when usage is persisted.
    pub fn journal(&self) -> Option<Arc<dyn SpendJournal>> {
        self.journal.get().cloned()
    }

    /// Turns cluster mode on (once, at start, before the first config is built): every meter
    /// created from now on is leased from `source`.
    pub fn set_leases(&self, source: Arc<dyn LeaseSource>) {
        let _ = self.leases.set(source);
    }

    /// The lease source, in cluster mode.
    pub fn leases(&self) -> Option<Arc<dyn LeaseSource>> {
        self.leases.get().cloned()
    }

    /// Every meter (for the lease manager and reports).
    pub fn all(&self) -> Vec<Arc<Meter>> {
        match self.meters.lock() {
            Ok(meters) => meters.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }

    /// Seeds meters not yet created with persisted usage (read at start).
    pub fn restore(&self, records: Vec<UsageRecord>) {
        if let Ok(mut restored) = self.restored.lock() {
            for record in records {
                restored.insert(record.counter_id.clone(), record);
            }
        }
    }

    /// The meter `id`, created if new: from persisted usage when there is some, else from the
    /// config's own `initial` usage and window start, else empty with a window starting `now`.
    pub fn meter(&self, id: &str, unit: Unit, window: &Window, initial: (i64, Option<i64>), now: i64) -> Arc<Meter> {
        let mut meters = match self.meters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(meter) = meters.get(id) {
            meter.generation.store(generation, Ordering::Release);
            return meter.clone();
        }
        let restored = self.restored.lock().ok().and_then(|mut r| r.remove(id));
        let leases = self.leases.get();
        let meter = match restored.filter(|r| r.unit == unit.as_str()) {
            Some(record) => Meter::new(
                id.to_string(),
                unit,
                // A leased meter counts this node's usage only: the stored (all nodes') usage
                // is the database's side of the lease.
                if leases.is_some() { 0 } else { record.value },
                (record.window_start, window.end(record.window_start)),
            ),
            None => {
                let bounds = match initial.1 {
                    Some(start) => (start, window.end(start)),
                    None => window.first(now),
                };
                // Usage the config gives a new meter is persisted like a reset to that value
                // (not in cluster mode: a node joining later would wipe the others' spend).
                if initial.0 != 0
                    && leases.is_none()
                    && let Some(journal) = self.journal.get()
                    && self
                        .initial_journaled
                        .lock()
                        .is_ok_and(|mut done| done.insert(id.to_string()))
                {
                    journal.append(&[Spent {
                        meter: id,
                        unit,
                        window_start: bounds.0,
                        window_end: bounds.1,
                        kind: SpendKind::Set(initial.0),
                    }]);
                }
                Meter::new(
                    id.to_string(),
                    unit,
                    if leases.is_some() { 0 } else { initial.0 },
                    bounds,
                )
            }
        };
        let meter = match leases {
            Some(source) => meter.leased(source.clone()),
            None => meter,
        };
        meter.generation.store(generation, Ordering::Release);
        let meter = Arc::new(meter);
        meters.insert(id.to_string(), meter.clone());
        meter
    }

    /// Adds `delta` of usage settled by another process to the meter `record` names, when this
    /// process's window of it overlaps the record's; a meter not created yet starts from
    /// `record` instead.
    pub fn absorb(&self, record: &UsageRecord, delta: i64) -> Absorbed {
        let meter = match self.meters.lock() {
            Ok(meters) => meters.get(&record.counter_id).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&record.counter_id).cloned(),
        };
        let Some(meter) = meter else {
            if let Ok(mut restored) = self.restored.lock() {
                restored.insert(record.counter_id.clone(), record.clone());
            }
            return Absorbed::Skipped;
        };
        // A leased meter's other nodes are counted by the database's side of the lease.
        if meter.unit.as_str() != record.unit || meter.is_leased() {
            return Absorbed::Skipped;
        }
        let record_end = record.window_end.max(record.window_start + 1);
        if meter.window_end() <= record.window_start {
            // The store is in a window this process has not reached yet: counted once the
            // meter rolls into it.
            return Absorbed::Behind;
        }
        if meter.window_start() < record_end && delta > 0 {
            meter.absorb(delta);
            return Absorbed::Added;
        }
        Absorbed::Skipped
    }

    /// Starts a config build: meters asked for until [`Registry::end_build`] are kept.
    pub fn begin_build(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Ends a config build: drops the meters it did not use. Returns how many it used.
    pub fn end_build(&self) -> usize {
        let generation = self.generation.load(Ordering::Acquire);
        let Ok(mut meters) = self.meters.lock() else {
            return 0;
        };
        meters.retain(|_, m| m.generation.load(Ordering::Acquire) == generation);
        meters.len()
    }

    /// The state of every meter that changed since the last call (all of them with `all`).
    pub fn dirty_records(&self, all: bool) -> Vec<UsageRecord> {
        let Ok(meters) = self.meters.lock() else {
            return Vec::new();
        };
        meters
            .values()
            .filter(|m| m.dirty.swap(false, Ordering::AcqRel) || all)
            .map(|m| m.record())
            .collect()
    }

    /// Marks records as not yet persisted again (a flush failed).
    pub fn mark_dirty(&self, ids: &[String]) {
        if let Ok(meters) = self.meters.lock() {
            for id in ids {
                if let Some(m) = meters.get(id) {
                    m.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Zeroes the settled usage of the meters whose id `matches` (reservations in flight stay);
    /// returns how many were reset.
    pub fn reset_where(&self, matches: impl Fn(&str) -> bool) -> usize {
        let Ok(meters) = self.meters.lock() else {
            return 0;
        };
        let mut count = 0;
        for (_, meter) in meters.iter().filter(|(id, _)| matches(id)) {
            let settled = meter.settled.swap(0, Ordering::AcqRel);
            if meter.is_leased() {
                // The lease stays what it was (the cap moves first, so no admission can use
                // the room in between): the reset frees room in the database, which grants it
                // like any other.
                meter.cap.fetch_sub(settled, Ordering::AcqRel);
            }
            meter.total.fetch_sub(settled, Ordering::AcqRel);
            meter.dirty.store(true, Ordering::Release);
            if let Some(journal) = self.journal.get() {
                journal.append(&[Spent {
                    meter: &meter.id,
                    unit: meter.unit,
                    window_start: meter.window_start(),
                    window_end: meter.window_end(),
                    kind: SpendKind::Set(0),
                }]);
            }
            count += 1;
        }
        count
    }

    /// A meter by id, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Meter>> {
        self.meters.lock().ok()?.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window::parse("1h", false).expect("window")
    }

    #[test]
    fn resets_zero_settled_usage_only() {
        let registry = Registry::new();
        let budget = registry.meter("vk:a:budget:0", Unit::UsdMicros, &window(), (0, None), 0);
        let other = registry.meter("vk:b:budget:0", Unit::UsdMicros, &window(), (0, None), 0);
        budget.try_reserve(50, 100).expect("fits");
        budget.settle(50, 30);
        other.try_reserve(10, 100).expect("fits");
        other.settle(10, 10);
        assert_eq!(budget.settled(), 30);
        budget.try_reserve(20, 100).expect("in flight");
        assert_eq!(registry.reset_where(|id| id.starts_with("vk:a:")), 1);
        assert_eq!(
            (budget.settled(), budget.total()),
            (0, 20),
            "the reservation in flight stays"
        );
        assert_eq!(other.settled(), 10);
    }

    #[test]
    fn reserve_settle_release() {
        let registry = Registry::new();
        let m = registry.meter("b", Unit::UsdMicros, &window(), (0, None), 0);
        assert!(m.try_reserve(60, 100).is_ok());
        assert_eq!(m.try_reserve(50, 100), Err(60));
        m.settle(60, 40);
        assert_eq!((m.settled(), m.total()), (40, 40));
        assert!(m.try_reserve(60, 100).is_ok());
        assert_eq!(m.try_reserve(0, 100), Err(100), "at the cap nothing more is admitted");
        m.release(60);
        assert_eq!(m.total(), 40);
    }

    #[test]
    fn roll_clears_settled_but_keeps_reservations() {
        let registry = Registry::new();
        let m = registry.meter("b", Unit::UsdMicros, &window(), (0, None), 1000);
        m.settle(0, 70);
        assert!(m.try_reserve(20, 100).is_ok());
        m.roll(&window(), 1000 + 3599);
        assert_eq!(m.settled(), 70);
        m.roll(&window(), 1000 + 3600 * 2 + 1);
        assert_eq!((m.settled(), m.total(), m.window_start()), (0, 20, 1000 + 7200));
        m.settle(20, 5);
        assert_eq!((m.settled(), m.total()), (5, 5));
    }

    #[test]
    fn concurrent_reservations_never_pass_the_cap() {
        let registry = Registry::new();
        let m = registry.meter("b", Unit::UsdMicros, &window(), (0, None), 0);
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..1000).filter(|_| m.try_reserve(7, 10_000).is_ok()).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(admitted, 10_000 / 7);
        assert!(m.total() <= 10_000);
    }

    /// Counts wakes; never fetches.
    #[derive(Debug, Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl LeaseSource for Wakes {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn pending(&self) -> Option<u64> {
            None
        }
        fn after(&self, _mark: u64, _first: bool) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
            Box::pin(async {})
        }
        fn open(&self) -> bool {
            false
        }
        fn rounds_ended(&self) -> u64 {
            0
        }
    }

    #[test]
    fn an_empty_lease_is_short_even_for_a_request_that_costs_nothing() {
        let registry = Registry::new();
        let wakes = Arc::new(Wakes::default());
        registry.set_leases(wakes.clone());
        let first = registry.meter("vk:a:budget:0", Unit::UsdMicros, &window(), (0, None), 0);
        let second = registry.meter("team:t:budget:0", Unit::UsdMicros, &window(), (0, None), 0);
        assert!(first.is_leased() && second.is_leased());
        // The first cap refuses (nothing leased yet) and asks; admission stops there, and
        // the other caps the request meets are asked for in the same breath.
        assert_eq!(first.try_reserve(0, 1_000), Err(0));
        second.ask_lease(0, 1_000);
        assert!(
            first.lease_pending() && second.lease_pending(),
            "both fetched in one round, not one round per cap"
        );
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert!(
            first.first_lease_pending(),
            "never answered: the longer first wait applies"
        );
        // A round takes the fetch: it stays pending until the round's end is signalled.
        assert_eq!(first.take_wanted(), Some(1));
        assert!(first.lease_pending(), "taken by a round still running");
        first.fetch_answered();
        first.add_lease(500, 0);
        assert!(first.lease_pending() && !first.first_lease_pending());
        first.fetch_ended();
        assert!(!first.lease_pending());
        // A meter really at its limit asks for nothing: no lease could help.
        let spent = registry.meter("vk:b:budget:0", Unit::UsdMicros, &window(), (0, None), 0);
        spent.add_lease(100, 0);
        assert!(spent.try_reserve(100, 100).is_ok());
        spent.ask_lease(0, 100);
        assert!(!spent.lease_pending());
    }

    #[test]
    fn restored_usage_and_dirty_tracking() {
        let registry = Registry::new();
        registry.restore(vec![UsageRecord {
            counter_id: "b".into(),
            unit: "usd_micros".into(),
            value: 33,
            window_start: 500,
            window_end: 0,
        }]);
        let m = registry.meter("b", Unit::UsdMicros, &window(), (0, None), 1000);
        assert_eq!((m.settled(), m.window_start()), (33, 500));
        assert!(registry.dirty_records(false).is_empty());
        m.settle(0, 1);
        let dirty = registry.dirty_records(false);
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].value, 34);
        assert!(registry.dirty_records(false).is_empty());
        assert_eq!(registry.dirty_records(true).len(), 1);
    }
}
