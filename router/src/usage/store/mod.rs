//! The usage store: SQLite (standalone) or Postgres (every replica of a cluster on one database),
//! chosen by URL, behind this one type.
//!
//! Queries are built at run time over sqlx's `Any` driver, in SQL both databases accept (integers
//! and text only, `$n` parameters, `ON CONFLICT`, `RETURNING`), rather than with sqlx's
//! compile-time-checked `query!` macros: those check each query against one database, so every
//! query would exist twice, and they need a live database or committed offline data at build
//! time. Every query is exercised against both databases by `router/tests/usage_store.rs`.
//!
//! Writing a batch is one transaction: a multi-row `INSERT … ON CONFLICT (generation_id) DO
//! NOTHING` for the records (on Postgres with `RETURNING generation_id`; on SQLite, in a
//! transaction that holds the file's write lock from its start, counting the rows inserted and,
//! only when some were stored already, asking which), then the daily rollups incremented by the
//! records it actually inserted, and the hourly ones ([`super::rollup`]). A batch that is retried
//! (after a timeout, a crash mid-commit, a replay of the spill file) inserts nothing twice and
//! counts nothing twice.

pub mod read;

use std::{collections::HashSet, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Any, AnyConnection, Executor, Row,
    any::{AnyConnectOptions, AnyPoolOptions},
    pool::Pool,
    query::Query,
};

use super::{
    record::UsageRecord,
    rollup::{Deltas, HourKey, RollupKey, Totals},
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("usage store: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("usage store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL is not one the store understands.
    #[error("usage store URL: {0}")]
    Url(String),
    /// A stored row could not be read back.
    #[error("usage store: a stored row is unreadable: {0}")]
    Corrupt(String),
    /// The database took too long.
    #[error("usage store: no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Which database a store is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, a file on the router's disk.
    Sqlite,
    /// Postgres, shared by every replica.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres` (metric label, logs).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Rows per statement: a batch is cut into chunks of these sizes (largest first), so the
/// databases see a handful of statement shapes, prepared once each, instead of one per size.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// Record columns in the order [`bind_record`] binds them.
const RECORD_COLUMNS: &str = "generation_id, created_at, endpoint, key_id, team, end_user, tags, \
     app, model, served_model, provider, upstream_model, attempts, prompt_tokens, \
     completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, status, \
     error_code, finish_reason, streamed, latency_ms, ttft_ms, usage_anomaly, input_content, \
     output_content, caller_issuer, caller_subject, cache_hit, cache_saved_nanos";
const RECORD_WIDTH: usize = 32;

/// Rollup totals columns, in [`Totals`]' order.
pub(crate) const TOTALS: [&str; 9] = [
    "requests",
    "failed",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "latency_ms",
];

/// The three rollup tables and the column their key adds (see [`super::rollup`]).
pub(crate) const ROLLUPS: [(&str, Option<&str>); 3] = [
    ("usage_daily", None),
    ("usage_daily_tags", Some("tag")),
    ("usage_daily_users", Some("end_user")),
];

/// The hourly rollup and its key columns (see [`super::rollup`]).
pub(crate) const HOURLY: (&str, [&str; 4]) =
    ("usage_hourly", ["hour", "model", "team", "provider"]);

/// The hourly latency histogram: `(table, key columns, count column)`.
pub(crate) const HOURLY_LATENCY: (&str, [&str; 2], &str) = (
    "usage_hourly_latency",
    ["hour", "latency_bucket_ms"],
    "requests",
);

/// A connected (or, for Postgres, connecting) usage store.
pub struct Store {
    pool: Pool<Any>,
    backend: Backend,
    /// Where the SQLite file is.
    path: Option<PathBuf>,
    /// `INSERT` of `CHUNKS[i]` records (with `RETURNING` on Postgres).
    insert_sql: Vec<String>,
    /// SQLite: which of `CHUNKS[i]` ids are stored already.
    existing_sql: Vec<String>,
    /// Upsert of `CHUNKS[i]` rollup rows into `ROLLUPS[t]`: `upsert_sql[t][i]`.
    upsert_sql: Vec<Vec<String>>,
    /// Upsert of `CHUNKS[i]` rows into [`HOURLY`], and into [`HOURLY_LATENCY`].
    hourly_sql: Vec<String>,
    latency_sql: Vec<String>,
    migrated: tokio::sync::OnceCell<()>,
}

impl Store {
    /// Opens the store `url` names: `sqlite://PATH` (the file and its directory are created, and
    /// migrations run now) or `postgres://…` (connections are made when first needed, and
    /// migrations run by [`Store::ready`], so a router starts while its database is down).
    pub async fn open(url: &str) -> Result<Arc<Store>, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, path, url) = parse_url(url)?;
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(options),
        };
        let store = Arc::new(Store {
            pool,
            backend,
            path,
            insert_sql: CHUNKS
                .iter()
                .map(|n| {
                    let sql = insert_sql(*n, backend == Backend::Postgres);
                    for_backend(backend, &sql).into_owned()
                })
                .collect(),
            existing_sql: CHUNKS
                .iter()
                .map(|n| for_backend(backend, &existing_sql(*n)).into_owned())
                .collect(),
            upsert_sql: ROLLUPS
                .iter()
                .map(|(table, extra)| {
                    CHUNKS
                        .iter()
                        .map(|n| for_backend(backend, &upsert_sql(table, *extra, *n)).into_owned())
                        .collect()
                })
                .collect(),
            hourly_sql: CHUNKS
                .iter()
                .map(|n| {
                    for_backend(backend, &upsert_keyed(HOURLY.0, &HOURLY.1, &TOTALS, *n))
                        .into_owned()
                })
                .collect(),
            latency_sql: CHUNKS
                .iter()
                .map(|n| {
                    let (table, key, count) = HOURLY_LATENCY;
                    for_backend(backend, &upsert_keyed(table, &key, &[count], *n)).into_owned()
                })
                .collect(),
            migrated: tokio::sync::OnceCell::new(),
        });
        if backend == Backend::Sqlite {
            // WAL: readers (the report APIs) never wait for the writer. Set once, on one
            // connection: it needs the database to itself and persists in the file.
            let mut conn = store.pool.acquire().await?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            drop(conn);
            store.ready().await?;
            // Statistics for the planner from the start (a store upgraded with new indexes
            // has none for them), and then hourly (`retention::run`).
            store.optimize().await?;
        }
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file, if this is SQLite.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Runs the embedded migrations, once; after a failure the next call tries again. Several
    /// routers starting at once on one Postgres are serialised by sqlx's migration lock.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.migrated
            .get_or_try_init(|| async {
                match self.backend {
                    Backend::Sqlite => {
                        sqlx::migrate!("migrations/usage-sqlite")
                            .run(&self.pool)
                            .await
                    }
                    Backend::Postgres => {
                        sqlx::migrate!("migrations/usage-postgres")
                            .run(&self.pool)
                            .await
                    }
                }
            })
            .await?;
        Ok(())
    }

    /// `sql`, written with `$1, $2, …` in order, as this database takes it (see [`for_backend`]).
    pub fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        for_backend(self.backend, sql)
    }

    /// The connection pool (for the read queries and retention).
    pub(crate) fn pool(&self) -> &Pool<Any> {
        &self.pool
    }

    /// The multi-row insert of `chunk` (of the `size`-th chunk size), its records bound.
    fn insert_query<'q>(&'q self, size: usize, chunk: &'q [Arc<UsageRecord>]) -> AnyQuery<'q> {
        chunk
            .iter()
            .fold(sqlx::query(&self.insert_sql[size]), |q, r| {
                bind_record(q, r)
            })
    }

    /// Stores a batch in one transaction and adds the records it inserted to the rollups;
    /// returns how many it inserted (records already stored are skipped, and not counted again).
    pub async fn insert(&self, batch: &[Arc<UsageRecord>]) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.ready().await?;
        // SQLite: the file's write lock taken at the start, so the ids found missing below are
        // still missing at the insert, and a second writer on the file waits (busy timeout)
        // instead of failing when a read transaction cannot become a write one.
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let mut inserted: HashSet<&str> = HashSet::with_capacity(batch.len());
        for (size, chunk) in chunked(batch) {
            let q = self.insert_query(size, chunk);
            match self.backend {
                // The ids the insert returns: exact whatever other replicas do at the same time.
                Backend::Postgres => {
                    let returned = first_column(q.fetch_all(&mut *tx).await?)?;
                    inserted.extend(
                        chunk
                            .iter()
                            .filter(|r| returned.contains(&r.id))
                            .map(|r| r.id.as_str()),
                    );
                }
                // The transaction holds the file's write lock. Usually no record of a chunk is
                // stored yet, and the insert's count of rows says so: then it inserted them all.
                // Otherwise (a retried batch, a replayed spill, an id twice) the insert is undone,
                // the ids stored already are asked, and the insert made again: the ids not stored
                // before it are the ones it inserts.
                Backend::Sqlite => {
                    tx.execute("SAVEPOINT chunk").await?;
                    let rows = q.execute(&mut *tx).await?.rows_affected();
                    if rows != chunk.len() as u64 {
                        tx.execute("ROLLBACK TO chunk").await?;
                    }
                    tx.execute("RELEASE chunk").await?;
                    if rows == chunk.len() as u64 {
                        inserted.extend(chunk.iter().map(|r| r.id.as_str()));
                        continue;
                    }
                    let mut existing = sqlx::query(&self.existing_sql[size]);
                    for r in chunk {
                        existing = existing.bind(r.id.as_str());
                    }
                    let existing = first_column(existing.fetch_all(&mut *tx).await?)?;
                    self.insert_query(size, chunk).execute(&mut *tx).await?;
                    inserted.extend(
                        chunk
                            .iter()
                            .filter(|r| !existing.contains(&r.id))
                            .map(|r| r.id.as_str()),
                    );
                }
            }
        }
        let count = inserted.len() as u64;
        // Each inserted id once, even if a batch carried a record twice.
        let fresh = batch
            .iter()
            .filter(|r| inserted.remove(r.id.as_str()))
            .map(|r| &**r);
        let deltas = Deltas::of(fresh);
        for (t, rows) in [&deltas.daily, &deltas.tags, &deltas.users]
            .into_iter()
            .enumerate()
        {
            let rows: Vec<(&RollupKey, &Totals)> = rows.iter().collect();
            let with_extra = ROLLUPS[t].1.is_some();
            for (size, chunk) in chunked(&rows) {
                let mut q = sqlx::query(&self.upsert_sql[t][size]);
                for (key, totals) in chunk {
                    q = bind_rollup(q, key, totals, with_extra);
                }
                q.execute(&mut *tx).await?;
            }
        }
        let hourly: Vec<(&HourKey, &Totals)> = deltas.hourly.iter().collect();
        for (size, chunk) in chunked(&hourly) {
            let mut q = sqlx::query(&self.hourly_sql[size]);
            for (k, totals) in chunk {
                q = q.bind(k.hour).bind(k.model).bind(k.team).bind(k.provider);
                q = bind_totals(q, totals);
            }
            q.execute(&mut *tx).await?;
        }
        let latency: Vec<(&(i64, i64), &i64)> = deltas.latency.iter().collect();
        for (size, chunk) in chunked(&latency) {
            let mut q = sqlx::query(&self.latency_sql[size]);
            for ((hour, bucket), n) in chunk {
                q = q.bind(*hour).bind(*bucket).bind(**n);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::Connection::ping(&mut *conn as &mut AnyConnection).await?;
        Ok(())
    }
}

/// `(backend, SQLite path, URL for sqlx)`: `sqlite://PATH` or `sqlite:PATH` (created if missing),
/// `postgres://…` or `postgresql://…` as given.
fn parse_url(url: &str) -> Result<(Backend, Option<PathBuf>, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, None, url.to_string()));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::Url(
            "expected sqlite://PATH, postgres://… or off".into(),
        ));
    };
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Url(
            "sqlite:// needs a file path (an in-memory store would lose every record)".into(),
        ));
    }
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Url(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut params: Vec<&str> = params.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    let sqlx_url = format!("sqlite://{}?{}", path.display(), params.join("&"));
    Ok((Backend::Sqlite, Some(path), sqlx_url))
}

/// Queries are written with numbered parameters, `$1, $2, …`, each once and in order. Postgres
/// takes them as they are. SQLite gets anonymous `?`s instead: sqlx binds a named parameter
/// after looking its name up, and SQLite's lookup walks every name, which makes a statement of a
/// few thousand parameters (a batch of records) cost quadratic time, most of a batch's.
pub fn for_backend(backend: Backend, sql: &str) -> std::borrow::Cow<'_, str> {
    if backend == Backend::Postgres || !sql.contains('$') {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut expected = 1u32;
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0u32;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = n * 10 + d;
                chars.next();
            }
            debug_assert_eq!(n, expected, "parameters must be numbered in order: {sql}");
            expected += 1;
            out.push('?');
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `items` cut into chunks of the sizes in [`CHUNKS`], each with its index there.
fn chunked<T>(mut items: &[T]) -> Vec<(usize, &[T])> {
    let mut out = Vec::new();
    for (i, size) in CHUNKS.iter().enumerate() {
        while items.len() >= *size {
            let (head, tail) = items.split_at(*size);
            out.push((i, head));
            items = tail;
        }
    }
    out
}

/// `($1, …, $w), ($w+1, …), …`: `rows` tuples of `width` parameters.
fn placeholders(rows: usize, width: usize) -> String {
    let mut s = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(r * width + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

fn insert_sql(rows: usize, returning: bool) -> String {
    format!(
        "INSERT INTO usage_records ({RECORD_COLUMNS}) VALUES {} \
         ON CONFLICT (generation_id) DO NOTHING{}",
        placeholders(rows, RECORD_WIDTH),
        if returning {
            " RETURNING generation_id"
        } else {
            ""
        }
    )
}

fn existing_sql(rows: usize) -> String {
    let ids: Vec<String> = (1..=rows).map(|i| format!("${i}")).collect();
    format!(
        "SELECT generation_id FROM usage_records WHERE generation_id IN ({})",
        ids.join(", ")
    )
}

fn upsert_sql(table: &str, extra: Option<&str>, rows: usize) -> String {
    let mut key = vec!["day"];
    key.extend(extra);
    key.extend(["key_id", "team", "model", "provider", "app"]);
    upsert_keyed(table, &key, &TOTALS, rows)
}

/// An upsert of `rows` rows into `table` that adds `sums` to the row of the same `key`.
fn upsert_keyed(table: &str, key: &[&str], sums: &[&str], rows: usize) -> String {
    let key_list = key.join(", ");
    let add: Vec<String> = sums
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({key_list}, {}) VALUES {} ON CONFLICT ({key_list}) DO UPDATE SET {}",
        sums.join(", "),
        placeholders(rows, key.len() + sums.len()),
        add.join(", ")
    )
}

/// The first column of `rows`, as text (the generation ids a query returned).
fn first_column(rows: Vec<sqlx::any::AnyRow>) -> Result<HashSet<String>, sqlx::Error> {
    rows.iter().map(|row| row.try_get::<String, _>(0)).collect()
}

type AnyQuery<'q> = Query<'q, Any, sqlx::any::AnyArguments<'q>>;

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn bind_record<'q>(q: AnyQuery<'q>, r: &'q UsageRecord) -> AnyQuery<'q> {
    let t = &r.tokens;
    let tags = (!r.tags.is_empty()).then(|| r.tags.join(","));
    let attempts = serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".into());
    q.bind(r.id.as_str())
        .bind(r.created_at_ms)
        .bind(r.endpoint.as_str())
        .bind(r.key_id.as_str())
        .bind(r.team.as_deref())
        .bind(r.user.as_deref())
        .bind(tags)
        .bind(r.app.as_deref())
        .bind(r.model.as_str())
        .bind(r.served_model.as_deref())
        .bind(r.provider.as_deref())
        .bind(r.upstream_model.as_deref())
        .bind(attempts)
        .bind(int(t.prompt_tokens))
        .bind(int(t.completion_tokens))
        .bind(int(t.cached_tokens))
        .bind(int(t.cache_write_tokens))
        .bind(int(t.reasoning_tokens))
        .bind(r.cost_nanos)
        .bind(i64::from(r.status))
        .bind(r.error_code.as_deref())
        .bind(r.finish_reason.as_deref())
        .bind(i64::from(r.streamed))
        .bind(int(r.latency_ms))
        .bind(r.ttft_ms.map(int))
        .bind(r.usage_anomaly.as_deref())
        .bind(r.input.as_deref())
        .bind(r.output.as_deref())
        .bind(r.caller_issuer.as_deref())
        .bind(r.caller_subject.as_deref())
        .bind(r.cache_hit.as_deref())
        .bind(r.cache_saved_nanos)
}

fn bind_rollup<'q>(
    q: AnyQuery<'q>,
    k: &RollupKey<'q>,
    t: &Totals,
    with_extra: bool,
) -> AnyQuery<'q> {
    let mut q = q.bind(k.day);
    if with_extra {
        q = q.bind(k.extra);
    }
    let q = q
        .bind(k.key_id)
        .bind(k.team)
        .bind(k.model)
        .bind(k.provider)
        .bind(k.app);
    bind_totals(q, t)
}

/// Binds `t` in [`TOTALS`]' order.
fn bind_totals<'q>(q: AnyQuery<'q>, t: &Totals) -> AnyQuery<'q> {
    q.bind(t.requests)
        .bind(t.failed)
        .bind(t.prompt_tokens)
        .bind(t.completion_tokens)
        .bind(t.cached_tokens)
        .bind(t.cache_write_tokens)
        .bind(t.reasoning_tokens)
        .bind(t.cost_nanos)
        .bind(t.latency_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_a_few_statement_shapes() {
        let items: Vec<u32> = (0..343).collect();
        let sizes: Vec<usize> = chunked(&items)
            .iter()
            .map(|(i, c)| {
                assert_eq!(CHUNKS[*i], c.len());
                c.len()
            })
            .collect();
        assert_eq!(sizes, [256, 64, 16, 4, 1, 1, 1]);
        let flat: Vec<u32> = chunked(&items)
            .into_iter()
            .flat_map(|(_, c)| c.to_vec())
            .collect();
        assert_eq!(flat, items);
    }

    #[test]
    fn statements_number_their_parameters_across_rows() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        let sql = upsert_sql("usage_daily_tags", Some("tag"), 1);
        assert!(sql.starts_with(
            "INSERT INTO usage_daily_tags (day, tag, key_id, team, model, provider, app, requests"
        ));
        assert!(
            sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
        );
        assert!(
            sql.contains("ON CONFLICT (day, tag, key_id, team, model, provider, app) DO UPDATE")
        );
        assert!(sql.contains("cost_nanos = usage_daily_tags.cost_nanos + excluded.cost_nanos"));
        assert_eq!(RECORD_COLUMNS.split(',').count(), RECORD_WIDTH);
        assert!(insert_sql(1, true).ends_with(&format!(
            "${RECORD_WIDTH}) ON CONFLICT (generation_id) DO NOTHING RETURNING generation_id"
        )));
        assert!(insert_sql(2, false).ends_with(&format!(
            "${}) ON CONFLICT (generation_id) DO NOTHING",
            2 * RECORD_WIDTH
        )));
        let (table, key, count) = HOURLY_LATENCY;
        assert_eq!(
            upsert_keyed(table, &key, &[count], 2),
            "INSERT INTO usage_hourly_latency (hour, latency_bucket_ms, requests) VALUES \
             ($1, $2, $3), ($4, $5, $6) ON CONFLICT (hour, latency_bucket_ms) DO UPDATE SET \
             requests = usage_hourly_latency.requests + excluded.requests"
        );
        assert!(
            upsert_keyed(HOURLY.0, &HOURLY.1, &TOTALS, 1)
                .contains("(hour, model, team, provider, requests, failed,")
        );
        assert!(existing_sql(3).ends_with("IN ($1, $2, $3)"));
    }

    #[test]
    fn sqlite_gets_anonymous_parameters_in_order() {
        let sql = "SELECT a FROM t WHERE x = $1 AND y IN ($2, $3) LIMIT $4";
        assert_eq!(for_backend(Backend::Postgres, sql), sql);
        assert_eq!(
            for_backend(Backend::Sqlite, sql),
            "SELECT a FROM t WHERE x = ? AND y IN (?, ?) LIMIT ?"
        );
        let many = placeholders(300, 25);
        assert_eq!(
            for_backend(Backend::Sqlite, &many).matches('?').count(),
            7500
        );
    }

    #[test]
    fn urls_name_the_backend() {
        let dir = std::env::temp_dir().join(format!("switchboard-url-{}", std::process::id()));
        let file = dir.join("usage.db");
        let (b, path, url) = parse_url(&format!("sqlite://{}", file.display())).unwrap();
        assert_eq!(
            (b, path.as_deref()),
            (Backend::Sqlite, Some(file.as_path()))
        );
        assert_eq!(url, format!("sqlite://{}?mode=rwc", file.display()));
        assert!(dir.is_dir());
        let (_, _, url) = parse_url(&format!("sqlite:{}?mode=rw", file.display())).unwrap();
        assert!(url.ends_with("?mode=rw"));
        let pg = "postgres://u:p@db:5432/usage?sslmode=require";
        assert_eq!(
            parse_url(pg).unwrap(),
            (Backend::Postgres, None, pg.to_string())
        );
        assert!(parse_url("mysql://x").is_err());
        assert!(parse_url("sqlite://:memory:").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
