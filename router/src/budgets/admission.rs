//! Admission against budgets and key limits: before any upstream is called, the request's worst
//! case is reserved in the ledger on every counter in scope, atomically; a refusal names the
//! budget or limit. When the ledger is unreachable, each budget's `failureMode` decides: `closed`
//! (default) refuses with 503, `open` admits the request uncounted for now — its settlement is
//! still queued and recorded once the ledger is back.

use std::time::Duration;

use jiff::Timestamp;
use switchboard_api::money::from_nanos;
use switchboard_ledger::Reserved;

use super::spend::{Role, plan_spend, worst_case_nanos};
use crate::{
    auth::Caller, error::ApiError, observability::access::Access, routing::Plan, state::AppState,
};

/// How long a reservation outlives the longest its request can take.
pub const RESERVATION_MARGIN: Duration = Duration::from_secs(5);

/// Reserves the request's worst case; on success the reservation rides on `access` and is settled
/// when it drops.
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    plan: &Plan<'_>,
    prompt_bytes: u64,
    max_tokens: Option<u64>,
    access: &mut Access,
) -> Result<(), ApiError> {
    let key = caller.key();
    let candidates = || plan.models.iter().flat_map(|m| m.candidates.iter());
    let worst_case = worst_case_nanos(candidates().map(|c| c.model), prompt_bytes, max_tokens);
    let token_estimate = prompt_bytes.div_ceil(4) + max_tokens.unwrap_or(0);
    // A reservation must outlive its request: the longest total timeout of any candidate, or
    // the route's deadline, plus a margin for settling. If the router dies, it lapses then.
    let longest_ms = candidates()
        .map(|c| c.provider.config.timeouts.total_ms)
        .chain(plan.models.iter().filter_map(|m| m.route.deadline_ms))
        .max()
        .unwrap_or(600_000);
    let hold_for = Duration::from_millis(longest_ms) + RESERVATION_MARGIN;
    let now = Timestamp::now();
    let spend = plan_spend(
        &caller.runtime.config,
        key,
        &access.model,
        &access.generation_id,
        worst_case,
        token_estimate,
        hold_for,
        now,
    );
    let m = &state.metrics;
    match state.settler.ledger().reserve(&spend.request).await {
        Ok(Reserved::Admitted { used }) => {
            for (role, used) in spend.roles.iter().zip(&used) {
                if let Role::Budget {
                    id,
                    limit,
                    soft_limit_percent,
                    ..
                } = role
                {
                    let left =
                        rust_decimal::prelude::ToPrimitive::to_f64(&from_nanos(limit - used));
                    m.budget_remaining_usd
                        .with_label_values(&[id])
                        .set(left.unwrap_or(0.0));
                    let ratio = if *limit > 0 {
                        *used as f64 / *limit as f64
                    } else {
                        1.0
                    };
                    m.budget_used_ratio.with_label_values(&[id]).set(ratio);
                    if let Some(p) = soft_limit_percent {
                        let soft = f64::from(*p) / 100.0;
                        m.budget_soft_limit_ratio.with_label_values(&[id]).set(soft);
                        if ratio >= soft {
                            tracing::warn!(budget = %id, used_ratio = ratio, "budget soft limit reached");
                        }
                    }
                }
            }
            m.reservations_outstanding.inc();
            access.spend = Some(spend);
            Ok(())
        }
        Ok(Reserved::Refused { index, used, limit }) => {
            let retry_after = Duration::from_secs(
                u64::try_from((spend.minute_resets_at - now).get_seconds())
                    .unwrap_or(1)
                    .max(1),
            );
            let key_name = key.name.clone();
            let (reason, err) = match &spend.roles[index] {
                Role::Budget { id, resets_at, .. } => (
                    "budget",
                    ApiError::BudgetExceeded {
                        budget: id.clone(),
                        remaining: from_nanos((limit - used).max(0)),
                        cost: from_nanos(spend.worst_case),
                        window: resets_at
                            .map(|t| format!(" in this window (resets at {t})"))
                            .unwrap_or_default(),
                    },
                ),
                Role::RequestsPerMinute(n) => (
                    "requests_per_minute",
                    ApiError::KeyRateLimited {
                        key: key_name,
                        what: "requests per minute",
                        max: u64::from(*n),
                        header: Some("requests"),
                        retry_after,
                    },
                ),
                Role::TokensPerMinute(n) => (
                    "tokens_per_minute",
                    ApiError::KeyRateLimited {
                        key: key_name,
                        what: "tokens per minute",
                        max: *n,
                        header: Some("tokens"),
                        retry_after,
                    },
                ),
                Role::Concurrent(n) => (
                    "concurrent_requests",
                    ApiError::KeyRateLimited {
                        key: key_name,
                        what: "concurrent requests",
                        max: u64::from(*n),
                        header: None,
                        retry_after: Duration::from_secs(1),
                    },
                ),
            };
            m.limit_rejections.with_label_values(&[reason]).inc();
            Err(err)
        }
        Err(e) => {
            m.ledger_errors.with_label_values(&["reserve"]).inc();
            let closed = spend.roles.iter().find_map(|r| match r {
                Role::Budget {
                    id,
                    failure_mode: switchboard_api::snapshot::FailureMode::Closed,
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
