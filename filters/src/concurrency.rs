//! Per-provider concurrency control, Bifrost's `concurrency_and_buffer_size`: at most
//! `concurrency` requests to one provider are in flight; up to `buffer_size` more wait for a
//! slot. Past that, a request is refused at once with 429 when `client.drop_excess_requests` is
//! true, and otherwise waits too (as Bifrost's queue blocks its sender). Every wait is bounded by
//! the request's deadline.
//!
//! A slot is taken with one atomic compare-and-swap when one is free; only a request that has to
//! wait touches the semaphore's wait list. A provider without the setting has no gate at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The gate in front of one provider.
#[derive(Debug)]
pub struct ConcurrencyGate {
    slots: Arc<Semaphore>,
    /// Most requests in flight.
    pub concurrency: usize,
    /// Most requests waiting for a slot.
    pub buffer_size: usize,
    /// Refuse a request the queue cannot hold instead of letting it wait.
    pub drop_excess: bool,
    waiting: AtomicUsize,
}

/// Why a request did not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRefusal {
    /// The wait queue is full and excess requests are dropped.
    QueueFull,
    /// No slot came free before the request's deadline.
    TimedOut,
}

/// A slot held for the length of one exchange with the provider; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConcurrencyGate {
    /// A gate; a zero concurrency is taken as one.
    pub fn new(concurrency: usize, buffer_size: usize, drop_excess: bool) -> ConcurrencyGate {
        let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        ConcurrencyGate {
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            buffer_size,
            drop_excess,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    /// Takes a slot, waiting for one until `deadline` if none is free.
    pub async fn enter(&self, deadline: Instant) -> Result<Slot, GateRefusal> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.buffer_size && self.drop_excess {
            return Err(GateRefusal::QueueFull);
        }
        match tokio::time::timeout_at(deadline.into(), self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot { _permit: permit }),
            // The semaphore is never closed; a closed one cannot serve either way.
            Ok(Err(_)) | Err(_) => Err(GateRefusal::TimedOut),
        }
    }
}

/// The gates of the providers served, kept across config rebuilds: a rebuild with the same
/// settings for a provider keeps its gate (and so its requests in flight and waiting); changed
/// settings start a new one. Touched only when a config is installed, never per request.
#[derive(Debug, Default)]
pub struct GateBoard {
    gates: std::sync::Mutex<std::collections::HashMap<String, Arc<ConcurrencyGate>>>,
}

impl GateBoard {
    /// The gate to serve `provider` with: the kept one when `fresh` has its settings, else `fresh`.
    pub fn keep(&self, provider: &str, fresh: &Arc<ConcurrencyGate>) -> Arc<ConcurrencyGate> {
        let mut gates = self.gates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match gates.get(provider) {
            Some(kept)
                if kept.concurrency == fresh.concurrency
                    && kept.buffer_size == fresh.buffer_size
                    && kept.drop_excess == fresh.drop_excess =>
            {
                kept.clone()
            }
            _ => {
                gates.insert(provider.to_string(), fresh.clone());
                fresh.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn past_the_queue_requests_are_dropped_or_wait() {
        let gate = Arc::new(ConcurrencyGate::new(1, 1, true));
        let soon = || Instant::now() + Duration::from_millis(200);
        let held = gate.enter(soon()).await.expect("a free slot");
        assert_eq!(gate.in_flight(), 1);
        // One waits in the queue ...
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Instant::now() + Duration::from_secs(5)).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gate.waiting(), 1);
        // ... and the next is dropped at once.
        assert_eq!(gate.enter(soon()).await.err(), Some(GateRefusal::QueueFull));
        drop(held);
        assert_eq!(waiter.await.expect("join"), Ok(()));
        assert_eq!(gate.waiting(), 0);

        // Without drop_excess the excess waits, bounded by its deadline.
        let gate = ConcurrencyGate::new(1, 0, false);
        let _held = gate.enter(soon()).await.expect("slot");
        let started = Instant::now();
        assert_eq!(gate.enter(soon()).await.err(), Some(GateRefusal::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
