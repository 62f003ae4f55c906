//! The operator's full loop against a mock Kubernetes API server over HTTP (`kube_api`): objects
//! applied through a real kube client, the operator (its library, as `main` runs it) watching
//! them, status and Events written back, a generated client key, the snapshot Secret, and a router
//! (its library on real sockets, as `main` runs it with `--operator-url`) serving requests routed
//! by the pushed snapshot. Then: a ModelRoute change timed until the router routes by it; the
//! operator stopped (the router keeps serving, a new router starts from the snapshot Secret);
//! the operator restarted (the router catches up on a newer version).
//!
//! Spend back to status: a real `redis-server` shared by a router (its Redis ledger) and the
//! operator (`--redis-url`); requests spend a Budget to its limit and the Budget and ApiKey status
//! show exactly what the client was charged, `SoftLimitReached` and `Exceeded` True with Events;
//! then Redis goes away and reconciles go on, leaving the spend status as it was.

use std::{
    path::PathBuf,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use switchboard_api::{
    resources::{ApiKey, Budget, BudgetWindow, ModelRoute, Provider},
    windows::window_bounds,
};
use switchboard_e2e::{eventually, kube_api::MockKubeApi, redis::RedisServer, stored};
use switchboard_ledger::redis::RedisLedger;
use switchboard_operator::{Config, Running, controller, leader::LeaseSettings};
use switchboard_router::{
    config::operator::{self as config_source, OperatorSource},
    server::{self, RunningServer},
    state::{AppState, Settings},
};
use tokio::sync::watch;

const NS: &str = "team-a";
const TOKEN: &str = "e2e-router-token-0123456789";
const PROVIDERS: &str = "apis/switchboard.dev/v1alpha1/providers";
const ROUTES: &str = "apis/switchboard.dev/v1alpha1/modelroutes";
const APIKEYS: &str = "apis/switchboard.dev/v1alpha1/apikeys";
const BUDGETS: &str = "apis/switchboard.dev/v1alpha1/budgets";
const SECRETS: &str = "api/v1/secrets";

fn kube_client(api: &MockKubeApi) -> Client {
    switchboard_router::providers::clients::install_crypto_provider();
    let config = kube::Config::new(api.url().parse().unwrap());
    Client::try_from(config).expect("client for the mock API server")
}

async fn start_operator(client: Client, identity: &str, listen: &str) -> Running {
    start_operator_with(client, identity, listen, None).await
}

/// An operator; with `redis_url`, reading spend from that ledger every 200 ms.
async fn start_operator_with(
    client: Client,
    identity: &str,
    listen: &str,
    redis_url: Option<String>,
) -> Running {
    let config = Config {
        controller: controller::Settings {
            namespace: None,
            snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
            identity: identity.into(),
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(60),
            spend_interval: Duration::from_millis(200),
            max_shards: 32,
            limits: switchboard_operator::outbox::Limits::default(),
        },
        lease: LeaseSettings {
            namespace: "switchboard-system".into(),
            name: "switchboard-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_millis(500),
        },
        listen: listen.parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        router_token: TOKEN.into(),
        keep_alive: Duration::from_secs(15),
        redis_url,
        issuers: Default::default(),
    };
    switchboard_operator::start(client, config)
        .await
        .expect("operator starts")
}

struct Router {
    state: Arc<AppState>,
    server: RunningServer,
    stop: watch::Sender<bool>,
}

impl Router {
    async fn start(operator_url: &str, snapshot_file: Option<PathBuf>) -> Router {
        Router::start_with(
            AppState::new(Settings::default()),
            operator_url,
            snapshot_file,
        )
        .await
    }

    /// A router on `state` (which holds its ledger).
    async fn start_with(
        state: Arc<AppState>,
        operator_url: &str,
        snapshot_file: Option<PathBuf>,
    ) -> Router {
        let (stop, stop_rx) = watch::channel(false);
        let mut source = OperatorSource::new(operator_url, TOKEN);
        source.max_backoff = Duration::from_secs(1);
        config_source::start(state.clone(), source, snapshot_file, stop_rx);
        let server = server::start(
            state.clone(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        Router {
            state,
            server,
            stop,
        }
    }

    fn version(&self) -> u64 {
        self.state.runtime().map_or(0, |r| r.config.version)
    }

    /// The reply text of a chat completion for `model`, or the HTTP status when it failed.
    async fn chat(&self, key: &str, model: &str) -> Result<String, u16> {
        let res = reqwest::Client::new()
            .post(format!(
                "http://{}/v1/chat/completions",
                self.server.api_addr
            ))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(status);
        }
        Ok(body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The `usage.cost` the client is told for a chat completion of at most `max_tokens`
    /// tokens (exact: read from the body text, not through a float), or the HTTP status.
    async fn chat_cost(&self, key: &str, model: &str, max_tokens: u32) -> Result<Decimal, u16> {
        let res = reqwest::Client::new()
            .post(format!(
                "http://{}/v1/chat/completions",
                self.server.api_addr
            ))
            .bearer_auth(key)
            .json(&json!({"model": model, "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        if status != 200 {
            return Err(status);
        }
        let after = body
            .split(r#""cost":"#)
            .nth(1)
            .unwrap_or_else(|| panic!("no usage.cost in {body}"));
        let cost = after.split(['}', ',']).next().unwrap();
        Ok(Decimal::from_str(cost).unwrap())
    }

    async fn readyz(&self) -> Value {
        reqwest::get(format!("http://{}/readyz", self.server.admin_addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.server.shutdown().await;
    }
}

fn ready_condition(obj: &Value) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

async fn apply(client: &Client, docs: &[Value]) {
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap();
        let pp = PostParams::default();
        match kind {
            "Provider" => drop(
                Api::<Provider>::namespaced(client.clone(), NS)
                    .create(&pp, &serde_json::from_value(doc.clone()).unwrap())
                    .await
                    .unwrap(),
            ),
            "ModelRoute" => drop(
                Api::<ModelRoute>::namespaced(client.clone(), NS)
                    .create(&pp, &serde_json::from_value(doc.clone()).unwrap())
                    .await
                    .unwrap(),
            ),
            "ApiKey" => drop(
                Api::<ApiKey>::namespaced(client.clone(), NS)
                    .create(&pp, &serde_json::from_value(doc.clone()).unwrap())
                    .await
                    .unwrap(),
            ),
            "Budget" => drop(
                Api::<Budget>::namespaced(client.clone(), NS)
                    .create(&pp, &serde_json::from_value(doc.clone()).unwrap())
                    .await
                    .unwrap(),
            ),
            "Secret" => drop(
                Api::<Secret>::namespaced(client.clone(), NS)
                    .create(&pp, &serde_json::from_value(doc.clone()).unwrap())
                    .await
                    .unwrap(),
            ),
            other => panic!("unexpected kind {other}"),
        }
    }
}

fn mock_provider(name: &str, reply: &str) -> Value {
    json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Provider",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"type": "mock", "mock": {"reply": reply}, "models": [{"name": "chat"}]}})
}

fn route(name: &str, model: &str, provider: &str) -> Value {
    json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ModelRoute",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"model": model, "targets": [{"provider": provider, "model": "chat"}]}})
}

async fn point_route(client: &Client, provider: &str) {
    let api: Api<ModelRoute> = Api::namespaced(client.clone(), NS);
    let patch = json!({"spec": {"targets": [{"provider": provider, "model": "chat"}]}});
    api.patch("smart", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_full_loop_against_a_mock_api_server() {
    let kube = MockKubeApi::start().await;
    let client = kube_client(&kube);

    apply(
        &client,
        &[
            mock_provider("alpha", "from alpha"),
            mock_provider("beta", "from beta"),
            // Invalid: an openai Provider whose Secret does not exist.
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Provider",
                   "metadata": {"name": "broken", "namespace": NS},
                   "spec": {"type": "openai", "credentials": {"secretRef": {"name": "openai", "key": "apiKey"}},
                            "models": [{"name": "gpt-4o-mini"}]}}),
            route("smart", "smart", "alpha"),
            // Invalid: every target names a Provider that does not exist.
            route("ghost", "ghost-model", "nobody"),
            // No secretRef: the operator generates the key.
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ApiKey",
                   "metadata": {"name": "app", "namespace": NS}, "spec": {}}),
        ],
    )
    .await;

    let operator = start_operator(client.clone(), "operator-0", "127.0.0.1:0").await;
    let operator_url = format!("http://{}", operator.push_addr);

    // --- Status written back, exactly saying what is wrong.
    let limit = Duration::from_secs(10);
    let broken = eventually(limit, "Provider broken status", || async {
        kube.get(PROVIDERS, NS, "broken")
            .and_then(|o| ready_condition(&o))
    })
    .await;
    assert_eq!(broken["status"], "False");
    assert_eq!(broken["reason"], "SecretNotFound");
    assert_eq!(
        broken["message"],
        "spec.credentials.secretRef: Secret team-a/openai not found"
    );
    let alpha = eventually(limit, "Provider alpha Ready", || async {
        kube.get(PROVIDERS, NS, "alpha")
            .filter(|o| ready_condition(o).is_some())
    })
    .await;
    assert_eq!(ready_condition(&alpha).unwrap()["status"], "True");
    assert_eq!(alpha["status"]["models"], 1);
    assert_eq!(alpha["status"]["observedGeneration"], 1);
    let ghost = eventually(limit, "ModelRoute ghost status", || async {
        kube.get(ROUTES, NS, "ghost")
            .and_then(|o| ready_condition(&o))
    })
    .await;
    assert_eq!(ghost["reason"], "UnknownProvider");

    // --- The generated key: a Secret owned by the ApiKey; the ApiKey Ready with its prefix.
    let key_secret = eventually(limit, "generated key Secret", || async {
        kube.get(SECRETS, NS, "switchboard-apikey-app")
    })
    .await;
    let app = kube.get(APIKEYS, NS, "app").unwrap();
    assert_eq!(
        key_secret["metadata"]["ownerReferences"][0]["uid"],
        app["metadata"]["uid"]
    );
    let key = decode(key_secret["data"]["key"].as_str().unwrap());
    assert!(key.starts_with("sk-sb-") && key.len() == 54);
    let app = eventually(limit, "ApiKey app Ready", || async {
        kube.get(APIKEYS, NS, "app")
            .filter(|o| ready_condition(o).is_some_and(|c| c["status"] == "True"))
    })
    .await;
    assert_eq!(app["status"]["prefix"], format!("{}…", &key[..10]));

    // --- Events on transitions.
    let events = eventually(limit, "Events", || async {
        let events = kube.list("apis/events.k8s.io/v1/events");
        (events.len() >= 3).then_some(events)
    })
    .await;
    assert!(events.iter().any(|e| e["type"] == "Warning"
        && e["reason"] == "SecretNotFound"
        && e["regarding"]["name"] == "broken"));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "Normal" && e["regarding"]["name"] == "alpha")
    );

    // --- The snapshot Secrets, and a router serving by the pushed snapshot.
    let stored = eventually(limit, "snapshot manifest Secret", || async {
        kube.get(SECRETS, "switchboard-system", "switchboard-config")
    })
    .await;
    let manifest = decode(stored["data"]["manifest.json"].as_str().unwrap());
    assert!(manifest.contains("\"shards\""), "{manifest}");
    assert!(stored["data"].get("snapshot.json").is_none());

    let router = Router::start(&operator_url, None).await;
    let first = eventually(limit, "router config from the operator", || async {
        (router.version() > 0).then(|| router.version())
    })
    .await;
    assert_eq!(router.chat(&key, "smart").await, Ok("from alpha".into()));
    assert_eq!(
        router.chat(&key, "ghost-model").await,
        Err(404),
        "rejected route is not served"
    );
    assert_eq!(
        router.chat("sk-sb-not-a-key-000000000", "smart").await,
        Err(401)
    );

    // --- A ModelRoute change, timed until the router routes by it.
    let changed = Instant::now();
    point_route(&client, "beta").await;
    eventually(
        Duration::from_secs(5),
        "router routing by the new ModelRoute",
        || async { (router.chat(&key, "smart").await == Ok("from beta".into())).then_some(()) },
    )
    .await;
    let propagation = changed.elapsed();
    println!("PROPAGATION: ModelRoute change to a router routing by it took {propagation:?}");
    assert!(propagation < Duration::from_secs(5), "took {propagation:?}");
    let second = router.version();
    assert!(second > first);
    assert_eq!(router.readyz().await["version"], second);
    let route = eventually(limit, "ModelRoute smart observedGeneration 2", || async {
        kube.get(ROUTES, NS, "smart")
            .filter(|o| o["status"]["observedGeneration"] == 2)
    })
    .await;
    assert_eq!(route["status"]["readyTargets"], 1);

    // --- The operator goes away: the router keeps serving the last good config.
    let snapshot_dir =
        std::env::temp_dir().join(format!("switchboard-e2e-snapshot-{}", std::process::id()));
    eventually(limit, "snapshot Secrets at the new version", || async {
        kube.get(SECRETS, "switchboard-system", "switchboard-config")
            .filter(|s| {
                s["metadata"]["annotations"]["switchboard.dev/snapshot-version"].as_str()
                    == Some(second.to_string().as_str())
            })
    })
    .await;
    // What the chart's projected volume shows a router: the manifest and the shards it names.
    let snapshot_file = stored::mount(&kube, &snapshot_dir);
    let push_addr = operator.push_addr;
    operator.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(router.chat(&key, "smart").await, Ok("from beta".into()));
    assert_eq!(router.readyz().await["status"], "ready");

    // A router starting now starts from the snapshot Secret (mounted as a file).
    let late = Router::start(&operator_url, Some(snapshot_file.clone())).await;
    assert_eq!(late.version(), second);
    assert_eq!(late.chat(&key, "smart").await, Ok("from beta".into()));

    // Changes made while the operator is down...
    point_route(&client, "alpha").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(router.chat(&key, "smart").await, Ok("from beta".into()));

    // ...reach the routers once it is back, under a newer version (numbering continues from the
    // snapshot Secret).
    let restarted_at = Instant::now();
    // Same address, as a restarted pod behind the same Service.
    let operator = start_operator(client.clone(), "operator-1", &push_addr.to_string()).await;
    eventually(
        Duration::from_secs(10),
        "router catching up after the restart",
        || async { (router.chat(&key, "smart").await == Ok("from alpha".into())).then_some(()) },
    )
    .await;
    println!(
        "CATCH-UP: after the operator restart the router served the new version in {:?}",
        restarted_at.elapsed()
    );
    let third = router.version();
    assert!(third > second, "version {third} after {second}");

    operator.shutdown().await;
    router.stop().await;
    late.stop().await;
    let _ = std::fs::remove_dir_all(&snapshot_dir);
}

fn decode(b64: &str) -> String {
    use base64::Engine;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Spend back to status

fn condition(obj: &Value, type_: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

fn usd(v: &Value) -> Option<Decimal> {
    v.as_str().and_then(|s| Decimal::from_str(s).ok())
}

const SPEND_KEY: &str = "sk-sb-spend-e2e-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_writes_the_routers_redis_spend_into_budget_and_api_key_status() {
    let mut redis = RedisServer::start().await;
    let kube = MockKubeApi::start().await;
    let client = kube_client(&kube);
    // Input free, output $1 per million: with max_tokens 2 the mock answers 2 tokens ("echo: hi"),
    // so each request reserves and costs $0.000002 and the $0.00001 budget affords exactly 5.
    apply(
        &client,
        &[
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": NS},
                   "stringData": {"app": SPEND_KEY}}),
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Provider",
                   "metadata": {"name": "mock", "namespace": NS},
                   "spec": {"type": "mock", "mock": {},
                            "models": [{"name": "chat", "maxOutputTokens": 1000,
                                        "pricing": {"inputUSDPerMillion": "0", "outputUSDPerMillion": "1"}}]}}),
            route("smart", "smart", "mock"),
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ApiKey",
                   "metadata": {"name": "app", "namespace": NS},
                   "spec": {"secretRef": {"name": "keys", "key": "app"}}}),
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Budget",
                   "metadata": {"name": "team", "namespace": NS},
                   "spec": {"limitUSD": "0.00001", "window": "monthly", "softLimitPercent": 50,
                            "scope": {"apiKeys": ["app"]}}}),
        ],
    )
    .await;

    let operator = start_operator_with(
        client.clone(),
        "operator-0",
        "127.0.0.1:0",
        Some(redis.url()),
    )
    .await;
    let ledger = Arc::new(RedisLedger::new(&redis.url()).unwrap());
    let router = Router::start_with(
        AppState::with_ledger(Settings::default(), ledger),
        &format!("http://{}", operator.push_addr),
        None,
    )
    .await;
    let limit = Duration::from_secs(10);

    // Before any request: the operator has read the (empty) counters.
    let budget = eventually(limit, "Budget team spend status", || async {
        kube.get(BUDGETS, NS, "team")
            .filter(|b| b["status"]["spentUSD"].is_string())
    })
    .await;
    let (start, end) = window_bounds(BudgetWindow::Monthly, jiff::Timestamp::now());
    let rfc3339 = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(budget["status"]["spentUSD"], "0");
    assert_eq!(budget["status"]["remainingUSD"], "0.00001");
    assert_eq!(budget["status"]["windowStart"], rfc3339(start));
    assert_eq!(budget["status"]["resetsAt"], rfc3339(end.unwrap()));
    assert_eq!(condition(&budget, "Exceeded").unwrap()["status"], "False");
    assert_eq!(
        condition(&budget, "SoftLimitReached").unwrap()["status"],
        "False"
    );

    // Spend the budget: 5 requests served, then 402.
    // Requests refused before the router has the key and route are not charged.
    let mut told = eventually(limit, "router serving the key", || async {
        router.chat_cost(SPEND_KEY, "smart", 2).await.ok()
    })
    .await;
    let mut served = 1;
    let last = loop {
        match router.chat_cost(SPEND_KEY, "smart", 2).await {
            Ok(cost) => {
                told += cost;
                served += 1;
                assert!(served <= 5, "the budget admitted more than it affords");
            }
            Err(status) => {
                assert_eq!(status, 402, "refused as over budget");
                break Instant::now();
            }
        }
    };
    assert_eq!(served, 5);
    assert_eq!(told, Decimal::from_str("0.00001").unwrap());

    // The operator writes what the client was told.
    let budget = eventually(limit, "Budget team Exceeded", || async {
        kube.get(BUDGETS, NS, "team").filter(|b| {
            condition(b, "Exceeded").is_some_and(|c| c["status"] == "True")
                && usd(&b["status"]["spentUSD"]) == Some(told)
        })
    })
    .await;
    println!(
        "SPEND: Budget status showed the spend {:?} after the last (refused) request",
        last.elapsed()
    );
    assert_eq!(budget["status"]["remainingUSD"], "0");
    let exceeded = condition(&budget, "Exceeded").unwrap();
    assert_eq!(exceeded["reason"], "LimitReached");
    assert_eq!(
        exceeded["message"],
        format!(
            "spent $0.00001 of the $0.00001 limit in the monthly window from {}; requests in scope are refused until {}",
            rfc3339(start),
            rfc3339(end.unwrap())
        )
    );
    let soft = condition(&budget, "SoftLimitReached").unwrap();
    assert_eq!(soft["status"], "True");
    assert_eq!(
        soft["message"],
        "spent $0.00001 of the $0.00001 limit, at or above the 50% soft limit ($0.000005)"
    );
    let app = eventually(limit, "ApiKey app spend", || async {
        kube.get(APIKEYS, NS, "app")
            .filter(|k| usd(&k["status"]["spendUSD"]) == Some(told))
    })
    .await;
    assert_eq!(app["status"]["prefix"], "sk-sb-spen…");
    let events = eventually(limit, "spend Events", || async {
        let events: Vec<Value> = kube
            .list("apis/events.k8s.io/v1/events")
            .into_iter()
            .filter(|e| e["regarding"]["name"] == "team" && e["type"] == "Warning")
            .collect();
        (events.len() >= 2).then_some(events)
    })
    .await;
    for reason in ["SoftLimitReached", "LimitReached"] {
        assert!(
            events.iter().any(|e| e["reason"] == reason),
            "no Warning {reason} in {events:?}"
        );
    }

    // Redis goes away: the failed read is counted, reconciles go on (a spec change is observed)
    // and the spend status stays as it was.
    redis.stop().await;
    let metrics = || async {
        reqwest::get(format!("http://{}/metrics", operator.admin_addr))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    eventually(limit, "a failed spend read in the metrics", || async {
        metrics()
            .await
            .filter(|m| m.contains(r#"switchboard_operator_spend_reads_total{result="error"}"#))
    })
    .await;
    let budgets: Api<Budget> = Api::namespaced(client.clone(), NS);
    budgets
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"softLimitPercent": 60}})),
        )
        .await
        .unwrap();
    let budget = eventually(limit, "Budget team observedGeneration 2", || async {
        kube.get(BUDGETS, NS, "team")
            .filter(|b| condition(b, "Ready").is_some_and(|c| c["observedGeneration"] == 2))
    })
    .await;
    assert_eq!(usd(&budget["status"]["spentUSD"]), Some(told));
    assert_eq!(budget["status"]["remainingUSD"], "0");
    assert_eq!(condition(&budget, "Exceeded"), Some(exceeded));
    assert_eq!(condition(&budget, "SoftLimitReached"), Some(soft));

    operator.shutdown().await;
    router.stop().await;
}
