//! What a request is charged against, and for how much. Pure: from the config, the caller's key,
//! the requested model and the candidate models' prices, it derives the ledger charges (budgets in
//! scope, the key's usage counters, its rate limits) and, after the response, the settlement.
//!
//! Worst case reserved up front: the request's bounds ([`RequestBounds`]: prompt bytes or the
//! context length, output limit plus thinking budget, times `n`) priced at the most expensive
//! candidate (fallbacks may serve), reasoning at the higher of the output and reasoning prices,
//! plus the per-request price. A worst case no price fits is refused, not wrapped.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use switchboard_api::{
    counters::{
        budget_counter, concurrency_counter, key_usage_counter, requests_per_minute_counter,
        tokens_per_minute_counter, window_at,
    },
    money::{MAX_NANOS, to_nanos},
    snapshot::{
        ApiKeyConfig, BudgetAction, BudgetWindow, FailureMode, ModelConfig, RouterConfig,
        glob_matches,
    },
};

use switchboard_ledger::{Charge, MAX_AMOUNT, ReserveRequest, Settlement};

use super::{
    bounds::{RequestBounds, Unbounded},
    settler::BudgetGauge,
};
use crate::pricing::{cost_nanos, reported::UsageBounds};

// The router's money bound is the ledger's amount bound: a cost it computes is one the ledger
// takes.
const _: () = assert!(MAX_NANOS == MAX_AMOUNT);

/// The most a request bounded by `bounds` can cost on any of `models`, in nano-dollars; an
/// error when that is more than any ledger counts (the request asks for too many tokens).
pub fn worst_case_nanos<'a>(
    models: impl IntoIterator<Item = &'a ModelConfig>,
    bounds: &RequestBounds,
) -> Result<i64, Unbounded> {
    models.into_iter().try_fold(0i64, |worst, m| {
        let usage = bounds.worst_usage(m)?;
        let nanos = cost_nanos(&m.pricing, &usage).map_err(|_| Unbounded)?;
        Ok(worst.max(nanos))
    })
}

/// A count as a ledger amount (within `0..=MAX_AMOUNT`).
fn amount(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(MAX_AMOUNT).min(MAX_AMOUNT)
}

/// What a charge stands for, to read refusals and build the settlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A Budget (id `namespace/name`).
    Budget {
        /// Budget id.
        id: String,
        /// Limit in nano-dollars.
        limit: i64,
        /// Behaviour when the ledger is unreachable.
        failure_mode: FailureMode,
        /// `softLimitPercent`, if set.
        soft_limit_percent: Option<u8>,
        /// When the window resets (None: never).
        resets_at: Option<Timestamp>,
    },
    /// Requests per minute.
    RequestsPerMinute(u32),
    /// Tokens per minute.
    TokensPerMinute(u64),
    /// Requests in flight.
    Concurrent(u32),
}

/// The ledger side of one request.
#[derive(Clone, Debug)]
pub struct SpendPlan {
    /// The reservation to make.
    pub request: ReserveRequest,
    /// What each charge stands for.
    pub roles: Vec<Role>,
    /// Counters of the key's own spend per window (for `/api/v1/key` and status), with how long
    /// to keep them: they have no limit, so nothing is reserved on them; the settlement adds the
    /// cost. This halves the ledger's work per request (a Redis round trip carries half the
    /// keys).
    pub tallies: Vec<(String, Option<Duration>)>,
    /// Worst-case cost reserved on money counters, in nano-dollars.
    pub worst_case: i64,
    /// What the request asked for: the worst case's source, and the bounds its reported usage
    /// is checked against.
    pub bounds: RequestBounds,
    /// Start of the current minute (rate windows).
    pub minute_resets_at: Timestamp,
}

impl SpendPlan {
    /// What usage reported by `model` may be, for this request and its reservation.
    pub fn usage_bounds(&self, model: &ModelConfig) -> UsageBounds {
        self.bounds.usage_bounds(model, self.worst_case)
    }
}

fn until(end: Option<Timestamp>, now: Timestamp, grace: Duration) -> Option<Duration> {
    end.map(|e| {
        let left = e.duration_since(now).unsigned_abs();
        Duration::from_secs(left.as_secs()).saturating_add(grace)
    })
}

/// The budgets that apply to a key calling `model`, of `key_budgets` (the ids of the Budgets
/// covering the key, [`crate::config::runtime::Runtime::budgets_of`]).
pub fn budgets_in_scope<'a>(
    config: &'a RouterConfig,
    key_budgets: &'a [Arc<str>],
    model: &'a str,
) -> impl Iterator<Item = (&'a String, &'a switchboard_api::snapshot::BudgetConfig)> {
    key_budgets
        .iter()
        .filter_map(|id| config.budgets.get_key_value(&**id))
        .filter(move |(_, b)| {
            b.models.is_empty() || b.models.iter().any(|g| glob_matches(g, model))
        })
}

/// The charges of a request with id `id` by `key` for `model`, reserving `worst_case` (see
/// [`worst_case_nanos`]) on its budgets and an estimate of its tokens on its token limit.
#[allow(clippy::too_many_arguments)]
pub fn plan_spend(
    config: &RouterConfig,
    key: &ApiKeyConfig,
    key_budgets: &[Arc<str>],
    model: &str,
    id: &str,
    worst_case: i64,
    bounds: RequestBounds,
    hold_for: Duration,
    now: Timestamp,
) -> SpendPlan {
    let key_id = key.id();
    let second = now.as_second();
    let minute =
        Timestamp::from_second(second.saturating_sub(second.rem_euclid(60))).unwrap_or(now);
    let minute_end = Timestamp::from_second(minute.as_second().saturating_add(60)).unwrap_or(now);
    // Estimated up front: a quarter of the prompt bytes plus the output asked for.
    let token_estimate = (bounds.prompt_bytes / 4).saturating_add(bounds.max_tokens.unwrap_or(0));
    let worst_case = worst_case.clamp(0, MAX_AMOUNT);
    let (mut charges, mut roles) = rate_charges(key, minute, token_estimate);
    for (id, b) in budgets_in_scope(config, key_budgets, model) {
        let (end, _) = window_at(b.window, now);
        let limit = to_nanos(b.limit_usd);
        charges.push(Charge {
            counter: budget_counter(id, b.window, now),
            limit: (b.action == BudgetAction::Block).then_some(limit),
            reserve: worst_case,
            keep_for: until(end, now, GRACE),
        });
        roles.push(Role::Budget {
            id: id.clone(),
            limit,
            failure_mode: b.failure_mode,
            soft_limit_percent: b.soft_limit_percent,
            resets_at: end,
        });
    }
    let tallies = [
        BudgetWindow::Daily,
        BudgetWindow::Weekly,
        BudgetWindow::Monthly,
        BudgetWindow::Total,
    ]
    .into_iter()
    .map(|window| {
        let (end, _) = window_at(window, now);
        (
            key_usage_counter(&key_id, window, now),
            until(end, now, GRACE),
        )
    })
    .collect();
    SpendPlan {
        tallies,
        request: ReserveRequest {
            id: id.to_string(),
            charges,
            hold_for,
        },
        roles,
        worst_case,
        bounds,
        minute_resets_at: minute_end,
    }
}

/// How long a money counter is kept after its window ends.
const GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The charges of `key`'s rate limits in the `minute` starting then: requests in flight,
/// requests per minute, tokens per minute (reserving `token_estimate`).
fn rate_charges(
    key: &ApiKeyConfig,
    minute: Timestamp,
    token_estimate: u64,
) -> (Vec<Charge>, Vec<Role>) {
    let mut charges = Vec::new();
    let mut roles = Vec::new();
    let key_id = key.id();
    let rate_keep = Some(Duration::from_secs(120));
    let limits = &key.rate_limits;
    if let Some(n) = limits.concurrent_requests {
        charges.push(Charge {
            counter: concurrency_counter(&key_id),
            limit: Some(i64::from(n)),
            reserve: 1,
            keep_for: Some(Duration::from_secs(24 * 3600)),
        });
        roles.push(Role::Concurrent(n));
    }
    if let Some(n) = limits.requests_per_minute {
        charges.push(Charge {
            counter: requests_per_minute_counter(&key_id, minute.as_second()),
            limit: Some(i64::from(n)),
            reserve: 1,
            keep_for: rate_keep,
        });
        roles.push(Role::RequestsPerMinute(n));
    }
    if let Some(n) = limits.tokens_per_minute {
        charges.push(Charge {
            counter: tokens_per_minute_counter(&key_id, minute.as_second()),
            limit: Some(amount(n)),
            reserve: amount(token_estimate),
            keep_for: rate_keep,
        });
        roles.push(Role::TokensPerMinute(n));
    }
    (charges, roles)
}

/// The settlement of `plan` once the request cost `cost_nanos` and used `tokens`: money counters
/// (budgets and the key's tallies) get the cost — never more than the reservation, so a block
/// budget's settled spend stays within its limit —, the request counter one request, the token
/// counter the tokens, the concurrency counter nothing (its slot is released).
pub fn settlement(plan: &SpendPlan, cost_nanos: i64, tokens: u64) -> Settlement {
    settlement_and_gauges(plan, cost_nanos, tokens).0
}

/// [`settlement`], and the budgets (counter index, id, limit) whose gauges it refreshes.
pub fn settlement_and_gauges(
    plan: &SpendPlan,
    cost_nanos: i64,
    tokens: u64,
) -> (Settlement, Vec<BudgetGauge>) {
    let cost_nanos = cost_nanos.clamp(0, plan.worst_case);
    let counters = plan
        .request
        .charges
        .iter()
        .zip(&plan.roles)
        .map(|(c, role)| {
            let actual = match role {
                Role::Budget { .. } => cost_nanos,
                Role::RequestsPerMinute(_) => 1,
                Role::TokensPerMinute(_) => amount(tokens),
                Role::Concurrent(_) => 0,
            };
            (c.counter.clone(), actual, c.keep_for)
        })
        .chain(
            plan.tallies
                .iter()
                .map(|(counter, keep_for)| (counter.clone(), cost_nanos, *keep_for)),
        )
        .collect();
    let gauges = plan
        .roles
        .iter()
        .enumerate()
        .filter_map(|(counter, role)| match role {
            Role::Budget { id, limit, .. } => Some(BudgetGauge {
                counter,
                id: id.clone(),
                limit: *limit,
            }),
            _ => None,
        })
        .collect();
    (
        Settlement {
            id: plan.request.id.clone(),
            counters,
        },
        gauges,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use switchboard_api::snapshot::{BudgetConfig, PriceTable};

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn model(input: &str, output: &str, max_out: Option<u32>, ctx: Option<u32>) -> ModelConfig {
        ModelConfig {
            pricing: PriceTable {
                input_per_million: d(input),
                output_per_million: d(output),
                cached_input_per_million: d(input),
                cache_write_per_million: d(input),
                reasoning_per_million: d(output),
                per_request: Decimal::ZERO,
                per_image: Decimal::ZERO,
            },
            context_length: ctx,
            max_output_tokens: max_out,
            capabilities: Default::default(),
        }
    }

    fn bounds(prompt_bytes: u64, max_tokens: Option<u64>, choices: u64) -> RequestBounds {
        RequestBounds {
            prompt_bytes,
            max_tokens,
            choices,
            ..RequestBounds::default()
        }
    }

    #[test]
    fn worst_case_takes_the_dearest_candidate_and_the_output_bound() {
        let cheap = model("1", "2", Some(100), None);
        let dear = model("3", "6", Some(50), None);
        let wc = |models: &[&ModelConfig], b| worst_case_nanos(models.iter().copied(), &b);
        // cheap: 1000*1 + 100*2 = 1200 per million; dear: 1000*3 + 50*6 = 3300 per million.
        assert_eq!(wc(&[&cheap, &dear], bounds(1000, None, 1)), Ok(3_300_000));
        // An explicit max_tokens wins over the model's maximum: dear: 3000 + 10*6 = 3060.
        assert_eq!(
            wc(&[&cheap, &dear], bounds(1000, Some(10), 1)),
            Ok(3_060_000)
        );
        // The context length caps the input bound.
        let small_ctx = model("1", "0", Some(1), Some(10));
        assert_eq!(wc(&[&small_ctx], bounds(1000, None, 1)), Ok(10_000));
        // Unknown output bound: 4096 tokens.
        let unbounded = model("0", "1", None, None);
        assert_eq!(wc(&[&unbounded], bounds(0, None, 1)), Ok(4_096_000));
    }

    /// #16.3: `{"max_tokens": 100, "n": 100}` reserved 100 tokens.
    #[test]
    fn the_worst_case_counts_every_choice() {
        let m = model("0", "1", None, None);
        assert_eq!(
            worst_case_nanos([&m], &bounds(0, Some(100), 100)),
            Ok(10_000_000)
        );
    }

    /// #16.2: `1e11` per million with `max_tokens` 2^62 panicked in `pricing::cost`; now the
    /// request is refused (400 naming `max_tokens`).
    #[test]
    fn a_worst_case_no_ledger_counts_is_an_error() {
        let m = model("0", "100000000000", None, None);
        assert_eq!(
            worst_case_nanos([&m], &bounds(0, Some(1 << 62), 1)),
            Err(Unbounded)
        );
        let e = crate::error::ApiError::from(Unbounded);
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("max_tokens"), "{e}");
        assert_eq!(
            worst_case_nanos([&m], &bounds(0, Some(u64::MAX), u64::MAX)),
            Err(Unbounded)
        );
    }

    #[test]
    fn a_settlement_never_exceeds_the_reservation() {
        let config = RouterConfig::default();
        let key = ApiKeyConfig::test();
        let plan = plan_spend(
            &config,
            &key,
            &[],
            "m",
            "gen-1",
            500,
            bounds(0, None, 1),
            Duration::from_secs(60),
            Timestamp::UNIX_EPOCH,
        );
        let s = settlement(&plan, i64::MAX, u64::MAX);
        assert!(s.counters.iter().all(|(_, n, _)| *n == 500), "{s:?}");
        assert!(
            settlement(&plan, -5, 0)
                .counters
                .iter()
                .all(|(_, n, _)| *n == 0)
        );
    }

    #[test]
    fn charges_cover_budgets_in_scope_rate_limits_and_key_usage() {
        let mut config = RouterConfig::default();
        let key = ApiKeyConfig {
            team: Some("a".into()),
            rate_limits: switchboard_api::snapshot::RateLimits {
                requests_per_minute: Some(10),
                tokens_per_minute: Some(1000),
                concurrent_requests: Some(2),
            },
            ..ApiKeyConfig::test()
        };
        let budget = |models: Vec<String>, action| BudgetConfig {
            limit_usd: d("5"),
            api_keys: ["default/k".into()].into(),
            models,
            action,
            ..BudgetConfig::test()
        };
        config
            .budgets
            .insert("default/all".into(), budget(vec![], BudgetAction::Block));
        config.budgets.insert(
            "default/gpt".into(),
            budget(vec!["openai/*".into()], BudgetAction::AlertOnly),
        );
        config.budgets.insert("default/other".into(), {
            let mut b = budget(vec![], BudgetAction::Block);
            b.api_keys.clear();
            b
        });
        let now: Timestamp = "2026-11-21T10:20:30Z".parse().unwrap();
        let by_key = switchboard_api::snapshot::budgets_by_key(&config);
        let key_budgets = by_key.get("default/k").map_or(&[][..], Vec::as_slice);
        let plan = plan_spend(
            &config,
            &key,
            key_budgets,
            "anthropic/claude",
            "gen-1",
            777,
            bounds(200, Some(0), 1),
            Duration::from_secs(60),
            now,
        );
        let names: Vec<&str> = plan
            .request
            .charges
            .iter()
            .map(|c| c.counter.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "c:default/k",
                "rpm:default/k:1795256400",
                "tpm:default/k:1795256400",
                "b:default/all:m2026-11",
            ]
        );
        // The key's own tallies are not reserved on; the settlement adds the cost to them.
        let tallies: Vec<&str> = plan.tallies.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            tallies,
            [
                "k:default/k:d2026-11-21",
                "k:default/k:w2026-11-16",
                "k:default/k:m2026-11",
                "k:default/k:total",
            ]
        );
        let settled = settlement(&plan, 123, 9);
        assert!(plan.request.check().is_ok() && settled.check().is_ok());
        let settled: Vec<(&str, i64)> = settled
            .counters
            .iter()
            .map(|(c, n, _)| (c.as_str(), *n))
            .collect();
        assert_eq!(
            settled,
            [
                ("c:default/k", 0),
                ("rpm:default/k:1795256400", 1),
                ("tpm:default/k:1795256400", 9),
                ("b:default/all:m2026-11", 123),
                ("k:default/k:d2026-11-21", 123),
                ("k:default/k:w2026-11-16", 123),
                ("k:default/k:m2026-11", 123),
                ("k:default/k:total", 123),
            ]
        );
        assert_eq!(plan.request.charges[3].limit, Some(5_000_000_000));
        assert_eq!(plan.request.charges[3].reserve, 777);
        assert_eq!(plan.request.charges[2].reserve, 50);
        let openai = plan_spend(
            &config,
            &key,
            key_budgets,
            "openai/gpt-4o",
            "gen-2",
            777,
            bounds(200, Some(0), 1),
            Duration::from_secs(60),
            now,
        );
        let gpt = openai
            .request
            .charges
            .iter()
            .find(|c| c.counter.starts_with("b:default/gpt"))
            .unwrap();
        assert_eq!(gpt.limit, None, "alertOnly budgets count without refusing");
        let s = settlement(&plan, 123, 40);
        let actual: Vec<i64> = s.counters.iter().map(|(_, a, _)| *a).collect();
        assert_eq!(actual, [0, 1, 40, 123, 123, 123, 123, 123]);
    }
}
