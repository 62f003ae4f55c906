//! Every Budget: its window, spend (settled and reserved, from the ledger every replica shares),
//! soft and hard lines, a burn-down chart (the window's spend per day from the rollups, summed)
//! with the forecast at the current rate, and what it blocks. Twenty budgets to a page, by id
//! (each card reads its burn-down from the rollups).

use std::sync::Arc;

use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use http::HeaderMap;
use jiff::Timestamp;
use maud::{Markup, html};
use rust_decimal::Decimal;
use switchboard_api::{
    counters::budget_counter,
    money::to_nanos,
    snapshot::{BudgetAction, BudgetConfig, BudgetWindow},
    windows::window_bounds,
};
use switchboard_ledger::CounterState;

use super::{AfterQuery, next_link, page_after, report, store};
use crate::{
    admin::auth::Admin,
    console::{
        forecast::{Forecast, forecast},
        format,
        layout::{self, Chart, Nav, Series},
        queries,
    },
    state::AppState,
    usage::{query::Dim, record::DAY_MS},
};

/// Days a `total` budget's burn-down shows.
const TOTAL_DAYS: i64 = 30;

/// Budgets a page shows.
const PAGE: usize = 20;

/// `GET /console/budgets`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    Query(q): Query<AfterQuery>,
) -> Response {
    let body = content(&state, q.after.as_deref()).await;
    layout::respond(&headers, |csrf| {
        layout::page(Nav::Budgets, Some(&admin), csrf, body)
    })
}

async fn content(state: &AppState, after: Option<&str>) -> Markup {
    let Some(runtime) = state.runtime() else {
        return html! { h1 { "Budgets" } p.notice { "No config is loaded yet." } };
    };
    let now = Timestamp::now();
    // The config's budgets are a map ordered by id.
    let all: Vec<(&String, &BudgetConfig)> = runtime.config.budgets.iter().collect();
    let (start, budgets, more) = page_after(&all, |(id, _)| id, after, PAGE);
    let counters: Vec<String> = budgets
        .iter()
        .map(|(id, b)| budget_counter(id, b.window, now))
        .collect();
    let (states, ledger_error) = match state.settler.ledger().read(&counters).await {
        Ok(s) => (s, None),
        Err(e) => (
            vec![CounterState::default(); counters.len()],
            Some(e.to_string()),
        ),
    };
    let mut cards = Vec::new();
    for ((id, b), s) in budgets.iter().zip(&states) {
        cards.push(card(state, id, b, *s, now).await);
    }
    html! {
        h1 { "Budgets" }
        p.muted { "Spend is read from the shared ledger (settled, plus what requests in flight have reserved), so every replica shows the same. The burn-down sums the usage store's daily rollups over the budget's keys; the forecast projects the window's average rate." }
        @if let Some(e) = ledger_error { p.notice role="alert" { "The ledger did not answer: " (e) } }
        @if all.is_empty() { p.empty { "No Budget objects are configured." } }
        @if !budgets.is_empty() { p.muted #page-range { (format::count(start as i64 + 1)) "–" (format::count((start + budgets.len()) as i64)) " of " (format::count(all.len() as i64)) " budgets" } }
        @for c in cards { (c) }
        @if let Some((last, _)) = more { p { a.pill #next-page href=(next_link("/console/budgets", last)) { "Next →" } } }
    }
}

async fn card(
    state: &AppState,
    id: &str,
    b: &BudgetConfig,
    s: CounterState,
    now: Timestamp,
) -> Markup {
    let (start, end) = window_bounds(b.window, now);
    let limit = to_nanos(b.limit_usd);
    let used = s.spent.saturating_add(s.reserved);
    let soft = b
        .soft_limit_percent
        .map(|p| to_nanos(b.limit_usd * Decimal::from(p) / Decimal::from(100)));
    let since = if b.window == BudgetWindow::Total {
        now.as_second() - TOTAL_DAYS * 86_400
    } else {
        start.as_second()
    };
    let f = forecast(
        used,
        limit,
        since,
        now.as_second(),
        end.map(|e| e.as_second()),
    );
    let chart = burn_down(state, b, s.spent, limit, soft, since, now, end).await;
    html! {
        article.budget data-budget=(id) {
            h2 { (id) }
            dl.facts {
                dt { "Window" } dd { (b.window.name()) @if let Some(e) = end { " · resets " (format::time_s(e.as_second())) } }
                dt { "Spent" } dd data-stat="spent" data-exact=(format::usd_exact(s.spent)) { (format::usd(s.spent)) }
                dt { "Reserved (in flight)" } dd { (format::usd(s.reserved)) }
                dt { "Limit" } dd data-stat="limit" { (format::usd_decimal(b.limit_usd)) }
                @if let (Some(p), Some(soft)) = (b.soft_limit_percent, soft) { dt { "Soft line" } dd { (p) "% · " (format::usd(soft)) } }
                dt { "Used" } dd { meter min="0" max=(limit) value=(used.min(limit)) high=[soft] {} " " (format::percent(used, limit)) }
                dt { "Forecast" } dd data-stat="forecast" { (forecast_text(f)) }
                dt { "When exceeded" } dd { @if b.action == BudgetAction::Block { "blocks requests (402)" } @else { "alerts only" } }
                dt { "Keys" } dd { @if b.api_keys.is_empty() { "none" } @else { @for (i, k) in b.api_keys.iter().enumerate() { @if i > 0 { ", " } code { (k) } } } }
                dt { "Models" } dd { @if b.models.is_empty() { "all" } @else { (b.models.join(", ")) } }
            }
            (chart)
        }
    }
}

/// The forecast in words.
pub fn forecast_text(f: Forecast) -> String {
    match f {
        Forecast::Reached => "limit reached".into(),
        Forecast::Idle => "nothing spent yet this window".into(),
        Forecast::At(at) => format!("reaches the limit around {}", format::time_s(at)),
        Forecast::Resets { projected_nanos } => format!(
            "stays under the limit this window (about {} by the reset)",
            format::usd(projected_nanos)
        ),
    }
}

/// The burn-down: the window's spend so far, summed bucket by bucket (days from the rollups; the
/// hours of a daily window from the records), the limit and soft lines, and the projection from
/// now to the window's end at the current rate.
#[allow(clippy::too_many_arguments)]
async fn burn_down(
    state: &AppState,
    b: &BudgetConfig,
    spent: i64,
    limit: i64,
    soft: Option<i64>,
    since: i64,
    now: Timestamp,
    end: Option<Timestamp>,
) -> Markup {
    let Ok(store) = store(state) else {
        return html! {};
    };
    let keys: Vec<String> = b.api_keys.iter().map(|k| k.to_string()).collect();
    let now_s = now.as_second();
    let hourly = b.window == BudgetWindow::Daily;
    let bucket = if hourly { 3_600 } else { 86_400 };
    let first = since.div_euclid(bucket);
    let last = end.map_or(now_s.div_euclid(bucket), |e| {
        (e.as_second() - 1).div_euclid(bucket)
    });
    let costs: Result<Vec<(i64, i64)>, _> = if keys.is_empty() {
        Ok(Vec::new())
    } else if hourly {
        queries::hourly_cost_of_keys(store, &keys, first * 3_600_000).await
    } else {
        let today = now.as_millisecond().div_euclid(DAY_MS);
        report(
            store,
            first,
            today,
            vec![Dim::Day],
            vec![(Dim::Key, keys)],
            1_000,
        )
        .await
        .map(|r| {
            r.rows
                .iter()
                .map(|row| {
                    (
                        row.groups[0].parse::<i64>().unwrap_or(0),
                        row.totals.cost_nanos,
                    )
                })
                .collect()
        })
    };
    let costs = match costs {
        Ok(c) => c,
        Err(e) => return layout::no_store(&e.to_string()),
    };
    let buckets: Vec<i64> = (first..=last).collect();
    let (cumulative, projection) = burn_series(&buckets, bucket, now_s, &costs, spent, since);
    let xs: Vec<i64> = buckets.iter().map(|i| i * bucket).collect();
    let mut series = vec![
        Series {
            label: "spent (cumulative)".into(),
            values: cumulative,
            dashed: false,
        },
        Series {
            label: "projection".into(),
            values: projection,
            dashed: true,
        },
        Series {
            label: "limit".into(),
            values: vec![Some(format::usd_f64(limit)); xs.len()],
            dashed: true,
        },
    ];
    if let Some(soft) = soft {
        series.push(Series {
            label: "soft line".into(),
            values: vec![Some(format::usd_f64(soft)); xs.len()],
            dashed: true,
        });
    }
    let step = if hourly { "hour" } else { "day" };
    layout::chart(
        &format!("burn-{}", b.name),
        &Chart {
            title: "Burn-down".into(),
            unit: "USD".into(),
            xs,
            step,
            series,
        },
    )
}

/// The burn-down's two lines over `buckets` (bucket numbers of `bucket` seconds): the spend summed
/// up to the current bucket from `costs` (`(bucket, nano-dollars)`), and from the current bucket on
/// the projection of `spent` (the ledger's, which the forecast uses) at its rate since `since`.
fn burn_series(
    buckets: &[i64],
    bucket: i64,
    now_s: i64,
    costs: &[(i64, i64)],
    spent: i64,
    since: i64,
) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let current = now_s.div_euclid(bucket);
    let rate = spent as f64 / (now_s - since).max(1) as f64;
    let mut sum = 0i64;
    let cumulative = buckets
        .iter()
        .map(|b| {
            (*b <= current).then(|| {
                sum = sum
                    .saturating_add(costs.iter().filter(|(at, _)| at == b).map(|(_, c)| c).sum());
                format::usd_f64(sum)
            })
        })
        .collect();
    let projection = buckets
        .iter()
        .map(|b| {
            (*b >= current).then(|| {
                let at = (b + 1) * bucket;
                format::usd_f64(spent) + rate * (at - now_s).max(0) as f64 / 1e9
            })
        })
        .collect();
    (cumulative, projection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burn_down_sums_to_now_and_projects_the_rest() {
        // Four day buckets, now at the middle of day 2; $1 spent over the two days so far.
        let day = 86_400;
        let now = 2 * day + day / 2;
        let costs = [(0, 400_000_000), (2, 600_000_000), (9, 5)];
        let (sum, proj) = burn_series(&[0, 1, 2, 3], day, now, &costs, 1_000_000_000, 0);
        assert_eq!(sum, [Some(0.4), Some(0.4), Some(1.0), None]);
        // $1 in 2.5 days: $0.4 a day; the projection at the end of days 2 and 3.
        assert_eq!(proj[..2], [None, None]);
        assert!((proj[2].unwrap() - 1.2).abs() < 1e-9, "{proj:?}");
        assert!((proj[3].unwrap() - 1.6).abs() < 1e-9, "{proj:?}");
    }

    #[test]
    fn forecasts_read_as_sentences() {
        assert_eq!(forecast_text(Forecast::Reached), "limit reached");
        assert!(forecast_text(Forecast::At(86_400)).contains("1970-01-02 00:00 UTC"));
        assert!(
            forecast_text(Forecast::Resets {
                projected_nanos: 2_500_000_000
            })
            .contains("$2.50")
        );
    }
}
