//! The store's read queries: the usage report and the activity API from the daily rollups, and
//! generations (a page, newest first, or one by id) from the records. Each query is built from
//! its parsed request ([`crate::usage::query`]) as SQL text plus parameters (pure, tested here)
//! and run over the pool.

use sqlx::{Row, any::AnyRow};

use super::{ROLLUPS, Store, StoreError, TOTALS};
use crate::{
    error::AttemptReport,
    pricing::Usage,
    usage::{
        query::{ActivityQuery, Cursor, Dim, GenerationFilter, GenerationsQuery, ReportQuery},
        record::UsageRecord,
        rollup::Totals,
    },
};

/// A query parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
}

/// SQL text and its parameters, `$1…` in order.
#[derive(Debug, Default)]
pub struct Sql {
    /// The statement.
    pub text: String,
    /// Its parameters.
    pub params: Vec<Param>,
}

impl Sql {
    /// Adds a parameter, returning its placeholder.
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    /// `column IN ($n, …)`.
    fn any_of(&mut self, column: &str, values: &[String], int: bool) -> String {
        let list: Vec<String> = values
            .iter()
            .map(|v| {
                self.param(if int {
                    Param::Int(v.parse().unwrap_or(-1))
                } else {
                    Param::Text(v.clone())
                })
            })
            .collect();
        format!("{column} IN ({})", list.join(", "))
    }

    async fn fetch(&self, store: &Store) -> Result<Vec<AnyRow>, StoreError> {
        let text = store.sql(&self.text);
        let mut q = sqlx::query(&text);
        for p in &self.params {
            q = match p {
                Param::Int(i) => q.bind(*i),
                Param::Text(s) => q.bind(s.as_str()),
            };
        }
        Ok(q.fetch_all(store.pool()).await?)
    }
}

/// One group of a usage report: its values in `group_by` order (`""` where requests had none)
/// and its totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    /// Values of the grouped dimensions; days as day numbers in decimal.
    pub groups: Vec<String>,
    /// Totals.
    pub totals: Totals,
}

/// Groups of a report, and whether more than `limit` existed.
#[derive(Debug)]
pub struct Report {
    /// Groups, by day (when grouped by day) then cost, most first.
    pub rows: Vec<ReportRow>,
    /// More groups than the limit matched.
    pub truncated: bool,
}

/// One day × model × provider of `/api/v1/activity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityRow {
    /// Day number.
    pub day: i64,
    /// Billed public model.
    pub model: String,
    /// Provider (empty when none served).
    pub provider: String,
    /// Totals.
    pub totals: Totals,
}

/// A page of generations and where the next one starts.
#[derive(Debug)]
pub struct Page {
    /// Records, newest first.
    pub records: Vec<UsageRecord>,
    /// Cursor of the next page, when there is one.
    pub next: Option<Cursor>,
}

fn sums() -> String {
    TOTALS
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS sum_{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn totals(row: &AnyRow) -> Result<Totals, StoreError> {
    let get = |c: &str| row.try_get::<i64, _>(format!("sum_{c}").as_str());
    Ok(Totals {
        requests: get("requests")?,
        failed: get("failed")?,
        prompt_tokens: get("prompt_tokens")?,
        completion_tokens: get("completion_tokens")?,
        cached_tokens: get("cached_tokens")?,
        cache_write_tokens: get("cache_write_tokens")?,
        reasoning_tokens: get("reasoning_tokens")?,
        cost_nanos: get("cost_nanos")?,
        latency_ms: get("latency_ms")?,
    })
}

/// The report's SQL: the rollup table the grouping needs, the day range, the filters.
pub fn report_sql(q: &ReportQuery) -> Sql {
    let table = if q.uses(Dim::Tag) {
        ROLLUPS[1].0
    } else if q.uses(Dim::User) {
        ROLLUPS[2].0
    } else {
        ROLLUPS[0].0
    };
    let mut sql = Sql::default();
    let from = sql.param(Param::Int(q.from));
    let to = sql.param(Param::Int(q.to));
    let mut cond = vec![format!("day >= {from}"), format!("day <= {to}")];
    for (d, values) in &q.filters {
        cond.push(sql.any_of(d.column(), values, false));
    }
    let groups: Vec<String> = q
        .group_by
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{} AS g{i}", d.column()))
        .collect();
    let group_cols: Vec<&str> = q.group_by.iter().map(|d| d.column()).collect();
    let select = if groups.is_empty() {
        sums()
    } else {
        format!("{}, {}", groups.join(", "), sums())
    };
    let mut order = Vec::new();
    if q.group_by.contains(&Dim::Day) {
        order.push("day".to_string());
    }
    order.push("sum_cost_nanos DESC".into());
    order.extend(group_cols.iter().map(|c| c.to_string()));
    let limit = sql.param(Param::Int(q.limit as i64 + 1));
    sql.text = format!(
        "SELECT {select} FROM {table} WHERE {}{} ORDER BY {} LIMIT {limit}",
        cond.join(" AND "),
        if group_cols.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", group_cols.join(", "))
        },
        order.join(", ")
    );
    sql
}

/// The activity SQL: `usage_daily` per day, model and provider, newest day first.
pub fn activity_sql(q: &ActivityQuery) -> Sql {
    let mut sql = Sql::default();
    let from = sql.param(Param::Int(q.from));
    let to = sql.param(Param::Int(q.to));
    let key = match &q.key_id {
        Some(k) => format!(" AND key_id = {}", sql.param(Param::Text(k.clone()))),
        None => String::new(),
    };
    sql.text = format!(
        "SELECT day, model, provider, {} FROM usage_daily WHERE day >= {from} AND day <= {to}{key} \
         GROUP BY day, model, provider ORDER BY day DESC, model, provider",
        sums()
    );
    sql
}

const RECORD_SELECT: &str = "SELECT generation_id, created_at, endpoint, key_id, team, end_user, \
     tags, app, model, served_model, provider, upstream_model, attempts, prompt_tokens, \
     completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, status, \
     error_code, finish_reason, streamed, latency_ms, ttft_ms, usage_anomaly, input_content, output_content, \
     caller_issuer, caller_subject, cache_hit, cache_saved_nanos FROM usage_records";

/// The SQL of a page of generations: newest first, keyset-paginated on
/// `(created_at, generation_id)`, never `OFFSET`: the indexes order by `created_at`, and the
/// records of one millisecond are sorted by id among themselves.
pub fn generations_sql(q: &GenerationsQuery) -> Sql {
    let mut sql = Sql::default();
    let mut cond = Vec::new();
    if let Some(from) = q.from_ms {
        cond.push(format!("created_at >= {}", sql.param(Param::Int(from))));
    }
    if let Some(to) = q.to_ms {
        cond.push(format!("created_at < {}", sql.param(Param::Int(to))));
    }
    for (f, values) in &q.filters {
        cond.push(match f {
            GenerationFilter::Status => sql.any_of("status", values, true),
            GenerationFilter::Endpoint => sql.any_of("endpoint", values, false),
            GenerationFilter::Dim(Dim::Model) => {
                sql.any_of("COALESCE(served_model, model)", values, false)
            }
            GenerationFilter::Dim(Dim::Tag) => {
                let any: Vec<String> = values
                    .iter()
                    .map(|t| {
                        let pattern = format!("%,{},%", escape_like(t));
                        format!(
                            "(',' || COALESCE(tags, '') || ',') LIKE {} ESCAPE '\\'",
                            sql.param(Param::Text(pattern))
                        )
                    })
                    .collect();
                format!("({})", any.join(" OR "))
            }
            GenerationFilter::Dim(d) => {
                // Records keep absent dimensions as NULL; `x=` selects them.
                let column = format!("COALESCE({}, '')", d.column());
                let column = if *d == Dim::Key {
                    d.column().to_string()
                } else {
                    column
                };
                sql.any_of(&column, values, false)
            }
        });
    }
    if let Some(c) = &q.after {
        // `created_at <= at` alone is what the indexes (which end at `created_at`) seek to;
        // the pair then skips the cursor's millisecond up to and including its record.
        let at = sql.param(Param::Int(c.created_at_ms));
        cond.push(format!("created_at <= {at}"));
        let at = sql.param(Param::Int(c.created_at_ms));
        let id = sql.param(Param::Text(c.id.clone()));
        cond.push(format!("(created_at, generation_id) < ({at}, {id})"));
    }
    let limit = sql.param(Param::Int(q.limit as i64 + 1));
    sql.text = format!(
        "{RECORD_SELECT}{} ORDER BY created_at DESC, generation_id DESC LIMIT {limit}",
        if cond.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", cond.join(" AND "))
        }
    );
    sql
}

/// `%`, `_` and `\` escaped for `LIKE … ESCAPE '\'`.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn record(row: &AnyRow) -> Result<UsageRecord, StoreError> {
    let text = |c: &str| row.try_get::<Option<String>, _>(c);
    let int = |c: &str| row.try_get::<i64, _>(c);
    let uint = |c: &str| int(c).map(|v| u64::try_from(v).unwrap_or(0));
    let id: String = row.try_get("generation_id")?;
    let attempts: Vec<AttemptReport> = serde_json::from_str(&row.try_get::<String, _>("attempts")?)
        .map_err(|e| StoreError::Corrupt(format!("attempts of {id}: {e}")))?;
    Ok(UsageRecord {
        created_at_ms: int("created_at")?,
        endpoint: row.try_get("endpoint")?,
        key_id: row.try_get("key_id")?,
        team: text("team")?,
        user: text("end_user")?,
        tags: text("tags")?
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        app: text("app")?,
        caller_issuer: text("caller_issuer")?,
        caller_subject: text("caller_subject")?,
        model: row.try_get("model")?,
        served_model: text("served_model")?,
        provider: text("provider")?,
        upstream_model: text("upstream_model")?,
        attempts,
        tokens: Usage {
            prompt_tokens: uint("prompt_tokens")?,
            completion_tokens: uint("completion_tokens")?,
            cached_tokens: uint("cached_tokens")?,
            cache_write_tokens: uint("cache_write_tokens")?,
            reasoning_tokens: uint("reasoning_tokens")?,
        },
        cost_nanos: int("cost_nanos")?,
        status: u16::try_from(int("status")?).unwrap_or(0),
        error_code: text("error_code")?,
        finish_reason: text("finish_reason")?,
        usage_anomaly: text("usage_anomaly")?,
        input: text("input_content")?,
        output: text("output_content")?,
        streamed: int("streamed")? != 0,
        latency_ms: uint("latency_ms")?,
        ttft_ms: row
            .try_get::<Option<i64>, _>("ttft_ms")?
            .map(|v| u64::try_from(v).unwrap_or(0)),
        cache_hit: text("cache_hit")?,
        cache_saved_nanos: int("cache_saved_nanos")?,
        id,
    })
}

impl Store {
    /// The usage report.
    pub async fn report(&self, q: &ReportQuery) -> Result<Report, StoreError> {
        let mut rows = report_sql(q).fetch(self).await?;
        let truncated = rows.len() > q.limit;
        rows.truncate(q.limit);
        let rows = rows
            .iter()
            .filter(|row| {
                // Without a grouping, SUM over no rows is one row of NULLs: no groups.
                !q.group_by.is_empty()
                    || row
                        .try_get::<Option<i64>, _>("sum_requests")
                        .is_ok_and(|n| n.is_some())
            })
            .map(|row| {
                let groups = q
                    .group_by
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let c = format!("g{i}");
                        if *d == Dim::Day {
                            row.try_get::<i64, _>(c.as_str()).map(|v| v.to_string())
                        } else {
                            row.try_get::<String, _>(c.as_str())
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ReportRow {
                    groups,
                    totals: totals(row)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Report { rows, truncated })
    }

    /// Daily activity per model and provider.
    pub async fn activity(&self, q: &ActivityQuery) -> Result<Vec<ActivityRow>, StoreError> {
        activity_sql(q)
            .fetch(self)
            .await?
            .iter()
            .map(|row| {
                Ok(ActivityRow {
                    day: row.try_get("day")?,
                    model: row.try_get("model")?,
                    provider: row.try_get("provider")?,
                    totals: totals(row)?,
                })
            })
            .collect()
    }

    /// A page of generations, newest first.
    pub async fn generations(&self, q: &GenerationsQuery) -> Result<Page, StoreError> {
        let rows = generations_sql(q).fetch(self).await?;
        let mut records = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        let next = if records.len() > q.limit {
            records.truncate(q.limit);
            records.last().map(|r| Cursor {
                created_at_ms: r.created_at_ms,
                id: r.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { records, next })
    }

    /// One generation by id.
    pub async fn generation(&self, id: &str) -> Result<Option<UsageRecord>, StoreError> {
        let sql = format!("{RECORD_SELECT} WHERE generation_id = $1");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_the_rollup_its_dimensions_need() {
        let q = |group_by: Vec<Dim>, filters: Vec<(Dim, Vec<String>)>| ReportQuery {
            from: 10,
            to: 20,
            group_by,
            filters,
            limit: 5,
        };
        let plain = report_sql(&q(vec![Dim::Team, Dim::Day], vec![]));
        assert!(
            plain
                .text
                .starts_with("SELECT team AS g0, day AS g1, CAST(SUM(requests)")
        );
        assert!(plain.text.contains(
            "FROM usage_daily WHERE day >= $1 AND day <= $2 GROUP BY team, day ORDER BY day, sum_cost_nanos DESC, team, day LIMIT $3"
        ));
        assert_eq!(
            plain.params,
            [Param::Int(10), Param::Int(20), Param::Int(6)]
        );
        let tags = report_sql(&q(
            vec![Dim::Model],
            vec![(Dim::Tag, vec!["a".into(), "b".into()])],
        ));
        assert!(
            tags.text.contains(
                "FROM usage_daily_tags WHERE day >= $1 AND day <= $2 AND tag IN ($3, $4)"
            )
        );
        let users = report_sql(&q(vec![Dim::User], vec![]));
        assert!(users.text.contains("end_user AS g0"));
        assert!(users.text.contains("FROM usage_daily_users"));
        let total = report_sql(&q(vec![], vec![(Dim::Key, vec!["default/a".into()])]));
        assert!(!total.text.contains("GROUP BY"));
        assert!(total.text.contains("key_id IN ($3)"));
    }

    #[test]
    fn activity_is_per_day_model_and_provider_for_one_key_or_all() {
        let one = activity_sql(&ActivityQuery {
            from: 1,
            to: 30,
            key_id: Some("default/a".into()),
        });
        assert!(one.text.contains(
            "WHERE day >= $1 AND day <= $2 AND key_id = $3 GROUP BY day, model, provider"
        ));
        let all = activity_sql(&ActivityQuery {
            from: 1,
            to: 30,
            key_id: None,
        });
        assert!(!all.text.contains("key_id"));
    }

    #[test]
    fn generations_page_by_keyset_with_filters() {
        let q = GenerationsQuery {
            from_ms: Some(5),
            to_ms: None,
            filters: vec![
                (GenerationFilter::Status, vec!["502".into()]),
                (GenerationFilter::Dim(Dim::Tag), vec!["a_b".into()]),
                (GenerationFilter::Dim(Dim::Team), vec!["".into()]),
            ],
            after: Some(Cursor {
                created_at_ms: 9,
                id: "gen-x".into(),
            }),
            limit: 50,
        };
        let sql = generations_sql(&q);
        assert!(sql.text.contains(
            "WHERE created_at >= $1 AND status IN ($2) AND ((',' || COALESCE(tags, '') || ',') LIKE $3 ESCAPE '\\') AND COALESCE(team, '') IN ($4) AND created_at <= $5 AND (created_at, generation_id) < ($6, $7) ORDER BY created_at DESC, generation_id DESC LIMIT $8"
        ), "{}", sql.text);
        assert_eq!(sql.params[1], Param::Int(502));
        assert_eq!(sql.params[2], Param::Text("%,a\\_b,%".into()));
        assert!(!sql.text.contains("OFFSET"));
    }
}
