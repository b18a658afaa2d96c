//! Cluster metering leases (`governance.cluster`), on PostgreSQL: each node holds a share of a
//! meter's window, granted by one transaction that locks the meter's `governance_usage` row, so
//! the stored usage plus every node's lease never passes the limit.
//!
//! - A grant rolls the meter's window by the database's clock (every node agrees on resets),
//!   then hands out a slice of what is left: a fraction of it, at least what the node asked for,
//!   never more than what is left.
//! - A node's settled spend reaches `governance_usage` through its spend journal; the flush
//!   that adds it takes the same amount off the node's lease in the same transaction
//!   ([`take_flushed_spend`]), so usage plus leases stays constant.
//! - A lease is handed back ([`ConfigStore::lease_return`](super::ConfigStore::lease_return))
//!   only by the node that holds it, or by the process that replays a dead node's journal after
//!   adding its spend. A lease not renewed within its TTL stays counted: it is shown as
//!   stranded, never returned blind.

use std::collections::BTreeMap;

use asbru_config::usage::{SpendEntry, SpendKind, UsageRecord};
use r2d2_postgres::postgres;

use super::StoreError;

/// What a node asks of one meter.
pub struct LeaseAsk<'a> {
    /// The meter's id.
    pub counter_id: &'a str,
    /// `usd_micros`, `tokens` or `requests`.
    pub unit: &'a str,
    /// The limit in force.
    pub max: i64,
    /// What the node wants beyond the room it holds (0: only the window is checked).
    pub want: i64,
    /// The unused room of the node's lease: a grant tops the lease up to one slice, never
    /// beyond, so a node that dies strands at most one slice.
    pub held: i64,
    /// The least amount worth granting (one request's): a grant is a multiple of it.
    pub least: i64,
    /// Share of what is left one grant takes.
    pub fraction: f64,
    /// Seconds the lease stays fresh without renewal.
    pub ttl_seconds: i64,
    /// The window holding a Unix second, given the stored window's start (the lattice anchor),
    /// or the first window when nothing is stored.
    pub window: &'a (dyn Fn(i64, Option<i64>) -> (i64, i64) + Sync),
}

/// What a grant found and gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The meter's current window, as the database decided it.
    pub window_start: i64,
    /// Its end.
    pub window_end: i64,
    /// Added to this node's lease now (0: nothing was left, or nothing was asked).
    pub granted: i64,
    /// Usage stored for the window (every node's flushed spend).
    pub spent: i64,
    /// Every node's lease in the window after this grant.
    pub leased: i64,
}

/// One meter's leases over all nodes, as [`ConfigStore::lease_totals`](super::ConfigStore::lease_totals) reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseTotals {
    /// The meter's id.
    pub counter_id: String,
    /// Window the leases belong to.
    pub window_start: i64,
    /// Leases held.
    pub leased: i64,
    /// Of those, leases not renewed within their TTL (a node presumed dead).
    pub stranded: i64,
}

/// What a grant hands out to a node holding `held` unused: enough to bring its room up to one
/// slice (`fraction` of what is left, its own room counted in) or to what it wants, whichever is
/// more; at most what is left, in whole multiples of `least` (one request's amount); nothing
/// when not even `least` is left.
pub fn slice(remaining: i64, held: i64, want: i64, least: i64, fraction: f64) -> i64 {
    let least = least.max(1);
    let held = held.max(0);
    if want <= 0 || remaining < least {
        return 0;
    }
    let share = (remaining.saturating_add(held) as f64 * fraction).floor() as i64;
    let top_up = share.saturating_sub(held).max(want).min(remaining);
    (top_up - top_up % least).max(least)
}

/// The node (`<pid>-<start tag>`) a spend journal segment belongs to: segments are named
/// `<pid>-<start tag>-<sequence>`.
pub fn segment_owner(segment: &str) -> &str {
    match segment.match_indices('-').nth(1) {
        Some((at, _)) => &segment[..at],
        None => segment,
    }
}

fn db(e: postgres::Error) -> StoreError {
    super::pg_shared::db_error(e)
}

/// Grants `node` a slice of `ask`'s meter, in one transaction holding the meter's row lock.
pub(crate) fn grant(conn: &mut postgres::Client, node: &str, ask: &LeaseAsk<'_>) -> Result<LeaseGrant, StoreError> {
    let mut tx = conn.transaction().map_err(db)?;
    tx.execute(
        "INSERT INTO governance_usage (counter_id, doc_json) VALUES ($1, '{}') ON CONFLICT (counter_id) DO NOTHING",
        &[&ask.counter_id],
    )
    .map_err(db)?;
    let row = tx
        .query_one(
            "SELECT doc_json, extract(epoch from clock_timestamp())::bigint FROM governance_usage WHERE counter_id = $1 FOR UPDATE",
            &[&ask.counter_id],
        )
        .map_err(db)?;
    let text: String = row.get(0);
    let now: i64 = row.get(1);
    let stored: Option<UsageRecord> = serde_json::from_str::<UsageRecord>(&text)
        .map_err(|e| StoreError::Corrupt(format!("usage row: {e}")))
        .map(Some)?
        .filter(|r| !r.counter_id.is_empty() && r.unit == ask.unit)
        .map(|mut r| {
            // A row written before windows had ends: its end from its start.
            if r.window_end == 0 {
                r.window_end = (ask.window)(r.window_start, Some(r.window_start)).1;
            }
            r
        });
    // The window, decided here by the database's clock.
    let record = match stored {
        Some(r) if r.window_end > now => r,
        previous => {
            let (window_start, window_end) = (ask.window)(now, previous.as_ref().map(|r| r.window_start));
            let fresh = UsageRecord {
                counter_id: ask.counter_id.to_string(),
                unit: ask.unit.to_string(),
                value: 0,
                window_start,
                window_end,
            };
            super::pg_shared::write_usage(&mut tx, &fresh)?;
            fresh
        }
    };
    // Leases of ended windows count for nothing.
    tx.execute(
        "DELETE FROM governance_leases WHERE counter_id = $1 AND window_start <> $2",
        &[&ask.counter_id, &record.window_start],
    )
    .map_err(db)?;
    let rows = tx
        .query(
            "SELECT node_id, amount FROM governance_leases WHERE counter_id = $1",
            &[&ask.counter_id],
        )
        .map_err(db)?;
    let leased: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
    let held = rows.iter().any(|r| r.get::<_, &str>(0) == node);
    let remaining = ask.max.saturating_sub(record.value).saturating_sub(leased);
    let granted = slice(remaining, ask.held, ask.want, ask.least, ask.fraction);
    if granted > 0 || held {
        tx.execute(
            "INSERT INTO governance_leases (counter_id, node_id, window_start, amount, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (counter_id, node_id) DO UPDATE
             SET amount = governance_leases.amount + excluded.amount, expires_at = excluded.expires_at",
            &[
                &ask.counter_id,
                &node,
                &record.window_start,
                &granted,
                &now.saturating_add(ask.ttl_seconds),
            ],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(LeaseGrant {
        window_start: record.window_start,
        window_end: record.window_end,
        granted,
        spent: record.value,
        leased: leased + granted,
    })
}

/// Takes `amount` off `node`'s lease of a meter's window (handed back unused).
pub(crate) fn give_back(
    conn: &mut postgres::Client,
    node: &str,
    counter_id: &str,
    window_start: i64,
    amount: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE governance_leases SET amount = GREATEST(amount - $4, 0) WHERE counter_id = $1 AND node_id = $2 AND window_start = $3",
        &[&counter_id, &node, &window_start, &amount],
    )
    .map_err(db)?;
    Ok(())
}

/// Renews every lease `node` holds for `ttl_seconds`.
pub(crate) fn renew(conn: &mut postgres::Client, node: &str, ttl_seconds: i64) -> Result<(), StoreError> {
    conn.execute(
        // Rows locked in meter order, as the spend flush locks them: the two never deadlock.
        "UPDATE governance_leases SET expires_at = extract(epoch from clock_timestamp())::bigint + $2
         WHERE (counter_id, node_id) IN (
             SELECT counter_id, node_id FROM governance_leases WHERE node_id = $1 ORDER BY counter_id FOR UPDATE)",
        &[&node, &ttl_seconds],
    )
    .map_err(db)?;
    Ok(())
}

/// Drops every lease of `node`: its spend is in `governance_usage` (it stopped, or its
/// journal was replayed), so what is left of its leases was never spent.
pub(crate) fn release_node(conn: &mut postgres::Client, node: &str) -> Result<u64, StoreError> {
    conn.execute("DELETE FROM governance_leases WHERE node_id = $1", &[&node])
        .map_err(db)
}

/// Every meter's leases over all nodes.
pub(crate) fn totals(conn: &mut postgres::Client) -> Result<Vec<LeaseTotals>, StoreError> {
    let rows = conn
        .query(
            "SELECT counter_id, window_start, COALESCE(SUM(amount), 0)::bigint,
                    COALESCE(SUM(CASE WHEN expires_at < extract(epoch from clock_timestamp())::bigint THEN amount ELSE 0 END), 0)::bigint
             FROM governance_leases GROUP BY counter_id, window_start ORDER BY counter_id",
            &[],
        )
        .map_err(db)?;
    Ok(rows
        .iter()
        .map(|r| LeaseTotals {
            counter_id: r.get(0),
            window_start: r.get(1),
            leased: r.get(2),
            stranded: r.get(3),
        })
        .collect())
}

/// In a spend flush's transaction: takes what `segment`'s node spent off its leases, window by
/// window, so the spend moves from lease to usage at once. Nothing to do (one cheap query)
/// when the node holds no lease.
pub(crate) fn take_flushed_spend(
    tx: &mut postgres::Transaction<'_>,
    segment: &str,
    entries: &[SpendEntry],
) -> Result<(), StoreError> {
    let node = segment_owner(segment);
    let holds = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM governance_leases WHERE node_id = $1)",
            &[&node],
        )
        .map_err(db)?;
    if !holds.get::<_, bool>(0) {
        return Ok(());
    }
    // In meter order, as `renew` locks them.
    let mut spent: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for entry in entries {
        if let SpendKind::Add(amount) = entry.kind
            && amount > 0
        {
            let slot = spent
                .entry((entry.counter_id.as_str(), entry.window_start))
                .or_default();
            *slot = slot.saturating_add(amount);
        }
    }
    for ((counter_id, window_start), amount) in spent {
        tx.execute(
            "UPDATE governance_leases SET amount = GREATEST(amount - $4, 0) WHERE counter_id = $1 AND node_id = $2 AND window_start = $3",
            &[&counter_id, &node, &window_start, &amount],
        )
        .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_shrink_near_the_limit_and_never_pass_it() {
        assert_eq!(slice(1_000, 0, 1, 1, 0.1), 100);
        assert_eq!(slice(50, 0, 1, 1, 0.1), 5);
        assert_eq!(slice(5, 0, 1, 1, 0.1), 1, "at least what was asked");
        assert_eq!(slice(5, 0, 3, 1, 0.1), 3);
        assert_eq!(slice(10, 0, 0, 1, 0.5), 0, "nothing asked, nothing granted");
        assert_eq!(slice(10, 0, 4, 1, 1.0), 10);
        // In whole requests: 27 left, requests of 6, a tenth is 2 -> one request's 6.
        assert_eq!(slice(27, 0, 1, 6, 0.1), 6);
        assert_eq!(
            slice(27, 0, 100, 6, 0.1),
            24,
            "a burst gets what is left, in whole requests"
        );
        assert_eq!(slice(5, 0, 6, 6, 0.1), 0, "nothing when not even one request fits");
    }

    #[test]
    fn a_top_up_never_takes_a_lease_past_one_slice() {
        // 900 left plus 100 held: a slice is 100, and the node holds it already.
        assert_eq!(slice(900, 100, 1, 1, 0.1), 1, "only what was asked");
        // Holding 40 of a slice of 100: topped up by 60.
        assert_eq!(slice(960, 40, 1, 1, 0.1), 60);
        // Waiting requests that need more than a slice still get what they need.
        assert_eq!(slice(960, 40, 500, 1, 0.1), 500);
    }

    #[test]
    fn a_segment_names_its_node() {
        assert_eq!(segment_owner("4242-1700000000123-000000000003"), "4242-1700000000123");
        assert_eq!(segment_owner("4242-1700000000123-mem-7"), "4242-1700000000123");
    }
}
