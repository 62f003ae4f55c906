//! What the console asks the usage store beyond the usage API's report: hour buckets and latency
//! percentiles of the last hours, from the hourly rollups (`usage_hourly`, and the latency
//! histogram `usage_hourly_latency`), a few thousand rows for a day whatever the traffic; a daily
//! budget's burn-down from the records of its keys (a range of `(key_id, created_at, …)` per
//! key, since its hour); and when each key was last used, from that key's newest record.

use sqlx::Row;

use crate::usage::{
    record::HOUR_MS,
    rollup::percentile,
    store::{Store, StoreError},
};

/// A dimension charts are split by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// The model billed (that served, else asked for).
    Model,
    /// The key's team.
    Team,
    /// The provider that served.
    Provider,
}

impl By {
    /// Every choice, in the order the page offers them.
    pub const ALL: [By; 3] = [By::Model, By::Team, By::Provider];

    /// The query parameter's value.
    pub fn name(self) -> &'static str {
        match self {
            By::Model => "model",
            By::Team => "team",
            By::Provider => "provider",
        }
    }

    /// Parses the query parameter (default: model).
    pub fn parse(v: Option<&str>) -> By {
        By::ALL
            .into_iter()
            .find(|b| Some(b.name()) == v)
            .unwrap_or(By::Model)
    }

    /// The hourly rollup's column for it (absent values are `''` there).
    fn hourly_column(self) -> &'static str {
        match self {
            By::Model => "model",
            By::Team => "team",
            By::Provider => "provider",
        }
    }
}

/// One hour × group of the hourly rollup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourRow {
    /// Hours since 1970-01-01 00:00 UTC.
    pub hour: i64,
    /// The group's value (`''` when requests had none).
    pub group: String,
    /// Requests.
    pub requests: i64,
    /// Cost, nano-dollars.
    pub cost_nanos: i64,
}

/// The SQL of hour buckets from hour `$1` on.
pub fn hourly_sql(by: By) -> String {
    let c = by.hourly_column();
    format!(
        "SELECT hour, {c} AS grp, CAST(SUM(requests) AS BIGINT) AS requests, \
         CAST(SUM(cost_nanos) AS BIGINT) AS cost FROM usage_hourly \
         WHERE hour >= $1 GROUP BY hour, {c} ORDER BY hour"
    )
}

/// Requests and cost per hour and group from hour `from_hour` on.
pub async fn hourly(store: &Store, by: By, from_hour: i64) -> Result<Vec<HourRow>, StoreError> {
    let sql = hourly_sql(by);
    let rows = sqlx::query(&store.sql(&sql))
        .bind(from_hour)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HourRow {
                hour: r.try_get("hour")?,
                group: r.try_get("grp")?,
                requests: r.try_get("requests")?,
                cost_nanos: r.try_get("cost")?,
            })
        })
        .collect()
}

/// Latency percentiles from hour `from_hour` on, from the hourly histogram: `(count, p50, p95)`
/// in milliseconds, nearest-rank, each the lower bound of its bucket (two significant digits).
pub async fn latency_percentiles(
    store: &Store,
    from_hour: i64,
) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
    let rows = sqlx::query(&store.sql(
        "SELECT latency_bucket_ms AS bucket, CAST(SUM(requests) AS BIGINT) AS n \
         FROM usage_hourly_latency WHERE hour >= $1 \
         GROUP BY latency_bucket_ms ORDER BY latency_bucket_ms",
    ))
    .bind(from_hour)
    .fetch_all(store.pool())
    .await?;
    let histogram = rows
        .iter()
        .map(|r| Ok((r.try_get::<i64, _>("bucket")?, r.try_get::<i64, _>("n")?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let count = histogram.iter().map(|(_, n)| n).sum();
    Ok((
        count,
        percentile(&histogram, 50),
        percentile(&histogram, 95),
    ))
}

/// Cost per hour (hours since the epoch, nano-dollars) of the records of `keys` since `from_ms`:
/// the burn-down of a daily budget.
pub async fn hourly_cost_of_keys(
    store: &Store,
    keys: &[String],
    from_ms: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let list: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT created_at / {HOUR_MS} AS hour, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost \
         FROM usage_records WHERE created_at >= $1 AND key_id IN ({}) \
         GROUP BY created_at / {HOUR_MS} ORDER BY hour",
        list.join(", ")
    );
    let sql = store.sql(&sql);
    let mut q = sqlx::query(&sql).bind(from_ms);
    for k in keys {
        q = q.bind(k.as_str());
    }
    let rows = q.fetch_all(store.pool()).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("hour")?, r.try_get("cost")?)))
        .collect()
}

/// When `key_id` was last used (Unix ms), from its newest record.
pub async fn last_used(store: &Store, key_id: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(&store.sql(
        "SELECT created_at FROM usage_records WHERE key_id = $1 \
         ORDER BY created_at DESC LIMIT 1",
    ))
    .bind(key_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| r.try_get::<i64, _>("created_at")).transpose()?)
}

/// Hours since the epoch of `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_buckets_read_the_hourly_rollup() {
        let sql = hourly_sql(By::Team);
        assert!(sql.contains("FROM usage_hourly WHERE hour >= $1"), "{sql}");
        assert!(sql.contains("GROUP BY hour, team"));
        assert_eq!(By::parse(Some("provider")), By::Provider);
        assert_eq!(By::parse(Some("colour")), By::Model);
        assert_eq!(hour_of(3_600_000 * 5 + 1), 5);
    }
}
