//! Admission: every cap that touches an attempt is checked in Bifrost's governance order (provider,
//! model, then the key's status, provider and model access, rate limits, and budgets up the
//! hierarchy), and the attempt's maximum cost is reserved on every budget at once. The first cap
//! hit wins and undoes what was reserved before it, so a request is admitted on all caps or none.
//!
//! The [`Ticket`] an admitted attempt carries is settled after the response: charged at actual
//! cost (or at the reservation when the outcome is unknown), or released when nothing was spent.

use std::sync::Arc;

use crate::ctx::{Charge, Estimate};
use crate::filter::Rejection;
use crate::policy::meter::{Meter, SpendJournal, Spent};
use crate::policy::runtime::{Governance, LimitCap, RateCap, Scope, VirtualKeyRuntime};
use crate::pricing::{Price, TokenUsage, Unit, to_dollars};
use asbru_config::usage::SpendKind;

pub use crate::filter::decision;

/// A governance refusal with its status.
pub fn refusal(status: u16, kind: &'static str, message: String) -> Rejection {
    Rejection::refusal(status, kind, message)
}

/// Checks the key's status and its access to `provider` and `model`, reserving nothing.
pub fn check_access(vk: &VirtualKeyRuntime, provider: &str, model: &str, now: i64) -> Result<(), Rejection> {
    check(vk, provider, Some(model), now)
}

/// Checks the key's status and its access to `provider`, whatever the model.
pub fn check_provider_access(vk: &VirtualKeyRuntime, provider: &str, now: i64) -> Result<(), Rejection> {
    check(vk, provider, None, now)
}

fn check(vk: &VirtualKeyRuntime, provider: &str, model: Option<&str>, now: i64) -> Result<(), Rejection> {
    if !vk.active {
        return Err(refusal(
            403,
            decision::VIRTUAL_KEY_BLOCKED,
            "Virtual key is inactive".into(),
        ));
    }
    if vk.expires_at.is_some_and(|at| now >= at) {
        return Err(refusal(
            403,
            decision::VIRTUAL_KEY_BLOCKED,
            "Virtual key has expired".into(),
        ));
    }
    if vk.allow_all_providers {
        return Ok(());
    }
    let Some(access) = vk.access(provider) else {
        return Err(refusal(
            403,
            decision::PROVIDER_BLOCKED,
            format!("Provider '{provider}' is not allowed for virtual key '{}'", vk.id),
        ));
    };
    if let Some(model) = model
        && !access.allows(model)
    {
        return Err(refusal(
            403,
            decision::MODEL_BLOCKED,
            format!("Model '{model}' is not allowed for virtual key '{}'", vk.id),
        ));
    }
    Ok(())
}

/// Admits one attempt at `provider`/`model`: checks and reserves on every cap, or refuses.
pub fn admit(
    gov: &Governance,
    vk: Option<&VirtualKeyRuntime>,
    provider: &str,
    model: &str,
    estimate: &Estimate,
    now: i64,
) -> Result<Ticket, Rejection> {
    let listed = gov.pricing.lookup(provider, model);
    // Each of `n` choices may use up to the output bound.
    let max_output = estimate
        .max_output_tokens
        .unwrap_or(gov.default_max_output_tokens)
        .saturating_mul(estimate.choices.max(1));
    // A request billed per unit reserves its units at the unit's price; a model that bills
    // such a request in tokens instead (its reply reports them) reserves as a token request.
    let (price, amount) = match estimate.units {
        Some((unit, count)) => match listed.and_then(|p| p.for_unit(unit)) {
            Some(p) => (Some(p), crate::pricing::to_micros(count as f64 * p.per_unit)),
            None => {
                // Each image (or unit) may use up to the output bound.
                let tokens = listed.filter(Price::bills_tokens);
                let outputs = max_output.saturating_mul(count.max(1));
                (
                    tokens,
                    tokens.map_or(0, |p| p.max_cost_micros(estimate.input_tokens, outputs)),
                )
            }
        },
        None => (
            listed,
            listed.map_or(0, |p| p.max_cost_micros(estimate.input_tokens, max_output)),
        ),
    };
    let mut ticket = Ticket {
        reserved: amount,
        budgets: Vec::new(),
        tokens: Vec::new(),
        requests: Vec::new(),
        price,
        // A request billed per unit uses no tokens unless its reply reports them.
        estimate_tokens: if estimate.units.is_some() {
            0
        } else {
            estimate.input_tokens.saturating_add(max_output)
        },
        exact_units: matches!(estimate.units, Some((Unit::Image | Unit::Character, _)))
            && price.is_some_and(|p| p.per_unit > 0.0),
        state: State::Admitted,
        budget_used: None,
        rate_used: None,
        journal: None,
        near_edge: false,
    };
    match reserve_all(gov, vk, provider, model, now, &mut ticket) {
        // An endpoint billed per unit with no price for this model cannot be metered: a
        // budget refuses it rather than count it as free.
        Ok(()) if ticket.price.is_none() && estimate.units.is_some() && !ticket.budgets.is_empty() => {
            ticket.release();
            Err(Rejection::bad_request(format!(
                "model '{model}' of provider '{provider}' has no price for this endpoint, and a budget applies to this request: add a governance.pricing_overrides entry (output_cost_per_image, input_cost_per_character or input_cost_per_second)"
            )))
        }
        Ok(()) => {
            if !(ticket.budgets.is_empty() && ticket.tokens.is_empty() && ticket.requests.is_empty()) {
                ticket.journal = gov.journal.clone();
            }
            Ok(ticket)
        }
        Err(rejection) => {
            ticket.release();
            if gov.leases.is_some() {
                ask_leases(gov, vk, provider, model, amount);
            }
            Err(rejection)
        }
    }
}

/// Cluster mode, after a refusal: every leased meter the attempt needs and whose lease has no
/// room for it asks for a fetch now, so one round serves them all (admission stops at the
/// first cap that refuses, and a first request meets every lease empty).
fn ask_leases(gov: &Governance, vk: Option<&VirtualKeyRuntime>, provider: &str, model: &str, reserved: i64) {
    for scope in attempt_scopes(gov, vk, provider, model) {
        for cap in &scope.budgets {
            cap.meter.ask_lease(reserved, cap.max_at(cap.meter.window_start()));
        }
        if let Some(rate) = &scope.rate {
            for cap in [&rate.tokens, &rate.requests].into_iter().flatten() {
                cap.meter.ask_lease(1, cap.max);
            }
        }
    }
}

/// Cluster mode: whether a lease fetch that may clear a refusal of this attempt is pending (a
/// refusal for a limit really spent, or with the database found dry, does not wait).
pub fn leases_pending(gov: &Governance, vk: Option<&VirtualKeyRuntime>, provider: &str, model: &str) -> bool {
    any_meter(gov, vk, provider, model, Meter::lease_pending)
}

/// Cluster mode: whether one of those fetches is a meter's first on this node.
pub fn first_lease_pending(gov: &Governance, vk: Option<&VirtualKeyRuntime>, provider: &str, model: &str) -> bool {
    any_meter(gov, vk, provider, model, Meter::first_lease_pending)
}

/// Whether `test` holds for a meter of a cap an attempt at `provider`/`model` by `vk` meets.
fn any_meter(
    gov: &Governance,
    vk: Option<&VirtualKeyRuntime>,
    provider: &str,
    model: &str,
    test: impl Fn(&Meter) -> bool,
) -> bool {
    attempt_scopes(gov, vk, provider, model).into_iter().any(|scope| {
        scope.budgets.iter().any(|cap| test(&cap.meter))
            || scope.rate.as_ref().is_some_and(|rate| {
                [&rate.tokens, &rate.requests]
                    .into_iter()
                    .flatten()
                    .any(|cap| test(&cap.meter))
            })
    })
}

/// Every scope whose caps an attempt at `provider`/`model` by `vk` meets.
fn attempt_scopes<'a>(
    gov: &'a Governance,
    vk: Option<&'a VirtualKeyRuntime>,
    provider: &str,
    model: &str,
) -> Vec<&'a Scope> {
    let mut scopes: Vec<&Scope> = Vec::new();
    scopes.extend(gov.providers.get(provider));
    scopes.extend(
        gov.models
            .iter()
            .filter(|m| m.covers(provider, model))
            .map(|m| &m.scope),
    );
    if let Some(vk) = vk {
        scopes.push(&vk.scope);
        scopes.extend(vk.access(provider).map(|a| &a.scope));
        scopes.extend(vk.team.as_deref());
        scopes.extend(vk.customer.as_deref());
        scopes.extend(
            vk.model_scopes
                .iter()
                .filter(|m| m.covers(provider, model))
                .map(|m| &m.scope),
        );
    }
    scopes
}

/// A budget is near its edge when less than this many reservations of the request's size fit in
/// what is left. The byte bound can be several times a prompt's real size, and in a burst every
/// admitted request holds its reservation until it settles, so loose reservations held far
/// below this would leave a small budget unspent.
pub const EDGE_RESERVATIONS: i64 = 64;

/// [`admit`], with a tight reservation near a budget's edge: when a budget has less than
/// [`EDGE_RESERVATIONS`] reservations' room (or refuses), and `exact_input` can count the
/// prompt's tokens exactly, the admission is made again with that count instead of the byte
/// bound. Far from every edge the count is never asked for.
pub fn admit_tight(
    gov: &Governance,
    vk: Option<&VirtualKeyRuntime>,
    provider: &str,
    model: &str,
    estimate: &Estimate,
    now: i64,
    exact_input: &mut dyn FnMut() -> Option<u64>,
) -> Result<Ticket, Rejection> {
    let first = admit(gov, vk, provider, model, estimate, now);
    let near_edge = match &first {
        Ok(ticket) => ticket.near_edge,
        Err(rejection) => rejection.decision == Some(decision::BUDGET_EXCEEDED),
    };
    if !near_edge {
        return first;
    }
    let Some(tokens) = exact_input().filter(|n| *n < estimate.input_tokens) else {
        return first;
    };
    if let Ok(mut ticket) = first {
        ticket.release();
    }
    let exact = Estimate {
        input_tokens: tokens,
        ..*estimate
    };
    admit(gov, vk, provider, model, &exact, now)
}

fn reserve_all(
    gov: &Governance,
    vk: Option<&VirtualKeyRuntime>,
    provider: &str,
    model: &str,
    now: i64,
    ticket: &mut Ticket,
) -> Result<(), Rejection> {
    if let Some(scope) = gov.providers.get(provider) {
        ticket.rate(scope, now)?;
        ticket.budgets(scope, now)?;
    }
    for m in gov.models.iter().filter(|m| m.covers(provider, model)) {
        ticket.rate(&m.scope, now)?;
        ticket.budgets(&m.scope, now)?;
    }
    let Some(vk) = vk else {
        return Ok(());
    };
    check_access(vk, provider, model, now)?;
    let access = vk.access(provider).map(|a| &a.scope);
    let team = vk.team.as_deref();
    let customer = vk.customer.as_deref();
    for scope in [Some(&vk.scope), access, team, customer].into_iter().flatten() {
        ticket.rate(scope, now)?;
    }
    for scope in [access, Some(&vk.scope), team, customer].into_iter().flatten() {
        ticket.budgets(scope, now)?;
    }
    for m in vk.model_scopes.iter().filter(|m| m.covers(provider, model)) {
        ticket.rate(&m.scope, now)?;
        ticket.budgets(&m.scope, now)?;
    }
    Ok(())
}

/// Whether any budget counts a request to `provider` by `vk`, whatever its model: the
/// provider's, and the key's own, its provider config's, its team's and its customer's.
pub fn budget_applies(gov: &Governance, vk: Option<&VirtualKeyRuntime>, provider: &str) -> bool {
    let provider_budget = gov.providers.get(provider).is_some_and(|s| !s.budgets.is_empty());
    let key_budget = vk.is_some_and(|vk| {
        [
            Some(&vk.scope),
            vk.access(provider).map(|a| &a.scope),
            vk.team.as_deref(),
            vk.customer.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|scope| !scope.budgets.is_empty())
    });
    provider_budget || key_budget
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reserved; nothing sent upstream yet.
    Admitted,
    /// The request went upstream: the provider may be doing (billable) work.
    Sent,
    /// Charged or released.
    Closed,
}

/// An admitted attempt's reservations. Settle it with [`Ticket::charge`] or
/// [`Ticket::release`]; dropped unsettled, it releases if nothing was sent and charges the
/// reservation if the request had gone upstream.
#[derive(Debug)]
pub struct Ticket {
    reserved: i64,
    budgets: Vec<Arc<Meter>>,
    tokens: Vec<Arc<Meter>>,
    requests: Vec<Arc<Meter>>,
    price: Option<Price>,
    estimate_tokens: u64,
    /// The reservation is the exact cost (images or characters at a unit price, counted at
    /// admission): the settlement charges it whatever tokens the reply reports.
    exact_units: bool,
    state: State,
    budget_used: Fullest,
    rate_used: Fullest,
    /// Where the settlement is journaled (when usage is persisted).
    journal: Option<Arc<dyn SpendJournal>>,
    /// A budget has less than [`EDGE_RESERVATIONS`] reservations' room left: a tighter bound is
    /// worth finding.
    near_edge: bool,
}

/// The fullest cap seen, as `(used, max)`: compared by cross-multiplication, divided only when
/// asked for.
type Fullest = Option<(i64, i64)>;

fn fuller(current: Fullest, used: i64, max: i64) -> Fullest {
    match current {
        Some((u, m)) if i128::from(u) * i128::from(max) >= i128::from(used) * i128::from(m) => current,
        _ => Some((used, max)),
    }
}

/// `used` of `max` in percent.
fn percent((used, max): (i64, i64)) -> f64 {
    if max <= 0 {
        100.0
    } else {
        (used as f64 / max as f64 * 100.0).clamp(0.0, 100.0)
    }
}

/// Dollars for messages: four decimals, or six when that would hide a non-zero amount.
fn usd(micros: i64) -> String {
    if micros % 100 == 0 {
        format!("{:.4}", to_dollars(micros))
    } else {
        format!("{:.6}", to_dollars(micros))
    }
}

fn holds(list: &[Arc<Meter>], meter: &Arc<Meter>) -> bool {
    list.iter().any(|m| Arc::ptr_eq(m, meter))
}

impl Ticket {
    /// A ticket that reserves nothing (no governance applies).
    pub fn free() -> Ticket {
        Ticket {
            reserved: 0,
            budgets: Vec::new(),
            tokens: Vec::new(),
            requests: Vec::new(),
            price: None,
            estimate_tokens: 0,
            exact_units: false,
            state: State::Closed,
            budget_used: None,
            rate_used: None,
            journal: None,
            near_edge: false,
        }
    }

    fn rate(&mut self, scope: &Scope, now: i64) -> Result<(), Rejection> {
        let Some(rate) = &scope.rate else {
            return Ok(());
        };
        let tokens = rate.tokens.as_ref().filter(|c| !holds(&self.tokens, &c.meter));
        let requests = rate.requests.as_ref().filter(|c| !holds(&self.requests, &c.meter));
        let token_hit = tokens.and_then(|cap| {
            cap.meter.roll(&cap.window, now);
            cap.meter.check_below(cap.max).err().map(|seen| (cap, seen))
        });
        let request_hit = match requests {
            Some(cap) => {
                cap.meter.roll(&cap.window, now);
                match cap.meter.try_reserve(1, cap.max) {
                    Ok(used) => {
                        self.rate_used = fuller(self.rate_used, used, cap.max);
                        self.requests.push(cap.meter.clone());
                        None
                    }
                    Err(seen) => Some((cap, seen)),
                }
            }
            None => None,
        };
        let limit = |what: &str, (cap, seen): (&LimitCap, i64)| {
            format!(
                "{what} limit exceeded ({seen}/{}, resets every {})",
                cap.max, cap.duration
            )
        };
        let message = |rate: &RateCap, details: String| {
            format!(
                "Rate limit exceeded: {} rate limit {} [{details}]",
                scope.label, rate.name
            )
        };
        match (token_hit, request_hit) {
            (None, None) => {
                if let Some(cap) = tokens {
                    self.tokens.push(cap.meter.clone());
                }
                Ok(())
            }
            (Some(t), Some(r)) => Err(refusal(
                429,
                decision::RATE_LIMITED,
                message(rate, format!("{}; {}", limit("token", t), limit("request", r))),
            )),
            (Some(t), None) => Err(refusal(429, decision::TOKEN_LIMITED, message(rate, limit("token", t)))),
            (None, Some(r)) => Err(refusal(
                429,
                decision::REQUEST_LIMITED,
                message(rate, limit("request", r)),
            )),
        }
    }

    fn budgets(&mut self, scope: &Scope, now: i64) -> Result<(), Rejection> {
        for cap in &scope.budgets {
            if holds(&self.budgets, &cap.meter) {
                continue;
            }
            cap.meter.roll(&cap.window, now);
            let max = cap.max_at(now);
            let used = match cap.meter.try_reserve(self.reserved, max) {
                Ok(used) => used,
                Err(seen) => {
                    let detail = if cap.meter.is_leased() && !cap.meter.fetch_was_answered() {
                        format!(
                            "this node holds no lease on it yet: the cluster store has not answered a lease fetch in time (up to {} for this request, limit {} dollars)",
                            usd(self.reserved),
                            usd(max)
                        )
                    } else if cap.meter.is_leased() {
                        let spent = cap.meter.global().unwrap_or(seen);
                        format!(
                            "no room left for up to {} for this request across the cluster's nodes ({} spent of {} dollars, the rest held by the nodes' leases)",
                            usd(self.reserved),
                            usd(spent),
                            usd(max)
                        )
                    } else if seen >= max {
                        format!("{} >= {} dollars", usd(seen), usd(max))
                    } else {
                        format!(
                            "{} used + up to {} for this request > {} dollars",
                            usd(seen),
                            usd(self.reserved),
                            usd(max)
                        )
                    };
                    return Err(refusal(
                        402,
                        decision::BUDGET_EXCEEDED,
                        format!(
                            "Budget exceeded: {} {} (resets every {}) exceeded: {detail}",
                            scope.label, cap.name, cap.duration
                        ),
                    ));
                }
            };
            if max.saturating_sub(used) < self.reserved.saturating_mul(EDGE_RESERVATIONS) {
                self.near_edge = true;
            }
            self.budget_used = fuller(self.budget_used, used, max);
            self.budgets.push(cap.meter.clone());
        }
        Ok(())
    }

    /// The fullest budget's use after this admission, in percent.
    pub fn budget_used(&self) -> Option<f64> {
        self.budget_used.map(percent)
    }

    /// The fullest request rate limit's use after this admission, in percent.
    pub fn rate_limit_used(&self) -> Option<f64> {
        self.rate_used.map(percent)
    }

    /// Micro-dollars reserved on each budget.
    pub fn reserved_micros(&self) -> i64 {
        self.reserved
    }

    /// Whether the model has no price (its cost is 0).
    pub fn is_unpriced(&self) -> bool {
        self.price.is_none()
    }

    /// Whether reported usage matters to this ticket (a budget or token limit counts it).
    pub fn needs_usage(&self) -> bool {
        !self.budgets.is_empty() || !self.tokens.is_empty()
    }

    /// Records that the request went upstream.
    pub fn mark_sent(&mut self) {
        if self.state == State::Admitted {
            self.state = State::Sent;
        }
    }

    /// Charges the actual cost of `usage`, or the whole reservation when no usage was reported.
    pub fn charge(&mut self, usage: Option<TokenUsage>) -> Charge {
        if self.state == State::Closed {
            return Charge::default();
        }
        self.state = State::Closed;
        let (cost, tokens) = match usage {
            Some(u) if self.exact_units => (self.reserved, u.total()),
            Some(u) => (self.price.map(|p| p.cost_micros(&u)).unwrap_or(0), u.total()),
            None => (self.reserved, self.estimate_tokens),
        };
        for meter in &self.budgets {
            meter.settle(self.reserved, cost);
        }
        let counted = i64::try_from(tokens).unwrap_or(i64::MAX);
        for meter in &self.tokens {
            meter.settle(0, counted);
        }
        for meter in &self.requests {
            meter.settle(1, 1);
        }
        if let Some(journal) = &self.journal {
            self.journal_settlement(journal.as_ref(), cost, counted);
        }
        Charge {
            cost_micros: cost,
            tokens,
            unpriced: self.price.is_none(),
            estimated: usage.is_none(),
            budgeted: !self.budgets.is_empty(),
        }
    }

    /// Appends what this settlement added to each meter to the spend journal, in one write.
    fn journal_settlement(&self, journal: &dyn SpendJournal, cost: i64, tokens: i64) {
        // On the stack for chains of up to eight meters (no allocation per settlement).
        let mut changes: smallvec::SmallVec<[Spent<'_>; 8]> = smallvec::SmallVec::new();
        let groups: [(&[Arc<Meter>], i64); 3] = [(&self.budgets, cost), (&self.tokens, tokens), (&self.requests, 1)];
        for (meters, amount) in groups {
            if amount == 0 {
                continue;
            }
            for meter in meters {
                changes.push(Spent {
                    meter: meter.id(),
                    unit: meter.unit(),
                    window_start: meter.window_start(),
                    window_end: meter.window_end(),
                    kind: SpendKind::Add(amount),
                });
            }
        }
        if !changes.is_empty() {
            journal.append(&changes);
        }
    }

    /// Gives every reservation back: nothing was spent (an error reply, a refusal, a client gone
    /// before the request went upstream). The request is not counted either.
    pub fn release(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        for meter in &self.budgets {
            meter.release(self.reserved);
        }
        for meter in &self.requests {
            meter.release(1);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match self.state {
            State::Admitted => self.release(),
            State::Sent => {
                self.charge(None);
            }
            State::Closed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Live;
    use crate::policy::Registry;
    use crate::policy::runtime::key_hash;

    const NOW: i64 = 1_800_000_000;

    fn live(governance: &str) -> (Live, Arc<Registry>) {
        let yaml = format!(
            "providers:\n  openai: {{keys: [{{value: k}}]}}\ngovernance:\n  pricing_overrides:\n    - {{provider: openai, model: m, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}}\n{governance}"
        );
        let loaded = asbru_config::load_str(&yaml, "t.yaml").expect("valid");
        let registry = Arc::new(Registry::new());
        let live = Live::build_with(&loaded.config, &registry, NOW, &|_| None).0;
        (live, registry)
    }

    fn estimate() -> Estimate {
        // 100 input µ$ + 10 × 10 output µ$ = 200 µ$ reserved.
        Estimate {
            input_tokens: 100,
            max_output_tokens: Some(10),
            choices: 1,
            units: None,
        }
    }

    #[test]
    fn the_exact_count_is_asked_for_only_near_the_edge() {
        // 200 µ$ a reservation: 1 $ is far from the edge, 0.01 $ (50 reservations) near it.
        let (live, _) = live(
            "  virtual_keys:\n    - {id: far, name: F, value: far, budgets: [{max_limit: 1, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n    - {id: near, name: N, value: near, budgets: [{max_limit: 0.01, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n",
        );
        let gov = &live.governance;
        let mut asked = 0;
        let far = gov.key(&key_hash("far")).expect("far").clone();
        let ticket = admit_tight(gov, Some(&far), "openai", "m", &estimate(), NOW, &mut || {
            asked += 1;
            Some(10)
        })
        .expect("admitted");
        assert_eq!(
            (asked, ticket.reserved_micros()),
            (0, 200),
            "far from the edge: no count"
        );
        let near = gov.key(&key_hash("near")).expect("near").clone();
        let ticket = admit_tight(gov, Some(&near), "openai", "m", &estimate(), NOW, &mut || {
            asked += 1;
            Some(10)
        })
        .expect("admitted");
        assert_eq!(asked, 1);
        assert_eq!(ticket.reserved_micros(), 110, "10 input µ$ + 100 output µ$");
        let loose = admit_tight(gov, Some(&near), "openai", "m", &estimate(), NOW, &mut || None).expect("admitted");
        assert_eq!(
            loose.reserved_micros(),
            200,
            "without an exact count the byte bound stays"
        );
    }

    #[test]
    fn reservation_is_all_or_none_and_a_shared_budget_counts_once() {
        let (live, registry) = live(
            "  budgets:\n    - {id: shared, max_limit: 0.001, reset_duration: 1d}\n  customers:\n    - {id: c, name: C, budgets: [{max_limit: 0.0003, reset_duration: 1d}]}\n  teams:\n    - {id: t, name: T, customer_id: c, budget_id: shared}\n  virtual_keys:\n    - {id: v, name: V, value: key, team_id: t, budget_id: shared, provider_configs: [{provider: openai, weight: 1}]}\n",
        );
        let gov = &live.governance;
        let vk = gov.key(&key_hash("key")).expect("key").clone();
        let mut first = admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect("first fits");
        assert_eq!(first.reserved_micros(), 200);
        let shared = registry.get("budget:shared").expect("shared meter");
        assert_eq!(
            shared.total(),
            200,
            "the VK and its team share the budget: reserved once"
        );
        // The customer has 100 µ$ left: refused there, and nothing stays reserved elsewhere.
        let refused = admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect_err("customer full");
        assert_eq!(refused.decision, Some(decision::BUDGET_EXCEEDED));
        assert!(refused.message.contains("customer 'c'"), "{}", refused.message);
        assert_eq!(shared.total(), 200);
        first.mark_sent();
        let charge = first.charge(Some(TokenUsage {
            input: 20,
            output: 3,
            ..Default::default()
        }));
        assert_eq!(charge.cost_micros, 20 + 30);
        assert_eq!((shared.settled(), shared.total()), (50, 50));
    }

    #[test]
    fn admission_reports_the_fullest_budget_and_rate_limit() {
        let (live, _) = live(
            "  customers:\n    - {id: c, name: C, budgets: [{max_limit: 0.0004, reset_duration: 1d}]}\n  virtual_keys:\n    - {id: v, name: V, value: key, customer_id: c, budgets: [{max_limit: 0.002, reset_duration: 1d}], rate_limit: {request_max_limit: 4, request_reset_duration: 1h}, provider_configs: [{provider: openai, weight: 1}]}\n",
        );
        let gov = &live.governance;
        let vk = gov.key(&key_hash("key")).expect("key").clone();
        let first = admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect("fits");
        // 200 µ$ of the customer's 400 (50 %) is fuller than 200 of the key's 2000 (10 %).
        assert_eq!(first.budget_used(), Some(50.0));
        assert_eq!(first.rate_limit_used(), Some(25.0));
        let second = admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect("fits");
        assert_eq!(second.budget_used(), Some(100.0));
        assert_eq!(second.rate_limit_used(), Some(50.0));
        assert_eq!(Ticket::free().budget_used(), None);
    }

    #[test]
    fn each_choice_reserves_the_output_bound() {
        let (live, _) = live(
            "  virtual_keys:\n    - {id: far, name: F, value: far, budgets: [{max_limit: 1, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n",
        );
        let gov = &live.governance;
        let far = gov.key(&key_hash("far")).expect("far").clone();
        let three = Estimate {
            choices: 3,
            ..estimate()
        };
        let ticket = admit(gov, Some(&far), "openai", "m", &three, NOW).expect("admitted");
        assert_eq!(
            ticket.reserved_micros(),
            100 + 3 * 100,
            "100 input µ$ + 3 × 100 output µ$"
        );
    }

    #[test]
    fn checks_run_in_bifrost_order() {
        let (live, _) = live(
            "  providers:\n    - {name: openai, budgets: [{max_limit: 0, reset_duration: 1d}]}\n  virtual_keys:\n    - {id: v, name: V, value: key, is_active: false, provider_configs: [{provider: openai, weight: 1}]}\n",
        );
        let gov = &live.governance;
        let vk = gov.key(&key_hash("key")).expect("key").clone();
        // The provider-level budget is checked before the key's status.
        let refused = admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect_err("refused");
        assert_eq!(refused.status, 402);
        assert!(refused.message.contains("provider 'openai'"), "{}", refused.message);
        let refused = admit(gov, None, "openai", "m", &estimate(), NOW).expect_err("no key, still capped");
        assert_eq!(refused.decision, Some(decision::BUDGET_EXCEEDED));
    }

    #[test]
    fn dropped_tickets_release_or_charge() {
        let (live, registry) = live(
            "  virtual_keys:\n    - {id: v, name: V, value: key, budgets: [{max_limit: 1, reset_duration: 1d}], rate_limit: {request_max_limit: 5, request_reset_duration: 1h}, provider_configs: [{provider: openai, weight: 1}]}\n",
        );
        let gov = &live.governance;
        let vk = gov.key(&key_hash("key")).expect("key").clone();
        let budget = registry.get("vk:v:budget:0").expect("budget");
        let requests = registry.get("vk:v:rate_limit:requests").expect("requests");
        drop(admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect("admitted"));
        assert_eq!((budget.total(), requests.total()), (0, 0), "never sent: released");
        let mut sent = admit(gov, Some(&vk), "openai", "m", &estimate(), NOW).expect("admitted");
        sent.mark_sent();
        drop(sent);
        assert_eq!(
            (budget.settled(), requests.settled()),
            (200, 1),
            "sent: charged its reservation"
        );
        let unpriced = admit(gov, Some(&vk), "openai", "other", &estimate(), NOW).expect("admitted");
        assert!(unpriced.is_unpriced());
        assert_eq!(unpriced.reserved_micros(), 0);
    }
}
