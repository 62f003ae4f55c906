//! The shared Redis ledger with real router processes and a real `redis-server` (`make test`
//! provides it), in both `--ledger-mode`s (`lease`, the default, and `per-request`): three
//! replicas never overspend one budget under 8× oversubscription and the ledger equals the sum
//! of what clients were told; a router killed mid-stream leaks its reservation (its slice) only
//! until it lapses; a Redis outage follows each budget's `failureMode` and the router recovers
//! (and records deferred spend) when Redis returns.

mod support;

use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{RouterProcess, get_as, http, key_info, post_chat};
use switchboard_e2e::redis::RedisServer;

const KEY: &str = "sk-sb-redis-test-0123456789";
const OPEN_KEY: &str = "sk-sb-redis-open-0123456789";

/// The mock provider priced so that the worst case equals the actual cost: input is free, output
/// $1/M, and with `max_tokens: 2` the mock answers exactly 2 tokens ("echo: hi" is 8 characters),
/// so every request reserves and costs exactly $0.000002. `budget` limits key `main`; key `open`
/// has a budget with `failureMode: open`.
fn manifest(limit: &str, mock: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {{main: {KEY}, open: {OPEN_KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: mock
  mock: {mock}
  timeouts: {{total: 2s}}
  models: [{{name: m, pricing: {{inputUSDPerMillion: "0", outputUSDPerMillion: "1"}}, maxOutputTokens: 1000}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: r}}
spec: {{model: test/r, targets: [{{provider: mock, model: m}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: main}}
spec: {{secretRef: {{name: keys, key: main}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: open}}
spec: {{secretRef: {{name: keys, key: open}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: shared}}
spec: {{limitUSD: "{limit}", window: daily, scope: {{apiKeys: [main]}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: lenient}}
spec: {{limitUSD: "100", window: daily, failureMode: open, scope: {{apiKeys: [open]}}}}
"#
    )
}

fn request(stream: bool, max_tokens: u32) -> Value {
    json!({"model": "test/r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens, "stream": stream})
}

async fn post(
    client: &reqwest::Client,
    router: &RouterProcess,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    post_chat(client, &router.api, key, body).await
}

async fn budget_state(router: &RouterProcess, key: &str) -> Value {
    key_info(&http(), &router.api, key).await["budgets"][0].clone()
}

/// The router's environment for a ledger on `redis` in `mode`.
fn ledger_env(redis: &RedisServer, mode: &str) -> [(&'static str, String); 2] {
    [
        ("SWITCHBOARD_REDIS_URL", redis.url()),
        ("SWITCHBOARD_LEDGER_MODE", mode.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_never_overspend_and_the_ledger_equals_what_clients_were_told() {
    three_replicas_share_one_budget("lease").await;
    three_replicas_share_one_budget("per-request").await;
}

async fn three_replicas_share_one_budget(mode: &str) {
    let redis = RedisServer::start().await;
    // $0.0001 affords exactly N = 50 requests of $0.000002.
    let manifest = manifest("0.0001", "{}");
    let env = ledger_env(&redis, mode);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let routers = [
        RouterProcess::spawn_with_env(&manifest, &env).await,
        RouterProcess::spawn_with_env(&manifest, &env).await,
        RouterProcess::spawn_with_env(&manifest, &env).await,
    ];
    let n = 50;
    // 8 × N requests at once, spread over the replicas, each from its own connection pool.
    let mut tasks = Vec::new();
    for i in 0..8 * n {
        let url = format!("{}/v1/chat/completions", routers[i % 3].api);
        tasks.push(tokio::spawn(async move {
            let client = http();
            let resp = client
                .post(url)
                .bearer_auth(KEY)
                .json(&request(i % 4 == 0, 2))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            let cost = (status == 200).then(|| {
                let text = body.split(r#""cost":"#).nth(1).unwrap();
                text.split(['}', ','])
                    .next()
                    .unwrap()
                    .parse::<Decimal>()
                    .unwrap()
            });
            (status, cost)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    let mut reported = Decimal::ZERO;
    for t in tasks {
        let (status, cost) = t.await.unwrap();
        match status {
            200 => {
                ok += 1;
                reported += cost.unwrap();
            }
            402 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok + refused, 8 * n);
    assert!(
        ok <= n,
        "{mode}: {ok} admitted, more than the {n} the budget affords"
    );
    if mode == "per-request" {
        assert_eq!(ok, n, "worst case equals actual cost, so exactly N fit");
    } else {
        // A lease replica refused near the limit asks once more 250 ms later; if another
        // replica's unused slice has not come back by then the refusal stands (docs/budgets.md,
        // "Leases"). Those slices are at most an eighth of the remainder each, so most fit.
        assert!(ok >= n * 3 / 4, "{mode}: only {ok} of {n} admitted");
    }
    // Settlement happens in the background right after each response: wait for the ledger.
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let state = budget_state(&routers[0], KEY).await;
        if state["reserved_usd"] == "0" || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let spent: Decimal = state["spent_usd"].as_str().unwrap().parse().unwrap();
    assert_eq!(state["reserved_usd"], "0", "{state}");
    assert!(
        spent <= Decimal::new(1, 4),
        "spent {spent} over the $0.0001 limit"
    );
    assert_eq!(
        spent, reported,
        "the ledger equals the sum of usage.cost, to the nano-dollar"
    );
    println!(
        "three replicas ({mode}): {ok} admitted, {refused} refused with 402, spent ${spent} of $0.0001"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_router_killed_mid_stream_leaks_its_reservation_only_until_it_lapses() {
    // A reservation lapses 2 s + 5 s after it was made; a slice 1 s (the lease slack) later.
    killed_mid_stream("per-request", Duration::from_secs(7)).await;
    killed_mid_stream("lease", Duration::from_secs(8)).await;
}

async fn killed_mid_stream(mode: &str, bound: Duration) {
    let redis = RedisServer::start().await;
    // Room for exactly one worst case (max_tokens 20 → $0.00002); the provider's total timeout is
    // 2 s, so a reservation lapses 2 s + 5 s after it was made.
    let manifest = manifest(
        "0.00002",
        "{reply: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", chunkChars: 1, chunkDelay: 200ms}",
    );
    let env = ledger_env(&redis, mode);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut doomed = RouterProcess::spawn_with_env(&manifest, &env).await;
    let survivor = RouterProcess::spawn_with_env(&manifest, &env).await;
    let client = http();
    let resp = post(&client, &doomed, KEY, &request(true, 20)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    use futures_util::StreamExt;
    body.next().await.unwrap().unwrap();
    // The stream holds the budget: the other replica refuses.
    assert_eq!(
        post(&client, &survivor, KEY, &request(false, 20))
            .await
            .status(),
        402
    );
    let killed = Instant::now();
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    drop(body);
    loop {
        let status = post(&client, &survivor, KEY, &request(false, 20))
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 402);
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the reservation never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let waited = killed.elapsed();
    println!("{mode}: the killed router's hold lapsed after {waited:?}");
    assert!(
        waited <= bound + Duration::from_secs(1),
        "{mode}: lapsed after {waited:?}, bound is {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_follows_failure_mode_and_the_router_recovers() {
    outage("per-request").await;
    outage("lease").await;
}

async fn outage(mode: &str) {
    let mut redis = RedisServer::start().await;
    let manifest = manifest("1", "{}");
    let env = ledger_env(&redis, mode);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let router = RouterProcess::spawn_with_env(&manifest, &env).await;
    let client = http();
    assert_eq!(
        post(&client, &router, KEY, &request(false, 2))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&client, &router, OPEN_KEY, &request(false, 2))
            .await
            .status(),
        200
    );
    // Let both settlements land before the outage (they are recorded in the background).
    let deadline = Instant::now() + Duration::from_secs(5);
    while budget_state(&router, OPEN_KEY).await["spent_usd"] != "0.000002" {
        assert!(
            Instant::now() < deadline,
            "settlement before the outage never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    redis.stop().await;
    if mode == "lease" {
        // What a replica's slice covers stays admitted for up to the lease slack (1 s): the
        // slice cannot lapse in Redis before the reservations it covers end.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // failureMode closed (default): refused with 503, promptly.
    let started = Instant::now();
    let resp = post(&client, &router, KEY, &request(false, 2)).await;
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["metadata"]["error_code"], "ledger_unavailable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("default/shared")
    );
    // failureMode open: admitted; its spend is kept and recorded when Redis is back.
    for _ in 0..3 {
        assert_eq!(
            post(&client, &router, OPEN_KEY, &request(false, 2))
                .await
                .status(),
            200
        );
    }
    let metrics = router.metrics().await;
    assert!(
        metrics.contains("switchboard_ledger_errors_total{op=\"reserve\"}"),
        "{metrics}"
    );

    redis.restart().await;
    // Back: both keys are admitted again, and the open key's deferred spend is recorded (Redis
    // came back empty, so its counter holds exactly the 3 requests made during the outage plus
    // the ones after).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if post(&client, &router, KEY, &request(false, 2))
            .await
            .status()
            == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "the router never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = budget_state(&router, OPEN_KEY).await;
        if state["spent_usd"] == "0.000006" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deferred spend never recorded: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generation_records_are_shared_across_replicas() {
    let redis = RedisServer::start().await;
    let manifest = manifest("1", "{}");
    let env = [("SWITCHBOARD_REDIS_URL", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = RouterProcess::spawn_with_env(&manifest, &env).await;
    let b = RouterProcess::spawn_with_env(&manifest, &env).await;
    let client = http();
    let resp = post(&client, &a, KEY, &request(false, 2)).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let lookup = |router: &RouterProcess, key: &'static str| {
        get_as(
            &client,
            format!("{}/api/v1/generation?id={id}", router.api),
            key,
        )
    };
    // Written in the background when the request ends: poll briefly on the other replica.
    let deadline = Instant::now() + Duration::from_secs(5);
    let data = loop {
        let resp = lookup(&b, KEY).await;
        if resp.status() == 200 {
            break resp.json::<Value>().await.unwrap()["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "replica b never saw the generation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["provider_name"], "mock");
    assert_eq!(data["total_cost"], "0.000002");
    assert_eq!(data["attempts"][0]["ok"], true);
    assert_eq!(
        lookup(&b, OPEN_KEY).await.status(),
        404,
        "another key cannot read it"
    );
}
