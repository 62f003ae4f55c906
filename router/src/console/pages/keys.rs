//! Every ApiKey: name, team, prefix (never the key), spend this month (the ledger) and over the
//! last 30 days (the rollups), limits, expiry, when it was last used, and the budgets covering
//! it. A hundred keys to a page, by key id.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use http::HeaderMap;
use jiff::Timestamp;
use maud::{Markup, html};
use switchboard_api::{counters::key_usage_counter, snapshot::BudgetWindow};
use switchboard_ledger::CounterState;

use super::{AfterQuery, PAGE_ROWS, next_link, page_after, report, store};
use crate::{
    admin::auth::Admin,
    console::{
        format,
        layout::{self, Nav},
        queries,
    },
    state::AppState,
    usage::{
        query::{Dim, today},
        rollup::Totals,
    },
};

/// `GET /console/keys`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    Query(q): Query<AfterQuery>,
) -> Response {
    let body = content(&state, q.after.as_deref()).await;
    layout::respond(&headers, |csrf| {
        layout::page(Nav::Keys, Some(&admin), csrf, body)
    })
}

async fn content(state: &AppState, after: Option<&str>) -> Markup {
    let Some(runtime) = state.runtime() else {
        return html! { h1 { "Keys" } p.notice { "No config is loaded yet." } };
    };
    let now = Timestamp::now();
    let mut all: Vec<_> = runtime
        .config
        .api_keys
        .values()
        .map(|k| (k.id(), k))
        .collect();
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let (start, keys, more) = page_after(&all, |(id, _)| id, after, PAGE_ROWS);
    let ids: Vec<String> = keys.iter().map(|(id, _)| id.clone()).collect();
    let counters: Vec<String> = ids
        .iter()
        .map(|id| key_usage_counter(id, BudgetWindow::Monthly, now))
        .collect();
    let month = state.settler.ledger().read(&counters).await;
    let mut notices = Vec::new();
    let month = month.unwrap_or_else(|e| {
        notices.push(format!("The ledger did not answer: {e}"));
        vec![CounterState::default(); counters.len()]
    });
    let mut usage: HashMap<String, Totals> = HashMap::new();
    let mut last_used: HashMap<String, i64> = HashMap::new();
    match store(state) {
        Ok(store) if !ids.is_empty() => {
            let t = today();
            let filter = vec![(Dim::Key, ids.clone())];
            match report(store, t - 29, t, vec![Dim::Key], filter, PAGE_ROWS).await {
                Ok(r) => {
                    for row in r.rows {
                        usage.insert(row.groups[0].clone(), row.totals);
                    }
                }
                Err(e) => notices.push(e.to_string()),
            }
            for id in &ids {
                match queries::last_used(store, id).await {
                    Ok(Some(at)) => {
                        last_used.insert(id.clone(), at);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        notices.push(e.to_string());
                        break;
                    }
                }
            }
        }
        Ok(_) => {}
        Err(why) => notices.push(why),
    }
    html! {
        h1 { "Keys" }
        @for n in &notices { p.notice { (n) } }
        @if !keys.is_empty() { p.muted #page-range { (format::count(start as i64 + 1)) "–" (format::count((start + keys.len()) as i64)) " of " (format::count(all.len() as i64)) " keys" } }
        table.keys {
            thead { tr {
                th { "Key" } th { "Team" } th { "Prefix" } th.num { "Spend this month" } th.num { "Spend (30 d)" }
                th.num { "Requests (30 d)" } th { "Limits" } th { "Expires" } th { "Last used" } th { "Budgets" } th { "State" }
            } }
            tbody {
                @for ((id, k), m) in keys.iter().zip(&month) {
                    @let u = usage.get(id).copied().unwrap_or_default();
                    @let limits = &k.rate_limits;
                    tr data-key=(id) {
                        td { code { (id) } }
                        td { (format::or_dash(k.team.as_deref())) }
                        td { code { (k.prefix) } }
                        td.num data-exact=(format::usd_exact(m.spent)) { (format::usd(m.spent)) }
                        td.num data-exact=(format::usd_exact(u.cost_nanos)) { (format::usd(u.cost_nanos)) }
                        td.num data-requests=(u.requests) { (format::count(u.requests)) }
                        td {
                            @if let Some(n) = limits.requests_per_minute { (n) " req/min " }
                            @if let Some(n) = limits.tokens_per_minute { (n) " tok/min " }
                            @if let Some(n) = limits.concurrent_requests { (n) " concurrent" }
                            @if limits.requests_per_minute.is_none() && limits.tokens_per_minute.is_none() && limits.concurrent_requests.is_none() { "–" }
                        }
                        td { (k.expires_at.map_or("never".to_string(), format::time_s)) }
                        td { (last_used.get(id).map_or("–".to_string(), |ms| format::time_ms(*ms))) }
                        td { @for (i, b) in runtime.budgets_of(id).iter().enumerate() { @if i > 0 { ", " } a href="/console/budgets" { (b) } } }
                        td { @if k.disabled { span.bad { "disabled" } } @else if k.expires_at.is_some_and(|e| e <= now.as_second()) { span.bad { "expired" } } @else { span.good { "active" } } }
                    }
                }
                @if all.is_empty() { tr { td colspan="11" .empty { "No ApiKey objects are configured." } } }
            }
        }
        @if let Some((last, _)) = more { p { a.pill #next-page href=(next_link("/console/keys", last)) { "Next →" } } }
    }
}
