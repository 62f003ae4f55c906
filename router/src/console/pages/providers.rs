//! Providers & routes: health per target as this replica sees it (tier, ejection, error rate in
//! the health window, median time to first token and throughput), every route with its targets
//! and their prices, the providers, and every config object with its verdict (the rejected ones
//! and why). Routes and objects come a hundred to a page each, keyset by model and by object
//! name (`?after=` and `?objects_after=`), like the keys page: a config of thousands of keys and
//! routes does not make one huge page.

use std::{sync::Arc, time::Instant};

use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use http::HeaderMap;
use maud::{Markup, html};

use super::{PAGE_ROWS, page_after};
use crate::{
    admin::auth::Admin,
    config::runtime::ObjectStatus,
    console::{
        format,
        layout::{self, Nav},
    },
    routing::health::{TargetStats, Tier},
    state::AppState,
};

/// The page's query: where the routes' page and the objects' page start.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ProvidersQuery {
    /// The last model of the previous page of routes.
    after: Option<String>,
    /// The last object of the previous page of objects.
    objects_after: Option<String>,
}

impl ProvidersQuery {
    /// This page's link with the routes' cursor `after` and the objects' `objects_after`.
    fn link(after: Option<&str>, objects_after: Option<&str>) -> String {
        let mut p = Vec::new();
        if let Some(a) = after {
            p.push(("after".to_string(), a.to_string()));
        }
        if let Some(o) = objects_after {
            p.push(("objects_after".to_string(), o.to_string()));
        }
        format!("/console/providers{}", format::query_string(&p))
    }
}

/// `GET /console/providers`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    Query(q): Query<ProvidersQuery>,
) -> Response {
    let body = content(&state, &q);
    layout::respond(&headers, |csrf| {
        layout::page(Nav::Providers, Some(&admin), csrf, body)
    })
}

fn tier(stats: Option<&TargetStats>) -> Markup {
    let Some(s) = stats else {
        return html! { span.muted { "no traffic yet" } };
    };
    let (class, label) = match s.view.tier {
        Tier::Healthy => ("good", "healthy"),
        Tier::Degraded => ("warn", "degraded"),
        Tier::Probe => ("warn", "probing"),
        Tier::Ejected => ("bad", "ejected"),
    };
    html! {
        span class=(class) data-tier=(label) { (label) }
        @if let Some(left) = s.ejected_for { " (" (format::millis(left.as_millis() as u64)) " left)" }
        @if let Some(c) = s.view.cooling { " · cooling " (format::millis(c.as_millis() as u64)) }
    }
}

fn content(state: &AppState, q: &ProvidersQuery) -> Markup {
    let Some(runtime) = state.runtime() else {
        return html! { h1 { "Providers & routes" } p.notice { "No config is loaded yet." } };
    };
    let config = &runtime.config;
    let now = Instant::now();
    let rejected = runtime.objects.iter().filter(|o| !o.ready).count();
    // Routes are in model order already (a BTreeMap); objects are sorted here.
    let all_routes: Vec<_> = config.routes.iter().collect();
    let (route_start, routes, more_routes) = page_after(
        &all_routes,
        |(model, _)| model.as_str(),
        q.after.as_deref(),
        PAGE_ROWS,
    );
    let mut all_objects: Vec<&ObjectStatus> = runtime.objects.iter().collect();
    all_objects.sort_unstable_by(|a, b| a.object.cmp(&b.object));
    let (object_start, objects, more_objects) = page_after(
        &all_objects,
        |o| o.object.as_str(),
        q.objects_after.as_deref(),
        PAGE_ROWS,
    );
    let range = |start: usize, shown: usize, of: usize, what: &str| {
        format!(
            "{}–{} of {} {what}",
            format::count(start as i64 + 1),
            format::count((start + shown) as i64),
            format::count(of as i64)
        )
    };
    html! {
        h1 { "Providers & routes" }
        p.muted { "Config version " (config.version) " · " code { (config.hash.chars().take(12).collect::<String>()) }
            ". Health is this replica's view over the last " (format::millis(state.settings.health.window.as_millis() as u64)) "." }
        h2 { "Routes" }
        table.routes {
            thead { tr {
                th { "Model" } th { "Target (provider / upstream model)" } th.num { "Priority · weight" } th { "Health" }
                th.num { "Error rate" } th.num { "Median TTFT" } th.num { "Tokens/s" } th.num { "Input $/M" } th.num { "Output $/M" }
            } }
            tbody {
                @for (model, route) in routes {
                    @for (i, t) in route.targets.iter().enumerate() {
                        @let stats = state.health.stats(&t.provider, &t.model, now);
                        @let price = config.providers.get(&t.provider).and_then(|p| p.models.get(&t.model)).map(|m| &m.pricing);
                        tr data-route=(model) data-target=(format!("{}/{}", t.provider, t.model)) {
                            td { @if i == 0 { code { (model) } @if !route.fallback_models.is_empty() { br; span.muted { "then " (route.fallback_models.join(", ")) } } } }
                            td { (t.provider) " / " (t.model) }
                            td.num { (t.priority) " · " (t.weight) }
                            td { (tier(stats.as_ref())) }
                            td.num { (stats.map_or("–".to_string(), |s| format!("{} of {}", format::percent(s.failures as i64, s.outcomes as i64), s.outcomes))) }
                            td.num { (stats.and_then(|s| s.view.latency_ms).map_or("–".to_string(), |ms| format::millis(ms as u64))) }
                            td.num { (stats.and_then(|s| s.view.throughput).map_or("–".to_string(), |r| format!("{r:.0}"))) }
                            td.num { (price.map_or("–".to_string(), |p| p.input_per_million.normalize().to_string())) }
                            td.num { (price.map_or("–".to_string(), |p| p.output_per_million.normalize().to_string())) }
                        }
                    }
                }
                @if config.routes.is_empty() { tr { td colspan="9" .empty { "No routes are configured." } } }
            }
        }
        @if !routes.is_empty() { p.muted #page-range { (range(route_start, routes.len(), all_routes.len(), "routes")) } }
        @if let Some((last, _)) = more_routes {
            p { a.pill #next-page href=(ProvidersQuery::link(Some(last), q.objects_after.as_deref())) { "Next routes →" } }
        }
        h2 { "Providers" }
        table.providers {
            thead { tr { th { "Provider" } th { "Type" } th { "Base URL" } th.num { "Models" } th.num { "Max concurrent" } th { "Credential" } } }
            tbody {
                @for (id, p) in &config.providers {
                    tr {
                        td { code { (id) } }
                        td { (format!("{:?}", p.provider_type)) }
                        td { (format::or_dash(p.base_url.as_deref())) }
                        td.num { (p.models.len()) }
                        td.num { (p.max_concurrent_requests.map_or("–".to_string(), |n| n.to_string())) }
                        td { @match runtime.providers.get(id).map(|r| &r.credential) {
                            Some(Err(why)) => span.bad title=(why) { "unavailable" },
                            Some(Ok(None)) => span.muted { "none" },
                            _ => span.good { "set" },
                        } }
                    }
                }
            }
        }
        h2 { "Config objects" }
        p.muted { (runtime.objects.len()) " objects, " (rejected) " rejected." }
        table.objects {
            thead { tr { th { "Object" } th { "Verdict" } th { "Reason" } th { "Message" } } }
            tbody {
                @for o in objects {
                    tr data-object=(o.object) data-ready=(o.ready) {
                        td { code { (o.object) } }
                        td { @if o.ready { span.good { "ready" } } @else { span.bad { "rejected" } } }
                        td { (o.reason) }
                        td { (o.message) }
                    }
                }
                @if runtime.objects.is_empty() { tr { td colspan="4" .empty { "The snapshot came pre-compiled from the operator: verdicts are on the objects' status (kubectl get)." } } }
            }
        }
        @if !objects.is_empty() { p.muted #objects-range { (range(object_start, objects.len(), all_objects.len(), "objects")) } }
        @if let Some(last) = more_objects {
            p { a.pill #next-objects href=(ProvidersQuery::link(q.after.as_deref(), Some(&last.object))) { "Next objects →" } }
        }
    }
}
