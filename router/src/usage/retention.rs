//! Retention: raw records (and the hourly rollups, which serve only the console's last hours) are
//! kept for `--usage-retention` (90 days by default), the daily rollups for
//! `--usage-rollup-retention` (two years): reports over old months keep working after their
//! records are gone. Deletes go in small batches (a thousand records, or one day of one
//! rollup table, per transaction) with a pause between, so no statement holds many locks or runs
//! long, whatever the backlog. On Postgres each batch first takes a transaction-level advisory
//! lock without waiting: when another replica is deleting, this one skips the round.
//!
//! The same hourly round keeps a SQLite store's query planner statistics fresh (`PRAGMA
//! optimize`): the generation explorer's filters each have an index, and which one a query
//! with two filters walks is chosen from them (docs/usage.md#indexes). Postgres' autovacuum
//! does this itself.

use std::{sync::Arc, time::Duration};

use sqlx::Row;
use tokio::sync::watch;

use super::{
    record::DAY_MS,
    record::HOUR_MS,
    store::{Backend, HOURLY, HOURLY_LATENCY, ROLLUPS, Store, StoreError},
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
        self.delete_oldest(table, "day", cutoff_day).await
    }

    /// Deletes the rows of `table` of the lowest `column` (a day or an hour) if it is before
    /// `cutoff`.
    async fn delete_oldest(
        &self,
        table: &str,
        column: &str,
        cutoff: i64,
    ) -> Result<Option<u64>, StoreError> {
        let sql = format!(
            "DELETE FROM {table} WHERE {column} = (SELECT MIN({column}) FROM {table}) \
             AND {column} < $1"
        );
        self.delete_batch(&sql, cutoff).await
    }

    /// Deletes `table`'s rows before `cutoff`, a `column` value at a time. Returns the rows.
    async fn delete_all_before(
        &self,
        table: &str,
        column: &str,
        cutoff: i64,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        while let Some(n) = self.delete_oldest(table, column, cutoff).await? {
            if n == 0 {
                break;
            }
            deleted += n;
            tokio::time::sleep(PAUSE).await;
        }
        Ok(deleted)
    }

    /// SQLite: refreshes the query planner's statistics where they are missing or stale
    /// (`PRAGMA optimize`, which samples rather than reads big tables). Postgres: nothing.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        if self.backend() == Backend::Sqlite {
            sqlx::query("PRAGMA optimize = 0x10002")
                .execute(self.pool())
                .await?;
        }
        Ok(())
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
            let cutoff_hour = cutoff.div_euclid(HOUR_MS);
            deleted.1 += self
                .delete_all_before(HOURLY.0, "hour", cutoff_hour)
                .await?;
            deleted.1 += self
                .delete_all_before(HOURLY_LATENCY.0, "hour", cutoff_hour)
                .await?;
        }
        if let Some(keep) = policy.rollups {
            let keep_days = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX) / DAY_MS;
            let cutoff_day = now_ms.div_euclid(DAY_MS) - keep_days;
            for (table, _) in ROLLUPS {
                deleted.1 += self.delete_all_before(table, "day", cutoff_day).await?;
            }
        }
        Ok(deleted)
    }
}

/// Applies `policy` and refreshes the planner's statistics ([`Store::optimize`]) a minute after
/// start, then hourly, until `stop` turns true.
pub async fn run(store: Arc<Store>, policy: Retention, mut stop: watch::Receiver<bool>) {
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
        if let Err(e) = store.optimize().await {
            tracing::warn!("usage store statistics were not refreshed (retried in an hour): {e}");
        }
    }
}
