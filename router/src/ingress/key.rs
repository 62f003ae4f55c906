//! `GET /api/v1/key`: the caller's own key — its limits, spend per window, what is left of each
//! budget in scope, rate limits and expiry. Field names follow OpenRouter's where they fit
//! (`usage`, `usage_daily`, `usage_weekly`, `usage_monthly`, `limit`, `limit_remaining`,
//! `rate_limit`, `expires_at`); USD amounts are JSON numbers there, and exact decimal strings under
//! `budgets`.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use jiff::Timestamp;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::{Value, json};
use switchboard_api::{
    counters::{budget_counter, key_usage_counter},
    money::from_nanos,
    snapshot::{BudgetAction, BudgetConfig, BudgetWindow},
    windows::window_bounds,
};
use switchboard_ledger::CounterState;

use super::intake::{authenticate, new_generation_id};
use crate::{error::ApiError, observability::access::Access, state::AppState};

fn number(usd: Decimal) -> Value {
    json!(usd.to_f64().unwrap_or(0.0))
}

/// Handles the key lookup.
pub async fn handle(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut access = Access::new(state.clone(), "key", new_generation_id());
    let caller = match authenticate(&state, &headers, &mut access) {
        Ok(c) => c,
        Err(e) => {
            access.status = e.status().as_u16();
            return e.into_response();
        }
    };
    let key = caller.key();
    let key_id = key.id();
    let now = Timestamp::now();
    let budgets: Vec<_> = caller
        .runtime
        .budgets_of(&key_id)
        .iter()
        .filter_map(|id| caller.runtime.config.budgets.get_key_value(&**id))
        .collect();
    let mut counters: Vec<String> = WINDOWS
        .iter()
        .map(|w| key_usage_counter(&key_id, *w, now))
        .collect();
    counters.extend(
        budgets
            .iter()
            .map(|(id, b)| budget_counter(id, b.window, now)),
    );
    let states = match state.settler.ledger().read(&counters).await {
        Ok(s) => s,
        Err(e) => {
            state
                .metrics
                .ledger_errors
                .with_label_values(&["read"])
                .inc();
            tracing::warn!("{e}");
            let err = ApiError::LedgerUnavailable("(reading usage)".into());
            access.status = err.status().as_u16();
            return err.into_response();
        }
    };
    let spent = |i: usize| from_nanos(states[i].spent);
    let (budget_json, tightest) = budget_entries(&budgets, &states[WINDOWS.len()..], now);
    let limits = &key.rate_limits;
    let expires_at = key
        .expires_at
        .and_then(|t| Timestamp::from_second(t).ok())
        .map(|t| t.to_string());
    Json(json!({"data": {
        "label": key.prefix,
        "name": key.name,
        "team": key.team,
        "usage": number(spent(3)),
        "usage_daily": number(spent(0)),
        "usage_weekly": number(spent(1)),
        "usage_monthly": number(spent(2)),
        "limit": tightest.map(|(l, _)| number(l)),
        "limit_remaining": tightest.map(|(_, r)| number(r)),
        "is_free_tier": false,
        "expires_at": expires_at,
        "rate_limit": {"requests": limits.requests_per_minute, "interval": "1m"},
        "rate_limits": {
            "requests_per_minute": limits.requests_per_minute,
            "tokens_per_minute": limits.tokens_per_minute,
            "concurrent_requests": limits.concurrent_requests,
        },
        "budgets": budget_json,
    }}))
    .into_response()
}

/// The windows of the key's own usage counters, in the order they are read.
const WINDOWS: [BudgetWindow; 4] = [
    BudgetWindow::Daily,
    BudgetWindow::Weekly,
    BudgetWindow::Monthly,
    BudgetWindow::Total,
];

/// Each budget in scope with its counter's `states`, and the tightest blocking budget as
/// `(limit, remaining)`.
fn budget_entries(
    budgets: &[(&String, &BudgetConfig)],
    states: &[CounterState],
    now: Timestamp,
) -> (Vec<Value>, Option<(Decimal, Decimal)>) {
    let mut tightest: Option<(Decimal, Decimal)> = None;
    let entries = budgets
        .iter()
        .zip(states)
        .map(|((id, b), s)| {
            let used = from_nanos(s.spent);
            let remaining = (b.limit_usd - from_nanos(s.spent + s.reserved)).max(Decimal::ZERO);
            let blocks = b.action == BudgetAction::Block;
            if blocks && tightest.is_none_or(|(_, left)| remaining < left) {
                tightest = Some((b.limit_usd, remaining));
            }
            let (start, end) = window_bounds(b.window, now);
            json!({
                "name": id,
                "window": b.window.name(),
                "window_start": (b.window != BudgetWindow::Total).then(|| start.to_string()),
                "resets_at": end.map(|e| e.to_string()),
                "limit_usd": b.limit_usd.normalize().to_string(),
                "spent_usd": used.to_string(),
                "reserved_usd": from_nanos(s.reserved).to_string(),
                "remaining_usd": remaining.normalize().to_string(),
                "action": if blocks { "block" } else { "alertOnly" },
                "models": b.models,
            })
        })
        .collect();
    (entries, tightest)
}
