//! The overview: spend today, this week and this month, requests, error rate, p50/p95 latency;
//! spend and requests over time by model, team or provider (hour buckets for the last 24 hours
//! from the hourly rollups, day buckets from the daily ones); the top keys, teams, models and
//! apps. Every number comes from a rollup: the page reads a few thousand rows whatever the
//! number of records.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use http::HeaderMap;
use jiff::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;
use switchboard_api::{snapshot::BudgetWindow, windows::window_bounds};

use super::{report, store, total};
use crate::{
    admin::auth::Admin,
    console::{
        format,
        layout::{self, Chart, Nav, Series},
        queries::{self, By},
    },
    state::AppState,
    usage::{
        query::{Dim, today},
        record::DAY_MS,
        store::{Store, StoreError},
    },
};

/// Lines drawn per chart; the rest are summed as `other`.
const TOP_SERIES: usize = 6;

/// One bucket of one group: `(x in Unix seconds, group, requests, cost in nano-dollars)`.
type Point = (i64, String, i64, i64);

/// Rows of each top list.
const TOP_ROWS: usize = 10;

/// The overview's query: `range` (`24h`, `7d`, `30d`) and `by` (`model`, `team`, `provider`).
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    range: Option<String>,
    by: Option<String>,
}

/// The time range charts and top lists cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    Day,
    Week,
    Month,
}

impl Range {
    const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    fn name(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Range::Day => "last 24 hours",
            Range::Week => "last 7 days",
            Range::Month => "last 30 days",
        }
    }

    fn parse(v: Option<&str>) -> Range {
        Range::ALL
            .into_iter()
            .find(|r| Some(r.name()) == v)
            .unwrap_or(Range::Week)
    }

    /// Days of the rollups the top lists read (today included).
    fn days(self) -> i64 {
        match self {
            Range::Day => 1,
            Range::Week => 7,
            Range::Month => 30,
        }
    }
}

/// `GET /console/`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let range = Range::parse(q.range.as_deref());
    let by = By::parse(q.by.as_deref());
    let body = match store(&state) {
        Ok(store) => match content(store, range, by).await {
            Ok(m) => m,
            Err(e) => layout::no_store(&e.to_string()),
        },
        Err(why) => layout::no_store(&why),
    };
    layout::respond(&headers, |csrf| {
        layout::page(Nav::Overview, Some(&admin), csrf, body)
    })
}

async fn content(store: &Store, range: Range, by: By) -> Result<Markup, StoreError> {
    let now = Timestamp::now();
    let today = today();
    let day_of = |t: Timestamp| t.as_millisecond().div_euclid(DAY_MS);
    let week_start = day_of(window_bounds(BudgetWindow::Weekly, now).0);
    let month_start = day_of(window_bounds(BudgetWindow::Monthly, now).0);
    let t_day = total(&report(store, today, today, vec![], vec![], 1).await?);
    let t_week = total(&report(store, week_start, today, vec![], vec![], 1).await?);
    let t_month = total(&report(store, month_start, today, vec![], vec![], 1).await?);
    // The last 24 hours: this hour and the 23 before it.
    let since_24h = queries::hour_of(now.as_millisecond()) - 23;
    let (n_24h, p50, p95) = queries::latency_percentiles(store, since_24h).await?;
    let (spend, requests) = charts(store, range, by, now.as_millisecond()).await?;
    let first_day = today - range.days() + 1;
    let mut tops = Vec::new();
    for (dim, title) in [
        (Dim::Key, "Top keys"),
        (Dim::Team, "Top teams"),
        (Dim::Model, "Top models"),
        (Dim::App, "Top apps"),
    ] {
        let r = report(store, first_day, today, vec![dim], vec![], TOP_ROWS).await?;
        tops.push((dim, title, r));
    }
    let ms = |v: Option<i64>| v.map_or("–".to_string(), |v| format::millis(v.max(0) as u64));
    Ok(html! {
        h1 { "Overview" }
        section.stats {
            (layout::stat("spend-today", "Spend today", &format::usd(t_day.cost_nanos), Some(&format::usd_exact(t_day.cost_nanos))))
            (layout::stat("spend-week", "Spend this week", &format::usd(t_week.cost_nanos), Some(&format::usd_exact(t_week.cost_nanos))))
            (layout::stat("spend-month", "Spend this month", &format::usd(t_month.cost_nanos), Some(&format::usd_exact(t_month.cost_nanos))))
            (layout::stat("requests-today", "Requests today", &format::count(t_day.requests), Some(&t_day.requests.to_string())))
            (layout::stat("requests-month", "Requests this month", &format::count(t_month.requests), Some(&t_month.requests.to_string())))
            (layout::stat("error-rate-today", "Error rate today", &format::percent(t_day.failed, t_day.requests), Some(&t_day.failed.to_string())))
            (layout::stat("p50-24h", "p50 latency (24 h)", &ms(p50), p50.map(|v| v.to_string()).as_deref()))
            (layout::stat("p95-24h", "p95 latency (24 h)", &ms(p95), p95.map(|v| v.to_string()).as_deref()))
        }
        p.muted { (format::count(n_24h)) " requests in the last 24 hours. Times are UTC." }
        section.controls {
            span { "Range: " }
            @for r in Range::ALL {
                a.pill href=(format!("/console/?range={}&by={}", r.name(), by.name())) aria-current=[(r == range).then_some("true")] { (r.name()) }
            }
            span { " By: " }
            @for b in By::ALL {
                a.pill href=(format!("/console/?range={}&by={}", range.name(), b.name())) aria-current=[(b == by).then_some("true")] { (b.name()) }
            }
        }
        section.charts {
            (layout::chart("chart-spend", &spend))
            (layout::chart("chart-requests", &requests))
        }
        section.tops {
            @for (dim, title, r) in &tops {
                div.top {
                    h2 { (title) " (" (range.label()) ")" }
                    table data-top=(dim.name()) {
                        thead { tr { th { (dim.name()) } th.num { "Spend" } th.num { "Requests" } } }
                        tbody {
                            @for row in &r.rows {
                                tr {
                                    td { (format::or_dash(row.groups.first().map(String::as_str))) }
                                    td.num data-exact=(format::usd_exact(row.totals.cost_nanos)) { (format::usd(row.totals.cost_nanos)) }
                                    td.num { (format::count(row.totals.requests)) }
                                }
                            }
                            @if r.rows.is_empty() { tr { td colspan="3" .empty { "No requests in this range." } } }
                        }
                    }
                }
            }
        }
    })
}

/// The spend and requests charts: hour buckets from the hourly rollup for the last 24 hours, day
/// buckets from the daily rollups otherwise.
async fn charts(
    store: &Store,
    range: Range,
    by: By,
    now_ms: i64,
) -> Result<(Chart, Chart), StoreError> {
    let (xs, points, step): (Vec<i64>, Vec<Point>, _) = if range == Range::Day {
        let last = queries::hour_of(now_ms);
        let first = last - 23;
        let rows = queries::hourly(store, by, first).await?;
        (
            (first..=last).map(|h| h * 3_600).collect(),
            rows.into_iter()
                .map(|r| (r.hour * 3_600, r.group, r.requests, r.cost_nanos))
                .collect(),
            "hour",
        )
    } else {
        let last = now_ms.div_euclid(DAY_MS);
        let first = last - range.days() + 1;
        let dim = match by {
            By::Model => Dim::Model,
            By::Team => Dim::Team,
            By::Provider => Dim::Provider,
        };
        let r = report(store, first, last, vec![Dim::Day, dim], vec![], 100_000).await?;
        (
            (first..=last).map(|d| d * 86_400).collect(),
            r.rows
                .into_iter()
                .map(|row| {
                    let day: i64 = row.groups[0].parse().unwrap_or(0);
                    (
                        day * 86_400,
                        row.groups[1].clone(),
                        row.totals.requests,
                        row.totals.cost_nanos,
                    )
                })
                .collect(),
            "day",
        )
    };
    let title = |what: &str| format!("{what} by {}", by.name());
    let spend = Chart {
        title: title("Spend"),
        unit: "USD".into(),
        series: series(
            &xs,
            &points,
            |p| crate::console::format::usd_f64(p.3),
            |p| p.3,
        ),
        xs: xs.clone(),
        step,
    };
    let requests = Chart {
        title: title("Requests"),
        unit: "requests".into(),
        series: series(&xs, &points, |p| p.2 as f64, |p| p.2),
        xs,
        step,
    };
    Ok((spend, requests))
}

/// Lines of a chart: one per group, the [`TOP_SERIES`] largest by `weight` kept and the rest
/// summed as `other`; a point per x (zero where a group had nothing).
fn series(
    xs: &[i64],
    points: &[Point],
    value: impl Fn(&Point) -> f64,
    weight: impl Fn(&Point) -> i64,
) -> Vec<Series> {
    let mut weights: HashMap<&str, i64> = HashMap::new();
    for p in points {
        *weights.entry(p.1.as_str()).or_default() += weight(p);
    }
    let mut groups: Vec<(&str, i64)> = weights.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let kept: Vec<&str> = groups.iter().take(TOP_SERIES).map(|g| g.0).collect();
    let has_other = groups.len() > TOP_SERIES;
    let index: HashMap<i64, usize> = xs.iter().enumerate().map(|(i, x)| (*x, i)).collect();
    let mut lines: Vec<Series> = kept
        .iter()
        .map(|g| Series {
            label: if g.is_empty() {
                "(none)".into()
            } else {
                g.to_string()
            },
            values: vec![Some(0.0); xs.len()],
            dashed: false,
        })
        .collect();
    if has_other {
        lines.push(Series {
            label: "other".into(),
            values: vec![Some(0.0); xs.len()],
            dashed: false,
        });
    }
    for p in points {
        let Some(&i) = index.get(&p.0) else { continue };
        let line = kept
            .iter()
            .position(|g| *g == p.1)
            .or(has_other.then_some(kept.len()));
        if let Some(l) = line
            && let Some(v) = lines[l].values[i].as_mut()
        {
            *v += value(p);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_keep_the_largest_groups_and_sum_the_rest() {
        let xs = [0, 10];
        let mut points = vec![];
        for (i, name) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
            points.push((0, name.to_string(), (i + 1) as i64, 0));
        }
        points.push((10, "h".into(), 5, 0));
        points.push((10, String::new(), 100, 0));
        points.push((99, "a".into(), 1, 0)); // outside the range: ignored
        let lines = series(&xs, &points, |p| p.2 as f64, |p| p.2);
        let labels: Vec<&str> = lines.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["(none)", "h", "g", "f", "e", "d", "other"]);
        assert_eq!(lines[0].values, [Some(0.0), Some(100.0)]);
        assert_eq!(lines[1].values, [Some(8.0), Some(5.0)]);
        // a, b, c: 1 + 2 + 3 at x = 0.
        assert_eq!(lines[6].values, [Some(6.0), Some(0.0)]);
        assert!(series(&xs, &[], |p| p.2 as f64, |p| p.2).is_empty());
    }

    #[test]
    fn ranges_parse_with_a_week_by_default() {
        assert_eq!(Range::parse(Some("24h")), Range::Day);
        assert_eq!(Range::parse(Some("30d")).days(), 30);
        assert_eq!(Range::parse(None), Range::Week);
    }
}
