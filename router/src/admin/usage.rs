//! `GET /admin/v1/usage`: spend and tokens over a range of UTC days, grouped by any of `day`,
//! `key`, `team`, `model`, `provider`, `app`, `tag`, `user` and filtered by the same names, as JSON
//! or, with `format=csv`, as a CSV file for chargeback. Read from the daily rollups.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use switchboard_api::money::from_nanos;

use crate::{
    error::ApiError,
    state::AppState,
    usage::{
        query::{Dim, ReportQuery, date_of, today},
        query_params,
        rollup::Totals,
        store::read::{Report, ReportRow},
        unavailable,
    },
};

/// `GET /admin/v1/usage`.
pub async fn report(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let result = async {
        let params = query_params(query)?;
        let q = ReportQuery::parse(&params, today()).map_err(|m| ApiError::BadRequest {
            message: m,
            param: None,
        })?;
        let csv = match params.iter().rev().find(|(k, _)| k == "format") {
            None => false,
            Some((_, f)) if f == "json" => false,
            Some((_, f)) if f == "csv" => true,
            Some(_) => return Err(ApiError::bad_param("format", "`format` is `json` or `csv`")),
        };
        let report = state.usage_store()?.report(&q).await.map_err(unavailable)?;
        Ok::<_, ApiError>((q, report, csv))
    }
    .await;
    match result {
        Ok((q, report, true)) => {
            let mut resp = render_csv(&q, &report).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            let name = format!(
                "attachment; filename=\"usage-{}-{}.csv\"",
                date_of(q.from),
                date_of(q.to)
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Ok((q, report, false)) => Json(render_json(&q, &report)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A group's dimension value as shown: dates for days, `None` for "requests without one".
fn shown(d: Dim, raw: &str) -> Option<String> {
    match d {
        Dim::Day => raw.parse::<i64>().ok().map(|n| date_of(n).to_string()),
        _ if raw.is_empty() => None,
        _ => Some(raw.to_string()),
    }
}

/// Totals as report fields; USD as exact decimal strings.
pub fn totals_json(t: &Totals) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("requests".into(), json!(t.requests));
    m.insert("failed".into(), json!(t.failed));
    m.insert("prompt_tokens".into(), json!(t.prompt_tokens));
    m.insert("completion_tokens".into(), json!(t.completion_tokens));
    m.insert("cached_tokens".into(), json!(t.cached_tokens));
    m.insert("cache_write_tokens".into(), json!(t.cache_write_tokens));
    m.insert("reasoning_tokens".into(), json!(t.reasoning_tokens));
    m.insert("cost_usd".into(), json!(usd(t.cost_nanos)));
    m.insert("avg_latency_ms".into(), json!(avg_latency(t)));
    m
}

fn usd(nanos: i64) -> String {
    from_nanos(nanos).normalize().to_string()
}

fn avg_latency(t: &Totals) -> i64 {
    if t.requests > 0 {
        t.latency_ms / t.requests
    } else {
        0
    }
}

/// The JSON report: every group with its dimensions and totals, and the sum of the groups.
pub fn render_json(q: &ReportQuery, report: &Report) -> Value {
    let mut sum = Totals::default();
    let data: Vec<Value> = report
        .rows
        .iter()
        .map(|ReportRow { groups, totals }| {
            sum.add(totals);
            let mut row = Map::new();
            for (d, raw) in q.group_by.iter().zip(groups) {
                row.insert(d.name().into(), json!(shown(*d, raw)));
            }
            row.extend(totals_json(totals));
            Value::Object(row)
        })
        .collect();
    json!({
        "from": date_of(q.from).to_string(),
        "to": date_of(q.to).to_string(),
        "group_by": q.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "data": data,
        "total": totals_json(&sum),
        "truncated": report.truncated,
    })
}

/// The CSV report: a header, then a line per group.
pub fn render_csv(q: &ReportQuery, report: &Report) -> String {
    let mut out = String::new();
    let mut header: Vec<&str> = q.group_by.iter().map(|d| d.name()).collect();
    header.extend([
        "requests",
        "failed",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "avg_latency_ms",
    ]);
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for ReportRow { groups, totals: t } in &report.rows {
        let mut fields: Vec<String> = q
            .group_by
            .iter()
            .zip(groups)
            .map(|(d, raw)| csv_field(&shown(*d, raw).unwrap_or_default()))
            .collect();
        fields.extend(
            [
                t.requests,
                t.failed,
                t.prompt_tokens,
                t.completion_tokens,
                t.cached_tokens,
                t.cache_write_tokens,
                t.reasoning_tokens,
            ]
            .map(|n| n.to_string()),
        );
        fields.push(usd(t.cost_nanos));
        fields.push(avg_latency(t).to_string());
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading `=`,
/// `+`, `-` or `@` (a formula to spreadsheets; tags and app names are client input) is
/// neutralised with a `'`.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> (ReportQuery, Report) {
        let q = ReportQuery {
            from: 20_000,
            to: 20_001,
            group_by: vec![Dim::Day, Dim::Team, Dim::Tag],
            filters: vec![],
            limit: 10,
        };
        let t = |requests, cost_nanos| Totals {
            requests,
            latency_ms: requests * 100,
            cost_nanos,
            prompt_tokens: 10,
            ..Totals::default()
        };
        let rows = vec![
            ReportRow {
                groups: vec!["20000".into(), "ml".into(), "".into()],
                totals: t(2, 1_500_000_000),
            },
            ReportRow {
                groups: vec!["20001".into(), "".into(), "=cmd,\"x\"".into()],
                totals: t(1, 7),
            },
        ];
        (
            q,
            Report {
                rows,
                truncated: false,
            },
        )
    }

    #[test]
    fn json_names_dimensions_dates_and_exact_usd() {
        let (q, r) = report();
        let v = render_json(&q, &r);
        assert_eq!(v["from"], "2024-10-04");
        assert_eq!(v["group_by"], json!(["day", "team", "tag"]));
        assert_eq!(v["data"][0]["day"], "2024-10-04");
        assert_eq!(v["data"][0]["team"], "ml");
        assert_eq!(v["data"][0]["tag"], Value::Null);
        assert_eq!(v["data"][0]["cost_usd"], "1.5");
        assert_eq!(v["data"][0]["avg_latency_ms"], 100);
        assert_eq!(v["data"][1]["cost_usd"], "0.000000007");
        assert_eq!(v["total"]["requests"], 3);
        assert_eq!(v["total"]["cost_usd"], "1.500000007");
    }

    #[test]
    fn csv_quotes_and_defuses_what_spreadsheets_would_run() {
        let (q, r) = report();
        let csv = render_csv(&q, &r);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "day,team,tag,requests,failed,prompt_tokens,completion_tokens,cached_tokens,cache_write_tokens,reasoning_tokens,cost_usd,avg_latency_ms"
        );
        assert_eq!(lines[1], "2024-10-04,ml,,2,0,10,0,0,0,0,1.5,100");
        assert_eq!(
            lines[2],
            "2024-10-05,,\"'=cmd,\"\"x\"\"\",1,0,10,0,0,0,0,0.000000007,100"
        );
        assert_eq!(lines[3], "");
    }
}
