//! The usage store's read side at scale, on SQLite and on a Postgres server started for the
//! test: a store made by the previous schema (migrations 1–4) with records in it is upgraded when
//! opened (the explorer's per-filter indexes built, the last two days rolled up by hour), and one
//! of the schema before migration 7 gets those indexes without the generation id and pages as
//! before; every filter of the generation explorer is answered from its own index, newest first,
//! sorting at most one millisecond's records (SQLite's plan); the console's hourly rollups and latency histogram match the records written through
//! the store and go with them at retention.

use std::{path::PathBuf, sync::Arc};

use sqlx::{AnyPool, Row, any::AnyPoolOptions, migrate::Migrator};
use switchboard_e2e::postgres::Postgres;
use switchboard_router::{
    console::queries::{self, By},
    usage::{
        query::GenerationsQuery,
        record::{HOUR_MS, UsageRecord},
        retention::Retention,
        rollup::latency_bucket,
        store::{
            Backend, Store, for_backend,
            read::{Param, generations_sql},
        },
    },
};

/// The explorer's indexes the upgrade adds (the key's is rebuilt with the status).
const INDEXES: [&str; 5] = [
    "usage_records_key_newest",
    "usage_records_model_newest",
    "usage_records_team_newest",
    "usage_records_provider_newest",
    "usage_records_status_newest",
];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-usage-indexes-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Record `i`, `age_ms` old: model `m{i % 3}`, team `t{i % 2}` (none for every seventh),
/// status 502 for every fifth, latency `10 * i` ms.
fn record(i: usize, age_ms: i64) -> UsageRecord {
    UsageRecord {
        id: format!("gen-{i:05}"),
        created_at_ms: now_ms() - age_ms,
        endpoint: "chat".into(),
        key_id: format!("default/key-{}", i % 4),
        team: (!i.is_multiple_of(7)).then(|| format!("t{}", i % 2)),
        user: None,
        tags: vec![],
        app: None,
        caller_issuer: None,
        caller_subject: None,
        model: format!("m{}", i % 3),
        served_model: None,
        provider: Some("p".into()),
        upstream_model: None,
        attempts: vec![],
        tokens: Default::default(),
        cost_nanos: 1000 + i as i64,
        status: if i.is_multiple_of(5) { 502 } else { 200 },
        error_code: None,
        finish_reason: None,
        usage_anomaly: None,
        input: None,
        output: None,
        streamed: false,
        latency_ms: 10 * i as u64,
        ttft_ms: None,
        cache_hit: None,
        cache_saved_nanos: 0,
    }
}

/// A database at an earlier schema: the migrations before `below` only, then `records` written
/// as that version wrote them (before 5, with no hourly rollups).
async fn previous_schema(url: &str, backend: Backend, below: i64, records: &[UsageRecord]) {
    sqlx::any::install_default_drivers();
    let dir = match backend {
        Backend::Sqlite => "usage-sqlite",
        Backend::Postgres => "usage-postgres",
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut migrator = Migrator::new(path).await.unwrap();
    let previous: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < below)
        .cloned()
        .collect();
    assert_eq!(previous.len() as i64, below - 1);
    migrator.migrations = previous.into();
    let create = match backend {
        Backend::Sqlite => format!("{url}?mode=rwc"),
        Backend::Postgres => url.to_string(),
    };
    let pool = pool(&create).await;
    migrator.run(&pool).await.unwrap();
    for r in records {
        let sql = for_backend(
            backend,
            "INSERT INTO usage_records (generation_id, created_at, endpoint, key_id, team, model, \
             provider, attempts, prompt_tokens, completion_tokens, cached_tokens, \
             cache_write_tokens, reasoning_tokens, cost_nanos, status, streamed, latency_ms) \
             VALUES ($1, $2, 'chat', $3, $4, $5, $6, '[]', 0, 0, 0, 0, 0, $7, $8, 0, $9)",
        );
        sqlx::query(&sql)
            .bind(r.id.as_str())
            .bind(r.created_at_ms)
            .bind(r.key_id.as_str())
            .bind(r.team.as_deref())
            .bind(r.model.as_str())
            .bind(r.provider.as_deref())
            .bind(r.cost_nanos)
            .bind(i64::from(r.status))
            .bind(r.latency_ms as i64)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

async fn pool(url: &str) -> AnyPool {
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

/// The names of `usage_records`' indexes.
async fn indexes(pool: &AnyPool, backend: Backend) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage_records'"
        }
        Backend::Postgres => {
            "SELECT CAST(indexname AS TEXT) AS name FROM pg_indexes WHERE tablename = 'usage_records'"
        }
    };
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>("name").unwrap())
        .collect()
}

/// `(requests, cost)` of the hourly rollup, all hours.
async fn hourly_totals(pool: &AnyPool) -> (i64, i64) {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n, \
         CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS c FROM usage_hourly",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (row.try_get("n").unwrap(), row.try_get("c").unwrap())
}

/// Opening a store of the previous schema upgrades it: the indexes are there, the last two
/// days' records are in the hourly rollup (older ones are not), and writing goes on.
async fn an_existing_store_is_upgraded(url: &str, backend: Backend) {
    let recent: Vec<UsageRecord> = (0..30).map(|i| record(i, 3_600_000)).collect();
    let old: Vec<UsageRecord> = (30..40).map(|i| record(i, 5 * 86_400_000)).collect();
    let all: Vec<UsageRecord> = recent.iter().chain(&old).cloned().collect();
    previous_schema(url, backend, 5, &all).await;
    let store = Store::open(url).await.unwrap();
    store.ready().await.unwrap();
    let pool = pool(url).await;
    let have = indexes(&pool, backend).await;
    for index in INDEXES {
        assert!(have.iter().any(|h| h == index), "{index} in {have:?}");
    }
    let want = (
        recent.len() as i64,
        recent.iter().map(|r| r.cost_nanos).sum::<i64>(),
    );
    assert_eq!(hourly_totals(&pool).await, want);
    let (n, p50, _) = queries::latency_percentiles(&store, 0).await.unwrap();
    assert_eq!(n, recent.len() as i64);
    // Latencies 0, 10, … 290 ms: the 15th of 30 is 140 ms.
    assert_eq!(p50, Some(140));
    // Filters answer from the upgraded store.
    let q = GenerationsQuery::parse(&[
        ("model".into(), "m1".into()),
        ("status".into(), "502".into()),
        ("limit".into(), "50".into()),
    ])
    .unwrap();
    let page = store.generations(&q).await.unwrap();
    let expected = all
        .iter()
        .filter(|r| r.model == "m1" && r.status == 502)
        .count();
    assert_eq!(page.records.len(), expected);
    // New records are rolled up by hour as they are written.
    let more: Vec<Arc<UsageRecord>> = (40..45).map(|i| Arc::new(record(i, 60_000))).collect();
    store.insert(&more).await.unwrap();
    assert_eq!(hourly_totals(&pool).await.0, want.0 + 5);
    pool.close().await;
}

/// The definition of index `name`.
async fn index_definition(pool: &AnyPool, backend: Backend, name: &str) -> String {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT sql AS def FROM sqlite_master WHERE type = 'index' AND name = $1"
        }
        Backend::Postgres => {
            "SELECT CAST(indexdef AS TEXT) AS def FROM pg_indexes WHERE indexname = $1"
        }
    };
    let row = sqlx::query(&for_backend(backend, sql))
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
    row.try_get("def").unwrap()
}

/// A store of the schema before migration 7 (indexes ending with the generation id) is upgraded
/// to indexes without it, and its records still page newest first, ties of one millisecond in
/// generation id order, each record once, across pages cut inside a millisecond.
async fn indexes_narrowed_and_pages_unchanged(url: &str, backend: Backend) {
    // 40 records over 8 milliseconds, five in each, ids not in insertion order.
    let at = now_ms() - 60_000;
    let records: Vec<UsageRecord> = (0..40)
        .map(|i| UsageRecord {
            id: format!("gen-{:05}", (i * 17) % 40),
            created_at_ms: at + (i as i64) / 5,
            ..record(i, 0)
        })
        .collect();
    previous_schema(url, backend, 7, &records[..20]).await;
    let store = Store::open(url).await.unwrap();
    store.ready().await.unwrap();
    let more: Vec<Arc<UsageRecord>> = records[20..].iter().cloned().map(Arc::new).collect();
    assert_eq!(store.insert(&more).await.unwrap(), 20);
    let pool = pool(url).await;
    for index in INDEXES.iter().chain(&["usage_records_newest"]) {
        let def = index_definition(&pool, backend, index).await;
        assert!(!def.contains("generation_id"), "{def}");
        assert!(def.contains("created_at DESC"), "{def}");
    }
    pool.close().await;
    let mut want: Vec<(i64, String)> = records
        .iter()
        .map(|r| (r.created_at_ms, r.id.clone()))
        .collect();
    want.sort_by(|a, b| b.cmp(a));
    for filter in [
        None,
        Some(("key", "default/key-1")),
        Some(("status", "502")),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("limit".to_string(), "3".to_string())];
            params.extend(filter.map(|(k, v)| (k.to_string(), v.to_string())));
            params.extend(cursor.take().map(|c| ("cursor".to_string(), c)));
            let page = store
                .generations(&GenerationsQuery::parse(&params).unwrap())
                .await
                .unwrap();
            seen.extend(page.records.iter().map(|r| (r.created_at_ms, r.id.clone())));
            match page.next {
                Some(next) => cursor = Some(format!("{}.{}", next.created_at_ms, next.id)),
                None => break,
            }
        }
        let matching: Vec<(i64, String)> = want
            .iter()
            .filter(|(ms, id)| {
                let r = records
                    .iter()
                    .find(|r| r.created_at_ms == *ms && &r.id == id)
                    .unwrap();
                match filter {
                    None => true,
                    Some(("key", v)) => r.key_id == v,
                    Some((_, v)) => r.status.to_string() == v,
                }
            })
            .cloned()
            .collect();
        assert_eq!(seen, matching, "{filter:?}");
    }
}

/// The explorer's filters each walk their own index, newest first, and never sort more than the
/// records of one millisecond (SQLite's `EXPLAIN QUERY PLAN`: "RIGHT PART OF ORDER BY"; Postgres on a table this small scans it, so its plans are in
/// docs/benchmarks.md, measured on ten million records).
async fn each_filter_has_its_index(store: &Store, url: &str) {
    let pool = pool(url).await;
    for (filter, value, index) in [
        ("key", "default/key-1", "usage_records_key_newest"),
        ("model", "m2", "usage_records_model_newest"),
        ("team", "t1", "usage_records_team_newest"),
        ("team", "", "usage_records_team_newest"),
        ("provider", "p", "usage_records_provider_newest"),
        ("status", "502", "usage_records_status_newest"),
    ] {
        let q = GenerationsQuery::parse(&[
            (filter.into(), value.into()),
            ("cursor".into(), format!("{}.gen-99999", now_ms())),
            ("limit".into(), "50".into()),
        ])
        .unwrap();
        let sql = generations_sql(&q);
        let text = format!("EXPLAIN QUERY PLAN {}", store.sql(&sql.text));
        let mut explain = sqlx::query(&text);
        for p in &sql.params {
            explain = match p {
                Param::Int(i) => explain.bind(*i),
                Param::Text(s) => explain.bind(s.as_str()),
            };
        }
        let plan: Vec<String> = explain
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains(&format!("USING INDEX {index}")),
            "{filter}: {plan}"
        );
        assert!(
            !plan.contains("TEMP B-TREE FOR ORDER BY"),
            "{filter} sorts: {plan}"
        );
        // And the page is right.
        let page = store.generations(&q).await.unwrap();
        assert!(!page.records.is_empty(), "{filter}={value}");
    }
    pool.close().await;
}

/// The hourly rollup and histogram follow the records written, and retention takes them with
/// the records.
async fn hours_follow_the_records(store: &Store) {
    let records: Vec<Arc<UsageRecord>> = (0..60)
        .map(|i| Arc::new(record(i, (i as i64 % 3) * 3 * HOUR_MS)))
        .collect();
    store.insert(&records).await.unwrap();
    // Written twice (a replayed batch): counted once.
    store.insert(&records).await.unwrap();
    let this_hour = now_ms().div_euclid(HOUR_MS);
    let rows = queries::hourly(store, By::Team, this_hour - 23)
        .await
        .unwrap();
    for r in &records {
        let hour = r.created_at_ms.div_euclid(HOUR_MS);
        let team = r.team.clone().unwrap_or_default();
        let want: Vec<&Arc<UsageRecord>> = records
            .iter()
            .filter(|x| {
                x.created_at_ms.div_euclid(HOUR_MS) == hour
                    && x.team.clone().unwrap_or_default() == team
            })
            .collect();
        let got = rows
            .iter()
            .find(|row| row.hour == hour && row.group == team)
            .unwrap();
        assert_eq!(got.requests, want.len() as i64);
        assert_eq!(
            got.cost_nanos,
            want.iter().map(|x| x.cost_nanos).sum::<i64>()
        );
    }
    let (n, p50, p95) = queries::latency_percentiles(store, this_hour - 23)
        .await
        .unwrap();
    assert_eq!(n, 60);
    // Latencies 0, 10, … 590 ms: ranks 30 and 57, in buckets of 10 ms from 100 ms on.
    assert_eq!(p50, Some(latency_bucket(290)));
    assert_eq!(p95, Some(latency_bucket(560)));
    // Records kept for four hours and a half: the oldest hour's rows (six hours ago) go with
    // its records.
    let policy = Retention {
        records: Some(std::time::Duration::from_secs(16_200)),
        rollups: None,
    };
    let (deleted, _) = store.apply_retention(policy, now_ms()).await.unwrap();
    assert_eq!(deleted, 20);
    let (n, _, _) = queries::latency_percentiles(store, this_hour - 23)
        .await
        .unwrap();
    assert_eq!(n, 40);
    let rows = queries::hourly(store, By::Model, this_hour - 23)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.requests).sum::<i64>(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_upgrade_indexes_and_hours() {
    let dir = scratch("sqlite");
    let url = format!("sqlite://{}", dir.join("old.db").display());
    an_existing_store_is_upgraded(&url, Backend::Sqlite).await;
    let url = format!("sqlite://{}", dir.join("new.db").display());
    let store = Store::open(&url).await.unwrap();
    hours_follow_the_records(&store).await;
    let more: Vec<Arc<UsageRecord>> = (100..400).map(|i| Arc::new(record(i, 1000))).collect();
    store.insert(&more).await.unwrap();
    each_filter_has_its_index(&store, &url).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_indexes_narrowed() {
    let dir = scratch("narrowed");
    let url = format!("sqlite://{}", dir.join("six.db").display());
    indexes_narrowed_and_pages_unchanged(&url, Backend::Sqlite).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_indexes_narrowed() {
    let pg = Postgres::start().await;
    indexes_narrowed_and_pages_unchanged(&pg.dsn(), Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_upgrade_and_hours() {
    let pg = Postgres::start().await;
    let dsn = |db: &str| pg.dsn().replace("/switchboard", &format!("/{db}"));
    pg.psql("CREATE DATABASE upgraded").await;
    an_existing_store_is_upgraded(&dsn("upgraded"), Backend::Postgres).await;
    pg.psql("CREATE DATABASE hours").await;
    let store = Store::open(&dsn("hours")).await.unwrap();
    store.ready().await.unwrap();
    hours_follow_the_records(&store).await;
}
