//! The operator's full loop against a mock Kubernetes API server over HTTP (`kube_api`): objects
//! applied through a real kube client, the operator (its library, as `main` runs it) watching
//! them, status and Events written back, a generated client key, the snapshot Secret, and a router
//! (its library on real sockets, as `main` runs it with `--operator-url`) serving requests routed
//! by the pushed snapshot. Then: a ModelRoute change timed until the router routes by it; the
//! operator stopped (the router keeps serving, a new router starts from the snapshot Secret);
//! the operator restarted (the router catches up on a newer version).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use switchboard_api::resources::{ApiKey, ModelRoute, Provider};
use switchboard_e2e::kube_api::MockKubeApi;
use switchboard_operator::{Config, Running, controller, leader::LeaseSettings};
use switchboard_router::{
    config_source::{self, OperatorSource},
    server::{self, RunningServer},
    state::{AppState, Settings},
};
use tokio::sync::watch;

const NS: &str = "team-a";
const TOKEN: &str = "e2e-router-token-0123456789";
const PROVIDERS: &str = "apis/switchboard.dev/v1alpha1/providers";
const ROUTES: &str = "apis/switchboard.dev/v1alpha1/modelroutes";
const APIKEYS: &str = "apis/switchboard.dev/v1alpha1/apikeys";
const SECRETS: &str = "api/v1/secrets";

fn kube_client(api: &MockKubeApi) -> Client {
    switchboard_router::runtime::install_crypto_provider();
    let config = kube::Config::new(api.url().parse().unwrap());
    Client::try_from(config).expect("client for the mock API server")
}

async fn start_operator(client: Client, identity: &str, listen: &str) -> Running {
    let config = Config {
        controller: controller::Settings {
            namespace: None,
            snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
            identity: identity.into(),
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(60),
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
        let state = AppState::new(Settings::default());
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

/// Polls `check` every 20 ms until it returns `Some`, panicking with `what` after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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

    // --- The snapshot Secret, and a router serving by the pushed snapshot.
    let stored = eventually(limit, "snapshot Secret", || async {
        kube.get(SECRETS, "switchboard-system", "switchboard-config")
    })
    .await;
    let stored_json = decode(stored["data"]["snapshot.json"].as_str().unwrap());
    assert!(stored_json.contains("\"routes\""));

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
    let snapshot_file = std::env::temp_dir().join(format!(
        "switchboard-e2e-snapshot-{}.json",
        std::process::id()
    ));
    let stored = eventually(limit, "snapshot Secret at the new version", || async {
        kube.get(SECRETS, "switchboard-system", "switchboard-config")
            .filter(|s| {
                s["metadata"]["annotations"]["switchboard.dev/snapshot-version"].as_str()
                    == Some(second.to_string().as_str())
            })
    })
    .await;
    std::fs::write(
        &snapshot_file,
        decode(stored["data"]["snapshot.json"].as_str().unwrap()),
    )
    .unwrap();
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
    let _ = std::fs::remove_file(&snapshot_file);
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
