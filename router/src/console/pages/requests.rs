//! The generation explorer: the usage store's records newest first, filtered by key, team,
//! model, provider, status and time, a page at a time by keyset (the store's cursor, never an
//! offset); and one request with every attempt, its tokens, cost, latency and time to first
//! token.

use std::sync::Arc;

use axum::{
    Extension,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};

use super::store;
use crate::{
    admin::auth::Admin,
    console::{
        format,
        layout::{self, Nav},
    },
    state::AppState,
    usage::{query::GenerationsQuery, record::UsageRecord},
};

/// The filters the form offers, in order: `(parameter, label, placeholder)`.
const FILTERS: [(&str, &str, &str); 7] = [
    ("key", "Key", "namespace/name"),
    ("team", "Team", "ml"),
    ("model", "Model", "openai/gpt-4o-mini"),
    ("provider", "Provider", "openai"),
    ("status", "Status", "200,502"),
    ("from", "From", "2026-01-31 or RFC 3339"),
    ("to", "To", "2026-01-31 or RFC 3339"),
];

/// Rows per page.
const PAGE: usize = 50;

/// The query without empty fields (an empty form field means "any", while the store reads
/// `team=` as "requests without a team"), and with the page size.
pub fn form_params(raw: &[(String, String)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = raw
        .iter()
        .filter(|(k, v)| !v.trim().is_empty() && k != "limit")
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    params.push(("limit".into(), PAGE.to_string()));
    params
}

/// `GET /console/requests`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Response {
    let params = form_params(&raw);
    let value = |name: &str| {
        raw.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let list = match (store(&state), GenerationsQuery::parse(&params)) {
        (Err(why), _) => layout::no_store(&why),
        (_, Err(why)) => html! { p.error role="alert" data-testid="filter-error" { (why) } },
        (Ok(store), Ok(q)) => match store.generations(&q).await {
            Err(e) => layout::no_store(&e.to_string()),
            Ok(page) => {
                let next = page.next.map(|c| {
                    let mut p: Vec<(String, String)> = params
                        .iter()
                        .filter(|(k, _)| k != "cursor" && k != "limit")
                        .cloned()
                        .collect();
                    p.push(("cursor".into(), c.render()));
                    format!("/console/requests{}", format::query_string(&p))
                });
                table(&page.records, next.as_deref())
            }
        },
    };
    let body = html! {
        h1 { "Requests" }
        form.filters method="get" action="/console/requests" hx-get="/console/requests" hx-target="#main" hx-select="#main" hx-swap="outerHTML" hx-push-url="true" {
            @for (name, label, placeholder) in FILTERS {
                label { (label) " " input type="text" name=(name) value=(value(name)) placeholder=(placeholder); }
            }
            button type="submit" { "Filter" }
            a href="/console/requests" { "Clear" }
        }
        div #results { (list) }
    };
    layout::respond(&headers, |csrf| {
        layout::page(Nav::Requests, Some(&admin), csrf, body)
    })
}

fn table(records: &[UsageRecord], next: Option<&str>) -> Markup {
    html! {
        table.requests {
            thead { tr {
                th { "Time (UTC)" } th { "Key" } th { "Team" } th { "Model" } th { "Provider" } th.num { "Status" }
                th.num { "Tokens in / out" } th.num { "Cost" } th.num { "Latency" } th.num { "TTFT" }
            } }
            tbody {
                @for r in records {
                    tr data-generation=(r.id) {
                        td { a href=(format!("/console/requests/{}", r.id)) { (format::time_ms(r.created_at_ms)) } }
                        td { code { (r.key_id) } }
                        td { (format::or_dash(r.team.as_deref())) }
                        td data-model=(r.billed_model()) { (r.billed_model()) }
                        td { (format::or_dash(r.provider.as_deref())) }
                        td.num { span class=(if r.status >= 400 { "bad" } else { "good" }) { (r.status) } }
                        td.num { (format::count(r.tokens.prompt_tokens as i64)) " / " (format::count(r.tokens.completion_tokens as i64)) }
                        td.num data-exact=(format::usd_exact(r.cost_nanos)) { (format::usd(r.cost_nanos)) }
                        td.num { (format::millis(r.latency_ms)) }
                        td.num { (r.ttft_ms.map_or("–".to_string(), format::millis)) }
                    }
                }
                @if records.is_empty() { tr { td colspan="10" .empty { "No requests match." } } }
            }
        }
        @if let Some(next) = next { p { a.pill #next-page href=(next) { "Older →" } } }
    }
}

/// `GET /console/requests/{id}`: one request with its attempts.
pub async fn detail(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let found = match state.generations.get(&id) {
        Some(r) => Ok(Some((*r).clone())),
        None => match store(&state) {
            Ok(store) => store.generation(&id).await.map_err(|e| e.to_string()),
            Err(why) => Err(why),
        },
    };
    let (status, body) = match found {
        Ok(Some(r)) => (StatusCode::OK, record(&r)),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            html! { h1 { "Request not found" } p { "No request " code { (id) } " is recorded." } },
        ),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, layout::no_store(&why)),
    };
    let mut resp = layout::respond(&headers, |csrf| {
        layout::page(Nav::Requests, Some(&admin), csrf, body)
    });
    *resp.status_mut() = status;
    resp.into_response()
}

fn record(r: &UsageRecord) -> Markup {
    let t = &r.tokens;
    html! {
        h1 { "Request " code { (r.id) } }
        dl.facts data-generation=(r.id) {
            dt { "Time (UTC)" } dd { (format::time_ms(r.created_at_ms)) }
            dt { "Endpoint" } dd { (r.endpoint) @if r.streamed { " · streamed" } }
            dt { "Key" } dd { code { (r.key_id) } }
            dt { "Team" } dd { (format::or_dash(r.team.as_deref())) }
            dt { "App" } dd { (format::or_dash(r.app.as_deref())) }
            dt { "User" } dd { (format::or_dash(r.user.as_deref())) }
            dt { "Tags" } dd { @if r.tags.is_empty() { "–" } @else { (r.tags.join(", ")) } }
            dt { "Model asked for" } dd data-field="model" { (r.model) }
            dt { "Model served" } dd { (r.billed_model()) }
            dt { "Provider · upstream model" } dd { (format::or_dash(r.provider.as_deref())) " · " (format::or_dash(r.upstream_model.as_deref())) }
            dt { "Status" } dd data-field="status" { (r.status) @if let Some(c) = &r.error_code { " · " (c) } }
            dt { "Finish reason" } dd { (format::or_dash(r.finish_reason.as_deref())) }
            dt { "Tokens" } dd data-field="tokens" {
                (t.prompt_tokens) " in (" (t.cached_tokens) " cached, " (t.cache_write_tokens) " cache writes) · "
                (t.completion_tokens) " out (" (t.reasoning_tokens) " reasoning)"
            }
            dt { "Cost" } dd data-field="cost" data-exact=(format::usd_exact(r.cost_nanos)) { (format::usd(r.cost_nanos)) }
            dt { "Latency" } dd data-field="latency" { (format::millis(r.latency_ms)) }
            dt { "Time to first token" } dd data-field="ttft" { (r.ttft_ms.map_or("–".to_string(), format::millis)) }
        }
        h2 { "Attempts" }
        table.attempts {
            thead { tr { th { "#" } th { "Provider" } th { "Upstream model" } th { "Outcome" } th.num { "Upstream status" } th.num { "Latency" } } }
            tbody {
                @for (i, a) in r.attempts.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { (a.provider) }
                        td { (a.model) }
                        td { @if a.ok { span.good { "served" } } @else { span.bad { (a.error_type.as_deref().unwrap_or("failed")) } } }
                        td.num { (a.status.map_or("–".to_string(), |s| s.to_string())) }
                        td.num { (format::millis(a.latency_ms)) }
                    }
                }
                @if r.attempts.is_empty() { tr { td colspan="6" .empty { "No upstream was tried (refused before routing)." } } }
            }
        }
        p { a href="/console/requests" { "← All requests" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_form_fields_mean_any_and_the_page_size_is_fixed() {
        let got = form_params(&p(&[("team", ""), ("model", " m "), ("limit", "500")]));
        assert_eq!(got, p(&[("model", "m"), ("limit", "50")]));
        assert!(GenerationsQuery::parse(&got).is_ok());
    }

    #[test]
    fn the_next_page_link_keeps_the_filters_encoded() {
        let q = format::query_string(&p(&[("model", "<script>&x"), ("cursor", "12.gen-a")]));
        assert_eq!(q, "?model=%3Cscript%3E%26x&cursor=12.gen-a");
    }
}
