//! The operator at platform scale against the mock Kubernetes API, which refuses what a real API
//! server refuses (a request body over 3 MiB, Secret data over 1 MiB, an object over etcd's
//! limit): 100,000 ApiKeys with their Secrets, 10,000 ModelRoutes, 5,000 Budgets selecting keys
//! by label and 200 Providers (`switchboard_api::testing::scale`, one bad object of each kind
//! mixed in). The leader must store the snapshot without one refused write and without any object
//! over 1 MiB, and a router starting from the stored Secrets alone must serve all of it.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use base64::Engine;
use kube::Client;
use serde_json::Value;
use switchboard_api::{
    Object,
    testing::scale::{self, Scale},
};
use switchboard_e2e::{kube_api::MockKubeApi, stored};
use switchboard_operator::{Config, controller, leader::LeaseSettings, outbox::Limits};
use switchboard_router::{config::operator, state::AppState};

const SECRETS: &str = "api/v1/secrets";
/// Nothing the operator writes may be larger than this.
const MIB: usize = 1024 * 1024;

fn kube_client(api: &MockKubeApi) -> Client {
    switchboard_router::providers::clients::install_crypto_provider();
    let config = kube::Config::new(api.url().parse().unwrap());
    Client::try_from(config).expect("client for the mock API server")
}

/// Seeds the scale's objects, each kind into its collection, as stored by an API server.
fn seed(api: &MockKubeApi, objects: Vec<Object>) {
    let mut by_collection: Vec<(&str, Vec<Value>)> = vec![
        ("apis/switchboard.dev/v1alpha1/providers", vec![]),
        ("apis/switchboard.dev/v1alpha1/modelroutes", vec![]),
        ("apis/switchboard.dev/v1alpha1/apikeys", vec![]),
        ("apis/switchboard.dev/v1alpha1/budgets", vec![]),
        (SECRETS, vec![]),
    ];
    for o in objects {
        let (i, value) = match o {
            Object::Provider(o) => (0, serde_json::to_value(o)),
            Object::ModelRoute(o) => (1, serde_json::to_value(o)),
            Object::ApiKey(o) => (2, serde_json::to_value(o)),
            Object::Budget(o) => (3, serde_json::to_value(o)),
            Object::Secret(o) => (4, serde_json::to_value(o)),
        };
        by_collection[i].1.push(value.unwrap());
    }
    for (collection, values) in by_collection {
        api.seed(collection, values);
    }
}

/// The size that counts against the API server's limits: a Secret's decoded data, any other
/// object's JSON.
fn stored_size(collection: &str, object: &Value) -> usize {
    if collection == SECRETS {
        return object["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| {
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or_default())
                    .map_or(0, |b| b.len())
            })
            .sum();
    }
    serde_json::to_vec(object).map_or(0, |v| v.len())
}

/// Writes the stored snapshot Secrets as files, as the chart mounts them; the manifest's path.
fn mount(api: &MockKubeApi, dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for secret in api.list(SECRETS) {
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        if secret["metadata"]["namespace"] != "switchboard-system"
            || !name.starts_with("switchboard-config")
        {
            continue;
        }
        for (key, value) in secret["data"].as_object().unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap())
                .unwrap();
            std::fs::write(dir.join(key), bytes).unwrap();
        }
    }
    dir.join("manifest.json")
}

#[tokio::test(flavor = "multi_thread")]
async fn at_100k_keys_nothing_the_operator_writes_exceeds_the_api_servers_limits() {
    let scale = Scale::keys(100_000);
    let api = MockKubeApi::start().await;
    seed(&api, scale::objects(&scale));
    let config = Config {
        controller: controller::Settings {
            namespace: None,
            snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
            identity: "op-scale".into(),
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(3600),
            spend_interval: Duration::from_secs(3600),
            max_shards: 32,
            limits: Limits::default(),
        },
        lease: LeaseSettings {
            namespace: "switchboard-system".into(),
            name: "switchboard-operator".into(),
            identity: "op-scale".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_millis(200),
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        router_token: "scale-token-0123456789".into(),
        keep_alive: Duration::from_secs(15),
        redis_url: None,
    };
    let started = Instant::now();
    let operator = switchboard_operator::start(kube_client(&api), config)
        .await
        .expect("operator starts");

    // The leader stores the whole snapshot (the bad objects left out).
    let deadline = started + Duration::from_secs(600);
    let snapshot = loop {
        // An oversized write fails the test at once (the operator would only log it).
        assert_eq!(api.refused(), Vec::<String>::new());
        if let Ok(s) = stored::snapshot(&api, "switchboard-system", "switchboard-config") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no complete stored snapshot within 10 minutes; refused: {:?}",
            api.refused()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "SCALE: 100k keys stored {:?} after the operator started",
        started.elapsed()
    );
    assert_eq!(snapshot.api_keys.len(), scale.api_keys);
    assert_eq!(snapshot.routes.len(), scale.routes);
    assert_eq!(snapshot.budgets.len(), scale.budgets);
    assert_eq!(snapshot.providers.len(), scale.providers);
    let manifest =
        stored::manifest(&api, "switchboard-system", "switchboard-config").expect("manifest");
    assert!(manifest.shards.len() > 1, "{manifest:?}");

    // Not one write refused, and nothing stored over 1 MiB (status writes keep coming in the
    // background; what was written so far counts too).
    assert_eq!(api.refused(), Vec::<String>::new());
    for collection in [
        SECRETS,
        "apis/switchboard.dev/v1alpha1/apikeys",
        "apis/switchboard.dev/v1alpha1/budgets",
        "apis/switchboard.dev/v1alpha1/modelroutes",
        "apis/switchboard.dev/v1alpha1/providers",
        "apis/events.k8s.io/v1/events",
    ] {
        for object in api.list(collection) {
            let size = stored_size(collection, &object);
            assert!(
                size <= MIB,
                "{collection} {} is {size} bytes",
                object["metadata"]["name"]
            );
        }
    }
    let largest = manifest.shards.iter().map(|s| s.bytes).max().unwrap();
    println!(
        "SCALE: {} shards, {} bytes compressed in all, the largest {largest}",
        manifest.shards.len(),
        manifest.shards.iter().map(|s| s.bytes).sum::<u64>()
    );

    // A router starting from the stored Secrets alone (no operator) serves all of it.
    let dir = std::env::temp_dir().join(format!("switchboard-scale-{}", std::process::id()));
    let state = AppState::new(Default::default());
    let version = operator::load_snapshot_file(&state, &mount(&api, &dir)).unwrap();
    assert_eq!(version, manifest.version);
    assert_eq!(
        state.runtime().unwrap().config.api_keys.len(),
        scale.api_keys
    );
    let _ = std::fs::remove_dir_all(&dir);
    operator.shutdown().await;
}
