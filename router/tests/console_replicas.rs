//! Every replica shows the same totals (issue 18): two routers share one usage store (one SQLite
//! file here, as replicas in a cluster share one Postgres), one Redis ledger (a real
//! `redis-server`, which `make test` provides) and one admin token. With traffic through both, the
//! overview's headline numbers and a budget's spend are the same on both replicas' pages and
//! agree with the usage API, and a session signed in on one replica opens the other's console.

mod support;

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use support::{TestRouter, hi, manifests, scratch_dir, temp_manifest, usage_options};
use switchboard_e2e::redis::RedisServer;
use switchboard_ledger::redis::RedisLedger;
use switchboard_router::{
    admin::auth::AdminAuth,
    console::session,
    load_manifests,
    state::{AppState, Settings},
    usage::UsageTasks,
};

const TOKEN: &str = "sb-admin-console-replicas-3Kf8Wd1Qz6";

/// The shared test manifests plus a budget over the client key.
fn replica_manifests() -> String {
    format!(
        r#"{}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: main-monthly}}
spec: {{limitUSD: "5", window: monthly, scope: {{apiKeys: [main]}}}}
"#,
        manifests(&[])
    )
}

/// One replica: the manifests, the shared Redis ledger and the shared usage store, its own spill
/// file (as each pod has its own disk).
async fn replica(
    manifest: &std::path::Path,
    redis_url: &str,
    store_url: &str,
    dir: &std::path::Path,
    name: &str,
) -> (TestRouter, Arc<AppState>, UsageTasks) {
    let settings = Settings {
        admin: AdminAuth::new(Some(TOKEN), false, false),
        ..Settings::default()
    };
    let state = AppState::with_ledger(settings, Arc::new(RedisLedger::new(redis_url).unwrap()));
    load_manifests(&state, &[manifest.to_path_buf()], "default", 1).unwrap();
    let options = usage_options(store_url, dir.join(format!("{name}-spill.jsonl")));
    let tasks = switchboard_router::usage::start(&state.metrics, &state.usage, options)
        .await
        .unwrap();
    (TestRouter::serve(state.clone()).await, state, tasks)
}

/// Every `data-stat` on a page with its exact value (`data-exact`, else the text).
fn stats(html: &str) -> Vec<(String, String)> {
    html.split("data-stat=\"")
        .skip(1)
        .map(|rest| {
            let (key, rest) = rest.split_once('"').unwrap();
            let tag_end = rest.find('>').unwrap();
            let value = match rest[..tag_end].split_once("data-exact=\"") {
                Some((_, exact)) => exact.split_once('"').unwrap().0.to_string(),
                None => rest[tag_end + 1..].split_once('<').unwrap().0.to_string(),
            };
            (key.to_string(), value)
        })
        .collect()
}

fn stat<'a>(stats: &'a [(String, String)], key: &str) -> &'a str {
    &stats
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {stats:?}"))
        .1
}

async fn page(router: &TestRouter, path: &str, cookie: &str) -> String {
    let resp = reqwest::Client::new()
        .get(router.admin(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_store_and_ledger_show_the_same_totals() {
    let redis = RedisServer::start().await;
    let dir = scratch_dir("console-replicas");
    let store = format!("sqlite://{}", dir.join("usage.db").display());
    let manifest = temp_manifest(&replica_manifests());
    let (a, state_a, usage_a) = replica(&manifest, &redis.url(), &store, &dir, "a").await;
    let (b, state_b, usage_b) = replica(&manifest, &redis.url(), &store, &dir, "b").await;

    // Traffic through both replicas, and one failure (a provider at a closed port).
    let mut sent: u64 = 0;
    for (router, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            let resp = router
                .chat(serde_json::json!({"model": "test/mock", "messages": hi()}))
                .await;
            assert_eq!(resp.status(), 200);
            let _ = resp.text().await;
            sent += 1;
        }
    }
    let resp = b
        .chat(serde_json::json!({"model": "test/anthropic", "messages": hi()}))
        .await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let _ = resp.text().await;
    sent += 1;
    state_a.records_written(Duration::from_secs(2)).await;
    state_b.records_written(Duration::from_secs(2)).await;

    // A session signed on replica A (as its login form would), used on both.
    let expires = jiff::Timestamp::now().as_second() + 600;
    let value = state_a.settings.admin.session_key().unwrap().issue(expires);
    let cookie = format!("{}={value}", session::COOKIE);

    // Both writers' batches reach the one store.
    let http = reqwest::Client::new();
    let mut report = Value::Null;
    for _ in 0..100 {
        report = http
            .get(b.admin("/admin/v1/usage"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if report["total"]["requests"] == sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["total"]["requests"], sent, "{report}");
    assert_eq!(report["total"]["failed"], 1, "{report}");

    let overview_a = stats(&page(&a, "/console/", &cookie).await);
    let overview_b = stats(&page(&b, "/console/", &cookie).await);
    assert_eq!(overview_a, overview_b);
    assert_eq!(
        stat(&overview_a, "requests-today"),
        report["total"]["requests"].to_string()
    );
    assert_eq!(
        stat(&overview_a, "spend-today"),
        report["total"]["cost_usd"].as_str().unwrap()
    );
    assert_eq!(
        stat(&overview_a, "error-rate-today"),
        report["total"]["failed"].to_string()
    );

    // The budget's spend is the shared ledger's: the same on both, and not nothing.
    let budgets_a = stats(&page(&a, "/console/budgets", &cookie).await);
    let budgets_b = stats(&page(&b, "/console/budgets", &cookie).await);
    for key in ["spent", "limit"] {
        assert_eq!(stat(&budgets_a, key), stat(&budgets_b, key), "{key}");
    }
    let spent: f64 = stat(&budgets_a, "spent").parse().unwrap();
    assert!(spent > 0.0, "{budgets_a:?}");

    usage_a.shutdown().await;
    usage_b.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
