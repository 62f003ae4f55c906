//! Reconcile scenarios: the exact API calls one round makes (controller-rs fixtures pattern).

use kube::runtime::{reflector::store::Writer as StoreWriter, watcher::Event};
use serde_json::json;

use super::*;
use crate::fixtures::{ApiServerVerifier, client, respond};

const SNAPSHOT_SECRET: &str = "/api/v1/namespaces/switchboard-system/secrets/switchboard-config";

fn provider(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Provider",
           "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}"),
                        "generation": 1, "resourceVersion": "1"},
           "spec": spec})
}

fn objects() -> Vec<Value> {
    vec![
        provider(
            "mock",
            json!({"type": "mock", "models": [{"name": "chat"}]}),
        ),
        provider(
            "broken",
            json!({"type": "openai", "credentials": {"secretRef": {"name": "gone", "key": "k"}},
                   "models": [{"name": "m"}]}),
        ),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ApiKey",
               "metadata": {"name": "alice", "namespace": "team-a", "uid": "uid-alice",
                            "generation": 1, "resourceVersion": "1"},
               "spec": {}}),
    ]
}

/// Stores holding `objects`, and their writers to change them later.
struct TestStores {
    stores: Stores,
    providers: StoreWriter<Provider>,
    api_keys: StoreWriter<ApiKey>,
    secrets: StoreWriter<Secret>,
    budgets: StoreWriter<Budget>,
    _routes: StoreWriter<ModelRoute>,
}

impl TestStores {
    fn new(objects: &[Value]) -> Self {
        let (providers, pw) = reflector::store();
        let (routes, rw) = reflector::store();
        let (api_keys, kw) = reflector::store();
        let (budgets, bw) = reflector::store();
        let (secrets, sw) = reflector::store();
        let mut s = TestStores {
            stores: Stores {
                providers,
                routes,
                api_keys,
                budgets,
                secrets,
            },
            providers: pw,
            api_keys: kw,
            secrets: sw,
            budgets: bw,
            _routes: rw,
        };
        for o in objects {
            s.apply(o.clone());
        }
        s
    }

    fn apply(&mut self, o: Value) {
        match o["kind"].as_str().unwrap() {
            "Provider" => self
                .providers
                .apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap())),
            "ApiKey" => self
                .api_keys
                .apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap())),
            "Secret" => self
                .secrets
                .apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap())),
            "Budget" => self
                .budgets
                .apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap())),
            other => panic!("{other}"),
        }
    }
}

fn controller(
    leading: bool,
) -> (
    Controller,
    ApiServerVerifier,
    watch::Receiver<Option<Arc<Published>>>,
) {
    let (client, verifier) = client();
    let (tx, rx) = watch::channel(None);
    let (_leader_tx, leader) = watch::channel(leading);
    let settings = Settings {
        namespace: None,
        snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
        identity: "op-0".into(),
        debounce: Duration::from_millis(1),
        resync: Duration::from_secs(60),
        // Every round reads spend afresh.
        spend_interval: Duration::ZERO,
    };
    let c = Controller::new(client, settings, Arc::new(Metrics::new()), tx, leader);
    (c, verifier, rx)
}

/// Answers a status patch like the API server: the object with the patch merged in.
async fn expect_status_patch(
    api: &mut ApiServerVerifier,
    objects: &mut [Value],
    name: &str,
) -> Value {
    let plural = if name == "alice" {
        "apikeys"
    } else {
        "providers"
    };
    expect_patch_of(api, objects, plural, name).await
}

/// Answers a status patch of `plural/name` like the API server (a merge patch of `status`).
async fn expect_patch_of(
    api: &mut ApiServerVerifier,
    objects: &mut [Value],
    plural: &str,
    name: &str,
) -> Value {
    let (call, send) = api.next().await;
    let path = format!("/apis/switchboard.dev/v1alpha1/namespaces/team-a/{plural}/{name}/status");
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("PATCH", path.as_str()),
        "{call:?}"
    );
    assert_eq!(call.content_type, "application/merge-patch+json");
    let obj = objects
        .iter_mut()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap();
    if obj["status"].is_null() {
        obj["status"] = json!({});
    }
    for (k, v) in call.body["status"].as_object().unwrap() {
        if v.is_null() {
            obj["status"].as_object_mut().unwrap().remove(k);
        } else {
            obj["status"][k] = v.clone();
        }
    }
    respond(send, 200, obj.clone());
    call.body["status"].clone()
}

async fn expect_event(api: &mut ApiServerVerifier, kind: &str, reason: &str, about: &str) {
    let (call, send) = api.next().await;
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/apis/events.k8s.io/v1/namespaces/team-a/events"),
        "{call:?}"
    );
    assert_eq!(
        (call.body["type"].as_str(), call.body["reason"].as_str()),
        (Some(kind), Some(reason))
    );
    assert_eq!(call.body["regarding"]["name"], about);
    respond(send, 201, call.body);
}

#[tokio::test]
async fn leader_rounds_write_snapshot_key_status_and_events_then_nothing() {
    let collector = super::spans::collector();
    let (mut controller, mut api, published) = controller(true);
    let mut objects = objects();
    let mut stores = TestStores::new(&objects);

    // Round 1.
    let verifier = tokio::spawn(async move {
        let call = api
            .expect(
                "PATCH",
                SNAPSHOT_SECRET,
                404,
                crate::fixtures::status_error(404, "NotFound"),
            )
            .await;
        assert_eq!(
            call.body["metadata"]["annotations"]["switchboard.dev/snapshot-version"],
            "1"
        );
        let (call, send) = api.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("POST", "/api/v1/namespaces/switchboard-system/secrets")
        );
        respond(send, 201, call.body);
        // The generated key, before any status: alice's status waits for the next round.
        let (call, send) = api.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("POST", "/api/v1/namespaces/team-a/secrets")
        );
        let key_secret = call.body.clone();
        respond(send, 201, call.body);
        // Statuses in (kind, namespace, name) order, each transition followed by its Event.
        let broken = expect_status_patch(&mut api, &mut objects, "broken").await;
        assert_eq!(broken["conditions"][0]["reason"], "SecretNotFound");
        assert_eq!(broken["conditions"][0]["status"], "False");
        assert_eq!(broken["models"], 0);
        expect_event(&mut api, "Warning", "SecretNotFound", "broken").await;
        let mock = expect_status_patch(&mut api, &mut objects, "mock").await;
        assert_eq!(mock["conditions"][0]["status"], "True");
        assert_eq!(mock["models"], 1);
        assert_eq!(mock["observedGeneration"], 1);
        expect_event(&mut api, "Normal", "Ready", "mock").await;
        api.expect_no_more().await;
        (api, objects, key_secret)
    });
    controller.reconcile(&stores.stores).await;
    let (mut api, mut objects, mut key_secret) = verifier.await.unwrap();
    assert_eq!(published.borrow().as_ref().unwrap().version, 1);
    // The round is traced: one reconcile span, and a child span per write naming its object.
    let spans = super::spans::mine(&collector);
    let reconcile: Vec<_> = spans
        .iter()
        .filter(|s| s.fields["otel.name"] == "reconcile")
        .collect();
    assert_eq!(reconcile.len(), 1, "{spans:#?}");
    let writes: Vec<(String, String, Option<String>)> = spans
        .iter()
        .filter(|s| s.fields.contains_key("k8s.object.kind"))
        .map(|s| {
            (
                s.fields["otel.name"].clone(),
                format!(
                    "{}/{}",
                    s.fields["k8s.namespace.name"], s.fields["k8s.object.name"]
                ),
                s.parent.clone(),
            )
        })
        .collect();
    let reconcile_parent = Some("reconcile".to_string());
    assert_eq!(
        writes,
        [
            (
                "write_snapshot Secret".into(),
                "switchboard-system/switchboard-config".into(),
                reconcile_parent.clone()
            ),
            (
                "generate_key ApiKey".into(),
                "team-a/alice".into(),
                reconcile_parent.clone()
            ),
            (
                "write_status Provider".into(),
                "team-a/broken".into(),
                reconcile_parent.clone()
            ),
            (
                "write_status Provider".into(),
                "team-a/mock".into(),
                reconcile_parent
            ),
        ]
    );

    // Round 2: the watch delivered our writes and the new Secret; alice now compiles.
    for o in &objects {
        stores.apply(o.clone());
    }
    key_secret["metadata"]["resourceVersion"] = "2".into();
    stores.apply(key_secret);
    let verifier = tokio::spawn(async move {
        // The key joined the snapshot: version 2, stored first.
        let (call, send) = api.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("PATCH", SNAPSHOT_SECRET)
        );
        assert_eq!(
            call.body["metadata"]["annotations"]["switchboard.dev/snapshot-version"],
            "2"
        );
        respond(send, 200, call.body);
        let alice = expect_status_patch(&mut api, &mut objects, "alice").await;
        assert_eq!(alice["conditions"][0]["status"], "True");
        assert!(alice["prefix"].as_str().unwrap().starts_with("sk-sb-"));
        expect_event(&mut api, "Normal", "Ready", "alice").await;
        api.expect_no_more().await;
        (api, objects)
    });
    controller.reconcile(&stores.stores).await;
    let (mut api, objects) = verifier.await.unwrap();
    assert_eq!(published.borrow().as_ref().unwrap().version, 2);
    for o in &objects {
        stores.apply(o.clone());
    }

    // Round 3: a quiet cluster sees no writes at all.
    let verifier = tokio::spawn(async move { api.expect_no_more().await });
    controller.reconcile(&stores.stores).await;
    verifier.await.unwrap();
}

#[tokio::test]
async fn follower_publishes_but_never_writes() {
    let (mut controller, mut api, published) = controller(false);
    let stores = TestStores::new(&objects());
    controller.reconcile(&stores.stores).await;
    api.expect_no_more().await;
    let p = published.borrow().clone().expect("published");
    assert_eq!(p.version, 1);
    let config: RouterConfig = serde_json::from_str(&p.json).unwrap();
    assert!(config.providers.contains_key("team-a/mock"));
    assert!(!config.providers.contains_key("team-a/broken"));
}

#[path = "controller_spend_tests.rs"]
mod spend;
