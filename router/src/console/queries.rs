//! What the console asks the usage store beyond the usage API's report: hour buckets and latency
//! percentiles of the last hours, and when each key was last used. The daily rollups have
//! neither, so these read the records, but only a range of at most [`MAX_RAW_HOURS`] through the
//! `(created_at, …)` index, and one key's newest record through `(key_id, created_at, …)`: their
//! cost grows with the traffic of the last two days, never with the table.

use sqlx::Row;

use crate::usage::store::{Store, StoreError};

/// Longest range read from the records rather than the rollups.
pub const MAX_RAW_HOURS: i64 = 48;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

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

    /// The records' column for it (absent values as `''`).
    fn record_column(self) -> &'static str {
        match self {
            By::Model => "COALESCE(served_model, model)",
            By::Team => "COALESCE(team, '')",
            By::Provider => "COALESCE(provider, '')",
        }
    }
}

/// One hour × group of the records.
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

/// The SQL of hour buckets since `from_ms`.
pub fn hourly_sql(by: By) -> String {
    format!(
        "SELECT created_at / {HOUR_MS} AS hour, {} AS grp, COUNT(*) AS requests, \
         CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost FROM usage_records \
         WHERE created_at >= $1 GROUP BY created_at / {HOUR_MS}, {} ORDER BY hour",
        by.record_column(),
        by.record_column()
    )
}

/// Requests and cost per hour and group since `from_ms` (at most [`MAX_RAW_HOURS`] ago).
pub async fn hourly(store: &Store, by: By, from_ms: i64) -> Result<Vec<HourRow>, StoreError> {
    let sql = hourly_sql(by);
    let rows = sqlx::query(&store.sql(&sql))
        .bind(from_ms)
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

/// Latency percentiles of the records since `from_ms`: `(count, p50, p95)` in milliseconds,
/// nearest-rank.
pub async fn latency_percentiles(
    store: &Store,
    from_ms: i64,
) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
    let count: i64 =
        sqlx::query(&store.sql("SELECT COUNT(*) AS n FROM usage_records WHERE created_at >= $1"))
            .bind(from_ms)
            .fetch_one(store.pool())
            .await?
            .try_get("n")?;
    if count == 0 {
        return Ok((0, None, None));
    }
    let at = |p: i64| async move {
        let offset = nearest_rank(count, p);
        let row = sqlx::query(&store.sql(
            "SELECT latency_ms FROM usage_records WHERE created_at >= $1 \
             ORDER BY latency_ms LIMIT 1 OFFSET $2",
        ))
        .bind(from_ms)
        .bind(offset)
        .fetch_optional(store.pool())
        .await?;
        Ok::<_, StoreError>(row.map(|r| r.try_get::<i64, _>("latency_ms")).transpose()?)
    };
    Ok((count, at(50).await?, at(95).await?))
}

/// The zero-based index of the `p`th percentile of `n` sorted values, nearest-rank.
pub fn nearest_rank(n: i64, p: i64) -> i64 {
    // ceil(p/100 * n) - 1, in integers.
    ((p * n + 99) / 100 - 1).clamp(0, (n - 1).max(0))
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
    fn percentiles_are_nearest_rank() {
        assert_eq!(nearest_rank(1, 50), 0);
        assert_eq!(nearest_rank(1, 95), 0);
        assert_eq!(nearest_rank(10, 50), 4);
        assert_eq!(nearest_rank(10, 95), 9);
        assert_eq!(nearest_rank(100, 95), 94);
        assert_eq!(nearest_rank(101, 50), 50);
    }

    #[test]
    fn hour_buckets_read_a_time_range_of_the_records() {
        let sql = hourly_sql(By::Team);
        assert!(sql.contains("WHERE created_at >= $1"), "{sql}");
        assert!(sql.contains("GROUP BY created_at / 3600000, COALESCE(team, '')"));
        assert_eq!(By::parse(Some("provider")), By::Provider);
        assert_eq!(By::parse(Some("colour")), By::Model);
        assert_eq!(hour_of(3_600_000 * 5 + 1), 5);
    }
}
