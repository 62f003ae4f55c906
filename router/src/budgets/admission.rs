//! Admission against budgets and key limits: before any upstream is called, the request's worst
//! case is reserved in the ledger on every counter in scope, atomically; a refusal names the
//! budget or limit. When the ledger is unreachable, each budget's `failureMode` decides: `closed`
//! (default) refuses with 503, `open` admits the request uncounted for now — its settlement is
//! still queued and recorded once the ledger is back.
//!
//! Every endpoint comes here with its [`RequestBounds`]: the worst case is derived from them in
//! one place ([`spend_plan`]), so an endpoint added later reserves the same way.
//!
//! A refusal by a blocking budget is not final when the Budget or the ApiKey fits requests
//! (`fitMaxTokens`): the output limit is lowered to what that budget still covers ([`fitting`],
//! searching the very worst-case function reserved with), and the lowered request is reserved
//! again, at most [`FIT_ROUNDS`] times (another budget in scope, or a concurrent request, may
//! refuse the lowered one too). The limit admitted is noted on the record
//! (`Access::fitted_max_tokens`) for the pipeline to send upstream.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use jiff::Timestamp;
use switchboard_api::money::from_nanos;
use switchboard_ledger::Reserved;

use switchboard_api::snapshot::FailureMode;

use super::{
    bounds::RequestBounds,
    fitting,
    spend::{Role, SpendPlan, plan_spend, worst_case_nanos},
};
use crate::{
    auth::Caller,
    error::ApiError,
    observability::{access::Access, metrics::Metrics},
    routing::Plan,
    state::AppState,
};

/// How long a reservation outlives the longest its request can take.
pub const RESERVATION_MARGIN: Duration = Duration::from_secs(5);

/// How many times a refused request is fitted and reserved again before the refusal stands.
pub const FIT_ROUNDS: usize = 4;

/// Reserves the worst case of a request bounded by `bounds`; on success the reservation rides on
/// `access` and is settled when it drops, and a fitted output limit is in
/// `access.fitted_max_tokens`. A worst case no ledger counts is a 400 naming `max_tokens`.
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    plan: &Plan<'_>,
    mut bounds: RequestBounds,
    access: &mut Access,
) -> Result<(), ApiError> {
    let now = Timestamp::now();
    let m = &state.metrics;
    let mut round = 0;
    let (spend, reserved) = loop {
        let spend = spend_plan(caller, plan, bounds.clone(), access, now)?;
        let reserved = state.settler.ledger().reserve(&spend.request).await;
        if let Ok(Reserved::Refused { index, used, limit }) = &reserved
            && round < FIT_ROUNDS
            && let Some(n) = refit(
                caller,
                plan,
                &spend,
                *index,
                limit.saturating_sub(*used),
                &bounds,
            )
        {
            round = round.saturating_add(1);
            bounds.max_tokens = Some(n);
            access.fitted_max_tokens = Some(n);
            continue;
        }
        break (spend, reserved);
    };
    match reserved {
        Ok(Reserved::Admitted { used }) => {
            record_budget_use(m, &spend, &used);
            m.reservations_outstanding.inc();
            access.spend = Some(spend);
            Ok(())
        }
        Ok(Reserved::Refused { index, used, limit }) => {
            access.fitted_max_tokens = None;
            let (reason, err) = refusal(caller, &spend, index, used, limit, now);
            m.limit_rejections.with_label_values(&[reason]).inc();
            Err(err)
        }
        Err(e) => {
            m.ledger_errors.with_label_values(&["reserve"]).inc();
            let closed = spend.roles.iter().find_map(|r| match r {
                Role::Budget {
                    id,
                    failure_mode: FailureMode::Closed,
                    ..
                } => Some(id.clone()),
                _ => None,
            });
            if let Some(budget) = closed {
                tracing::error!(%budget, "{e}; refusing (failureMode: closed)");
                return Err(ApiError::LedgerUnavailable(budget));
            }
            tracing::warn!("{e}; admitting uncounted (no budget in scope fails closed)");
            m.reservations_outstanding.inc();
            access.spend = Some(spend);
            Ok(())
        }
    }
}

/// The output limit to reserve again with after charge `index` of `spend` refused the request
/// with `room` nano-dollars left: when that charge is a budget and the key or the budget fits
/// requests, the largest limit its room covers (never below the floor), if that is lower than
/// the request's.
fn refit(
    caller: &Caller,
    plan: &Plan<'_>,
    spend: &SpendPlan,
    index: usize,
    room: i64,
    bounds: &RequestBounds,
) -> Option<u64> {
    let Some(Role::Budget { id, .. }) = spend.roles.get(index) else {
        return None;
    };
    let budget_floor = caller
        .runtime
        .config
        .budgets
        .get(id)
        .and_then(|b| b.fit_min_tokens);
    let floor = fitting::floor(caller.key().fit_min_tokens, budget_floor)?;
    let candidates = || plan.models.iter().flat_map(|m| m.candidates.iter());
    // Without a limit of its own, a request may write as much as its dearest candidate allows.
    let requested = bounds.max_tokens.unwrap_or_else(|| {
        candidates()
            .map(|c| bounds.default_output(c.model))
            .max()
            .unwrap_or(super::bounds::DEFAULT_MAX_OUTPUT)
    });
    let worst = |n| {
        let fitted = RequestBounds {
            max_tokens: Some(n),
            ..bounds.clone()
        };
        // A limit no ledger can price does not fit.
        worst_case_nanos(candidates().map(|c| c.model), &fitted).unwrap_or(i64::MAX)
    };
    fitting::fit(requested, floor, room, worst).filter(|n| *n < requested)
}

/// The charges of the request: its worst case on every candidate of the plan, held for as long
/// as the request can live.
fn spend_plan(
    caller: &Caller,
    plan: &Plan<'_>,
    bounds: RequestBounds,
    access: &Access,
    now: Timestamp,
) -> Result<SpendPlan, ApiError> {
    let candidates = || plan.models.iter().flat_map(|m| m.candidates.iter());
    let worst_case = worst_case_nanos(candidates().map(|c| c.model), &bounds)?;
    // A reservation must outlive its request: the longest total timeout of any candidate, or
    // the route's deadline, plus a margin for settling. If the router dies, it lapses then.
    let longest_ms = candidates()
        .map(|c| c.provider.config.timeouts.total_ms)
        .chain(plan.models.iter().filter_map(|m| m.route.deadline_ms))
        .max()
        .unwrap_or(600_000);
    let hold_for = Duration::from_millis(longest_ms).saturating_add(RESERVATION_MARGIN);
    Ok(plan_spend(
        &caller.runtime.config,
        caller.key(),
        caller.runtime.budgets_of(&caller.key().id()),
        &access.model,
        &access.generation_id,
        worst_case,
        bounds,
        hold_for,
        now,
    ))
}

/// The budget gauges after an admission: what is left, how much is used, the soft limit.
fn record_budget_use(m: &Metrics, spend: &SpendPlan, used: &[i64]) {
    let gauges = m.budget_gauges();
    for (role, used) in spend.roles.iter().zip(used) {
        let Role::Budget {
            id,
            limit,
            soft_limit_percent,
            ..
        } = role
        else {
            continue;
        };
        gauges.show(id, *limit, *used);
        let ratio = if *limit > 0 {
            *used as f64 / *limit as f64
        } else {
            1.0
        };
        if let Some(p) = soft_limit_percent {
            let soft = f64::from(*p) / 100.0;
            m.budget_soft_limit_ratio.with_label_values(&[id]).set(soft);
            if ratio >= soft {
                tracing::warn!(budget = %id, used_ratio = ratio, "budget soft limit reached");
            }
        }
    }
}

/// The metric reason and the client's error when charge `index` refused the request: its counter
/// stood at `used` of `limit`.
fn refusal(
    caller: &Caller,
    spend: &SpendPlan,
    index: usize,
    used: i64,
    limit: i64,
    now: Timestamp,
) -> (&'static str, ApiError) {
    let retry_after = Duration::from_secs(
        u64::try_from(
            spend
                .minute_resets_at
                .as_second()
                .saturating_sub(now.as_second()),
        )
        .unwrap_or(1)
        .max(1),
    );
    let key = caller.key().name.clone();
    let rate_limited = |what, max, header| ApiError::KeyRateLimited {
        key: key.clone(),
        what,
        max,
        header,
        retry_after,
    };
    let Some(role) = spend.roles.get(index) else {
        return (
            "budget",
            ApiError::Internal(format!("the ledger refused unknown charge {index}")),
        );
    };
    match role {
        Role::Budget { id, resets_at, .. } => (
            "budget",
            ApiError::BudgetExceeded {
                budget: id.clone(),
                remaining: from_nanos(limit.saturating_sub(used).max(0)),
                cost: from_nanos(spend.worst_case),
                window: resets_at
                    .map(|t| format!(" in this window (resets at {t})"))
                    .unwrap_or_default(),
            },
        ),
        Role::RequestsPerMinute(n) => (
            "requests_per_minute",
            rate_limited("requests per minute", u64::from(*n), Some("requests")),
        ),
        Role::TokensPerMinute(n) => (
            "tokens_per_minute",
            rate_limited("tokens per minute", *n, Some("tokens")),
        ),
        Role::Concurrent(n) => (
            "concurrent_requests",
            ApiError::KeyRateLimited {
                key,
                what: "concurrent requests",
                max: u64::from(*n),
                header: None,
                retry_after: Duration::from_secs(1),
            },
        ),
    }
}
