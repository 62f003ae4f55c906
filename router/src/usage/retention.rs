//! Retention: raw records are kept for `--usage-retention` (90 days by default), the daily
//! rollups for `--usage-rollup-retention` (two years): reports over old months keep working after
//! their records are gone. Deletes go in small batches (a thousand records, or one day of one
//! rollup table, per transaction) with a pause between, so no statement holds many locks or runs
//! long, whatever the backlog. On Postgres each batch first takes a transaction-level advisory
//! lock without waiting: when another replica is deleting, this one skips the round.

use std::{sync::Arc, time::Duration};

use sqlx::Row;
use tokio::sync::watch;

use super::{
    record::DAY_MS,
    store::{Backend, ROLLUPS, Store, StoreError},
};

/// Records deleted per transaction.
pub const RECORDS_PER_BATCH: i64 = 1000;
/// How often retention runs (and its first run after start).
const EVERY: Duration = Duration::from_secs(3600);
const FIRST_RUN: Duration = Duration::from_secs(60);
/// Pause between batches.
const PAUSE: Duration = Duration::from_millis(20);
/// Advisory lock key of retention on Postgres (any constant shared by every replica).
const ADVISORY_LOCK: i64 = 0x5357_4254_5245_544e;

/// How long usage is kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Raw records; `None` keeps them forever.
    pub records: Option<Duration>,
    /// Daily rollups; `None` keeps them forever.
    pub rollups: Option<Duration>,
}

impl Store {
    /// Runs `sql` in a transaction (on Postgres, only with retention's advisory lock); `None`
    /// when another replica holds the lock.
    async fn delete_batch(&self, sql: &str, bind: i64) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.backend() == Backend::Postgres {
            let row = sqlx::query("SELECT pg_try_advisory_xact_lock($1)")
                .bind(ADVISORY_LOCK)
                .fetch_one(&mut *tx)
                .await?;
            if !row.try_get::<bool, _>(0)? {
                return Ok(None);
            }
        }
        let n = sqlx::query(sql)
            .bind(bind)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Some(n))
    }

    /// Deletes one batch of records created before `cutoff_ms`; `None` when another replica is
    /// deleting.
    pub async fn delete_records_before(&self, cutoff_ms: i64) -> Result<Option<u64>, StoreError> {
        let sql = format!(
            "DELETE FROM usage_records WHERE generation_id IN (SELECT generation_id FROM \
             usage_records WHERE created_at < $1 ORDER BY created_at LIMIT {RECORDS_PER_BATCH})"
        );
        self.delete_batch(&sql, cutoff_ms).await
    }

    /// Deletes the oldest day of rollup table `table` if it is before `cutoff_day`.
    pub async fn delete_rollup_day_before(
        &self,
        table: &str,
        cutoff_day: i64,
    ) -> Result<Option<u64>, StoreError> {
        let sql =
            format!("DELETE FROM {table} WHERE day = (SELECT MIN(day) FROM {table}) AND day < $1");
        self.delete_batch(&sql, cutoff_day).await
    }

    /// One full retention pass at `now_ms`: every batch until nothing old is left (or another
    /// replica is at it). Returns `(records, rollup rows)` deleted.
    pub async fn apply_retention(
        &self,
        policy: Retention,
        now_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut deleted = (0, 0);
        if let Some(keep) = policy.records {
            let cutoff = now_ms - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
            while let Some(n) = self.delete_records_before(cutoff).await? {
                deleted.0 += n;
                if n < RECORDS_PER_BATCH as u64 {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
        if let Some(keep) = policy.rollups {
            let keep_days = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX) / DAY_MS;
            let cutoff_day = now_ms.div_euclid(DAY_MS) - keep_days;
            for (table, _) in ROLLUPS {
                while let Some(n) = self.delete_rollup_day_before(table, cutoff_day).await? {
                    if n == 0 {
                        break;
                    }
                    deleted.1 += n;
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
        Ok(deleted)
    }
}

/// Applies `policy` a minute after start, then hourly, until `stop` turns true.
pub async fn run(store: Arc<Store>, policy: Retention, mut stop: watch::Receiver<bool>) {
    if policy.records.is_none() && policy.rollups.is_none() {
        return;
    }
    let mut next = tokio::time::Instant::now() + FIRST_RUN;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep_until(next) => {}
        }
        next += EVERY;
        let now = jiff::Timestamp::now().as_millisecond();
        match store.apply_retention(policy, now).await {
            Ok((0, 0)) => {}
            Ok((records, rollups)) => {
                tracing::info!(
                    records,
                    rollup_rows = rollups,
                    "usage retention deleted old usage"
                );
            }
            Err(e) => tracing::warn!("usage retention failed (retried in an hour): {e}"),
        }
    }
}
