//! The usage store against real databases: every query runs on SQLite and on a Postgres server
//! started for the test (the e2e crate's harness). Inserts are idempotent and count into the
//! rollups once; reports, activity and generation pages read back exactly what was written;
//! retention deletes old records and rollups in batches; two writers at once on one database
//! keep exact totals.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use switchboard_e2e::postgres::Postgres;
use switchboard_router::{
    error::AttemptReport,
    pricing::Usage,
    usage::{
        query::{ActivityQuery, GenerationsQuery, ReportQuery},
        record::{DAY_MS, UsageRecord},
        retention::{RECORDS_PER_BATCH, Retention},
        store::Store,
    },
};

const DAY0: i64 = 20_000; // 2024-10-04

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-usage-store-{}-{name}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh SQLite store in a scratch directory.
async fn sqlite(name: &str) -> (Arc<Store>, PathBuf) {
    let dir = scratch(name);
    let store = Store::open(&format!("sqlite://{}", dir.join("usage.db").display()))
        .await
        .unwrap();
    (store, dir)
}

/// A fresh database `name` on `pg`, migrated.
async fn postgres(pg: &Postgres, name: &str) -> Arc<Store> {
    pg.psql(&format!("CREATE DATABASE {name}")).await;
    let dsn = pg.dsn().replace("/switchboard", &format!("/{name}"));
    let store = Store::open(&dsn).await.unwrap();
    store.ready().await.unwrap();
    store
}

/// Record `i`: three keys (two teams, one without), two models, tags on some, users on some,
/// every fifth one failed, spread over two days.
fn record(i: usize, created_at_ms: i64) -> UsageRecord {
    let failed = i.is_multiple_of(5);
    UsageRecord {
        id: format!("gen-{i:06}"),
        created_at_ms,
        endpoint: if i.is_multiple_of(4) {
            "messages"
        } else {
            "chat"
        }
        .into(),
        key_id: format!("default/key-{}", i % 3),
        team: (i % 3 != 2).then(|| format!("team-{}", i % 2)),
        user: i.is_multiple_of(2).then(|| format!("user-{}", i % 4)),
        tags: match i % 3 {
            0 => vec![],
            1 => vec!["prod".into()],
            _ => vec!["prod".into(), "batch".into()],
        },
        app: i.is_multiple_of(7).then(|| "Support, \"Bot\"".into()),
        caller_issuer: i
            .is_multiple_of(6)
            .then(|| "https://kubernetes.default.svc".into()),
        caller_subject: i
            .is_multiple_of(6)
            .then(|| format!("system:serviceaccount:ml:sa-{}", i % 4)),
        model: "smart".into(),
        served_model: (!failed).then(|| format!("vendor/model-{}", i % 2)),
        provider: (!failed).then(|| "vendor".into()),
        upstream_model: (!failed).then(|| "model-2025".into()),
        attempts: vec![AttemptReport {
            provider: "vendor".into(),
            model: "model-2025".into(),
            ok: !failed,
            error_type: failed.then(|| "status_500".into()),
            status: Some(if failed { 500 } else { 200 }),
            latency_ms: 10 + i as u64,
        }],
        tokens: Usage {
            prompt_tokens: 100 + i as u64,
            completion_tokens: 10 + (i % 13) as u64,
            cached_tokens: (i % 3) as u64,
            cache_write_tokens: (i % 2) as u64,
            reasoning_tokens: (i % 5) as u64,
        },
        cost_nanos: if failed { 0 } else { 1_000 + 37 * i as i64 },
        status: if failed { 502 } else { 200 },
        error_code: failed.then(|| "upstream_failed".into()),
        finish_reason: (!failed).then(|| "stop".into()),
        usage_anomaly: (i % 11 == 3).then(|| "completion_tokens missing".into()),
        input: (i % 13 == 4).then(|| r#"[{"role":"user","content":"hi"}]"#.into()),
        output: (i % 13 == 4).then(|| "hello".into()),
        streamed: i % 2 == 1,
        latency_ms: 100 + i as u64,
        ttft_ms: (i % 2 == 1).then_some(20),
        // Answered from the response cache: the store keeps how and what it saved.
        cache_hit: (i % 17 == 5 && !failed).then(|| "semantic".into()),
        cache_saved_nanos: if i % 17 == 5 && !failed { 4_321 } else { 0 },
    }
}

fn records(range: std::ops::Range<usize>) -> Vec<Arc<UsageRecord>> {
    range
        .map(|i| {
            Arc::new(record(
                i,
                (DAY0 + (i % 2) as i64) * DAY_MS + i as i64 * 1000,
            ))
        })
        .collect()
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn report_query(pairs: &[(&str, &str)]) -> ReportQuery {
    let mut p = params(&[("from", "2024-10-01"), ("to", "2024-10-10")]);
    p.extend(params(pairs));
    ReportQuery::parse(&p, DAY0).unwrap()
}

async fn inserts_are_idempotent_and_rollups_count_each_record_once(store: Arc<Store>) {
    let first = records(0..300);
    assert_eq!(store.insert(&first).await.unwrap(), 300);
    assert_eq!(
        store.insert(&first).await.unwrap(),
        0,
        "a retried batch inserts nothing"
    );
    let mut overlap = records(250..350);
    overlap.push(overlap[0].clone()); // the same record twice in one batch
    assert_eq!(store.insert(&overlap).await.unwrap(), 50);
    let all = records(0..350);

    // Totals by day equal the records'.
    let by_day = store
        .report(&report_query(&[("group_by", "day")]))
        .await
        .unwrap();
    assert_eq!(by_day.rows.len(), 2);
    let mut want: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for r in &all {
        let e = want.entry(r.day().to_string()).or_default();
        e.0 += 1;
        e.1 += r.cost_nanos;
        e.2 += r.tokens.prompt_tokens as i64;
        e.3 += i64::from(r.status >= 400);
    }
    for row in &by_day.rows {
        let t = row.totals;
        assert_eq!(
            want[&row.groups[0]],
            (t.requests, t.cost_nanos, t.prompt_tokens, t.failed)
        );
    }

    // Grouped by tag: a request counts under each of its tags, an untagged one under "".
    let by_tag = store
        .report(&report_query(&[("group_by", "tag")]))
        .await
        .unwrap();
    let tags: BTreeMap<&str, i64> = by_tag
        .rows
        .iter()
        .map(|r| (r.groups[0].as_str(), r.totals.requests))
        .collect();
    let count = |f: &dyn Fn(&UsageRecord) -> bool| all.iter().filter(|r| f(r)).count() as i64;
    assert_eq!(tags[""], count(&|r| r.tags.is_empty()));
    assert_eq!(tags["prod"], count(&|r| r.tags.iter().any(|t| t == "prod")));
    assert_eq!(
        tags["batch"],
        count(&|r| r.tags.iter().any(|t| t == "batch"))
    );

    // Filters, users, keys, teams without one.
    let one_key = store
        .report(&report_query(&[
            ("group_by", "user"),
            ("key", "default/key-1"),
        ]))
        .await
        .unwrap();
    let users: i64 = one_key.rows.iter().map(|r| r.totals.requests).sum();
    assert_eq!(users, count(&|r| r.key_id == "default/key-1"));
    let no_team = store
        .report(&report_query(&[("team", ""), ("group_by", "team,app")]))
        .await
        .unwrap();
    assert!(no_team.rows.iter().all(|r| r.groups[0].is_empty()));
    assert_eq!(
        no_team.rows.iter().map(|r| r.totals.requests).sum::<i64>(),
        count(&|r| r.team.is_none())
    );
    let total = store.report(&report_query(&[])).await.unwrap();
    assert_eq!(total.rows.len(), 1);
    assert_eq!(total.rows[0].totals.requests, 350);
    assert_eq!(
        total.rows[0].totals.cost_nanos,
        all.iter().map(|r| r.cost_nanos).sum::<i64>()
    );
    let none = store
        .report(&report_query(&[("model", "no/such-model")]))
        .await
        .unwrap();
    assert!(none.rows.is_empty(), "{:?}", none.rows);
    let limited = store
        .report(&report_query(&[("group_by", "key,model"), ("limit", "2")]))
        .await
        .unwrap();
    assert_eq!(limited.rows.len(), 2);
    assert!(limited.truncated);
    assert!(limited.rows[0].totals.cost_nanos >= limited.rows[1].totals.cost_nanos);

    // Activity: per day, model and provider, for one key.
    let activity = store
        .activity(&ActivityQuery {
            from: DAY0 - 5,
            to: DAY0 + 5,
            key_id: Some("default/key-0".into()),
        })
        .await
        .unwrap();
    assert_eq!(activity[0].day, DAY0 + 1, "newest day first");
    let mine: Vec<&Arc<UsageRecord>> = all.iter().filter(|r| r.key_id == "default/key-0").collect();
    assert_eq!(
        activity.iter().map(|a| a.totals.requests).sum::<i64>(),
        mine.len() as i64
    );
    assert_eq!(
        activity.iter().map(|a| a.totals.cost_nanos).sum::<i64>(),
        mine.iter().map(|r| r.cost_nanos).sum::<i64>()
    );
    assert!(
        activity
            .iter()
            .any(|a| a.model == "smart" && a.provider.is_empty())
    );

    // A record reads back exactly as written.
    for r in [&all[0], &all[7], &all[349]] {
        assert_eq!(store.generation(&r.id).await.unwrap().as_ref(), Some(&**r));
    }
    assert_eq!(store.generation("gen-none").await.unwrap(), None);
}

async fn generations_page_newest_first_by_keyset(store: Arc<Store>) {
    // Pairs of records share a creation time: the id breaks the tie.
    let all: Vec<Arc<UsageRecord>> = (0..120)
        .map(|i| Arc::new(record(i, DAY0 * DAY_MS + (i / 2) as i64)))
        .collect();
    store.insert(&all).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut p = params(&[("limit", "50")]);
        if let Some(c) = &cursor {
            p.push(("cursor".into(), c.clone()));
        }
        let page = store
            .generations(&GenerationsQuery::parse(&p).unwrap())
            .await
            .unwrap();
        seen.extend(page.records.iter().map(|r| r.id.clone()));
        match page.next {
            Some(c) => cursor = Some(c.render()),
            None => break,
        }
    }
    let mut want: Vec<&Arc<UsageRecord>> = all.iter().collect();
    want.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    assert_eq!(seen, want.iter().map(|r| r.id.clone()).collect::<Vec<_>>());

    let page = |pairs: &[(&str, &str)]| {
        let store = store.clone();
        let q = GenerationsQuery::parse(&params(pairs)).unwrap();
        async move { store.generations(&q).await.unwrap().records }
    };
    let failed = page(&[("status", "502"), ("limit", "500")]).await;
    assert_eq!(failed.len(), all.iter().filter(|r| r.status == 502).count());
    let batch = page(&[("tag", "batch"), ("key", "default/key-2"), ("limit", "500")]).await;
    assert!(!batch.is_empty());
    assert!(
        batch
            .iter()
            .all(|r| r.tags.contains(&"batch".to_string()) && r.key_id == "default/key-2")
    );
    let teamless = page(&[("team", ""), ("limit", "500")]).await;
    assert_eq!(
        teamless.len(),
        all.iter().filter(|r| r.team.is_none()).count()
    );
    let model = page(&[("model", "vendor/model-1"), ("limit", "500")]).await;
    assert!(model.iter().all(|r| r.billed_model() == "vendor/model-1"));
    let window = page(&[
        (
            "from",
            &jiff::Timestamp::from_millisecond(DAY0 * DAY_MS + 10)
                .unwrap()
                .to_string(),
        ),
        (
            "to",
            &jiff::Timestamp::from_millisecond(DAY0 * DAY_MS + 20)
                .unwrap()
                .to_string(),
        ),
        ("limit", "500"),
    ])
    .await;
    assert_eq!(window.len(), 20);
}

async fn retention_deletes_old_records_in_batches_and_old_rollups_by_day(store: Arc<Store>) {
    let now = (DAY0 + 100) * DAY_MS;
    let old = RECORDS_PER_BATCH as usize * 2 + 10;
    let mut batch: Vec<Arc<UsageRecord>> = (0..old)
        .map(|i| Arc::new(record(i, (DAY0 + 50) * DAY_MS + i as i64)))
        .collect();
    // Recent ones, and some from long ago (their rollups go too).
    batch.extend((old..old + 30).map(|i| Arc::new(record(i, now - 1000 - i as i64))));
    batch.extend((old + 30..old + 40).map(|i| Arc::new(record(i, DAY0 * DAY_MS))));
    for chunk in batch.chunks(500) {
        store.insert(chunk).await.unwrap();
    }
    let policy = Retention {
        records: Some(std::time::Duration::from_secs(86_400 * 10)),
        rollups: Some(std::time::Duration::from_secs(86_400 * 60)),
    };
    let (records, rollups) = store.apply_retention(policy, now).await.unwrap();
    assert_eq!(records, old as u64 + 10);
    assert!(rollups > 0);
    let left = store
        .generations(&GenerationsQuery::parse(&params(&[("limit", "500")])).unwrap())
        .await
        .unwrap();
    assert_eq!(left.records.len(), 30);
    // Rollups of day DAY0+50 remain (within 60 days), those of DAY0 are gone.
    let q = |from: &str, to: &str| {
        ReportQuery::parse(
            &params(&[("from", from), ("to", to), ("group_by", "day")]),
            DAY0,
        )
        .unwrap()
    };
    let kept = store.report(&q("2024-11-20", "2024-11-25")).await.unwrap();
    assert_eq!(kept.rows[0].totals.requests, old as i64);
    let gone = store.report(&q("2024-10-01", "2024-10-10")).await.unwrap();
    assert!(gone.rows.is_empty());
    assert_eq!(store.apply_retention(policy, now).await.unwrap(), (0, 0));
}

async fn two_writers_at_once_keep_exact_totals(a: Arc<Store>, b: Arc<Store>) {
    // Same rollup keys from both sides, interleaved in many small transactions.
    let all = records(0..400);
    let (left, right): (Vec<_>, Vec<_>) = all
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i.is_multiple_of(2));
    let left: Vec<_> = left.into_iter().map(|(_, r)| r).collect();
    let right: Vec<_> = right.into_iter().map(|(_, r)| r).collect();
    let write = |store: Arc<Store>, recs: Vec<Arc<UsageRecord>>| {
        tokio::spawn(async move {
            for chunk in recs.chunks(7) {
                store.insert(chunk).await.unwrap();
            }
        })
    };
    let (x, y) = (write(a.clone(), left), write(b.clone(), right));
    x.await.unwrap();
    y.await.unwrap();
    for store in [a, b] {
        let total = store.report(&report_query(&[])).await.unwrap();
        assert_eq!(total.rows[0].totals.requests, 400);
        assert_eq!(
            total.rows[0].totals.cost_nanos,
            all.iter().map(|r| r.cost_nanos).sum::<i64>()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_store() {
    let mut dirs = Vec::new();
    let (s, d) = sqlite("idempotent").await;
    dirs.push(d);
    inserts_are_idempotent_and_rollups_count_each_record_once(s).await;
    let (s, d) = sqlite("pages").await;
    dirs.push(d);
    generations_page_newest_first_by_keyset(s).await;
    let (s, d) = sqlite("retention").await;
    dirs.push(d);
    retention_deletes_old_records_in_batches_and_old_rollups_by_day(s).await;
    let (a, d) = sqlite("two").await;
    let b = Store::open(&format!("sqlite://{}", d.join("usage.db").display()))
        .await
        .unwrap();
    dirs.push(d);
    two_writers_at_once_keep_exact_totals(a, b).await;
    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store() {
    let pg = Postgres::start().await;
    inserts_are_idempotent_and_rollups_count_each_record_once(postgres(&pg, "idempotent").await)
        .await;
    generations_page_newest_first_by_keyset(postgres(&pg, "pages").await).await;
    retention_deletes_old_records_in_batches_and_old_rollups_by_day(
        postgres(&pg, "retention").await,
    )
    .await;
    let a = postgres(&pg, "two").await;
    let b = Store::open(&pg.dsn().replace("/switchboard", "/two"))
        .await
        .unwrap();
    two_writers_at_once_keep_exact_totals(a, b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_that_is_down_fails_writes_without_failing_the_open() {
    let mut pg = Postgres::start().await;
    let dsn = pg.dsn();
    pg.stop().await;
    let store = Store::open(&dsn).await.expect("opening does not connect");
    assert!(store.insert(&records(0..3)).await.is_err());
    pg.start_again().await;
    assert_eq!(store.insert(&records(0..3)).await.unwrap(), 3);
}
