//! The controller against a mock API server (kube-rs `tower-test`, the controller-rs fixtures
//! pattern): what a round publishes, and the exact writes the leader's outbox then makes.

use std::sync::Arc;

use serde_json::{Value, json};
use switchboard_api::{
    Object, RouterConfig,
    snapshot::{SnapshotDelta, SnapshotDigest},
};

use super::*;
use crate::{
    fixtures::{ApiServerVerifier, client, respond},
    outbox::Limits,
    writer::Writer,
};

/// Collects the spans created in this test binary, with the thread that created them (tests
/// races with the callsite-interest cache when tests run in parallel.
mod spans {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex, OnceLock},
        thread::ThreadId,
    };

    use tracing::{
        Subscriber,
        field::{Field, Visit},
        span::{Attributes, Id},
    };
    use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

    /// One recorded span.
    #[derive(Clone, Debug)]
    pub struct Recorded {
        pub fields: BTreeMap<String, String>,
        pub parent: Option<String>,
        pub thread: ThreadId,
    }

    /// The binary-wide collector, installed on first use.
    pub fn collector() -> Collector {
        static GLOBAL: OnceLock<Collector> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                use tracing_subscriber::layer::SubscriberExt;
                let c = Collector::default();
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(c.clone()),
                )
                .expect("no other global subscriber in this test binary");
                c
            })
            .clone()
    }

    /// Spans created by the calling thread.
    pub fn mine(c: &Collector) -> Vec<Recorded> {
        let me = std::thread::current().id();
        c.0.lock()
            .unwrap()
            .iter()
            .filter(|s| s.thread == me)
            .cloned()
            .collect()
    }

    /// The collecting layer.
    #[derive(Clone, Default)]
    pub struct Collector(pub Arc<Mutex<Vec<Recorded>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let text = format!("{value:?}");
            self.0
                .insert(field.name().to_string(), text.trim_matches('"').to_string());
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            let span = ctx.span(id);
            let parent = span
                .as_ref()
                .and_then(|s| s.parent())
                .and_then(|p| p.extensions().get::<String>().cloned());
            if let Some(span) = span {
                span.extensions_mut()
                    .insert(fields.get("otel.name").cloned().unwrap_or_default());
            }
            self.0.lock().unwrap().push(Recorded {
                fields,
                parent,
                thread: std::thread::current().id(),
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Harness

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

/// A watched object from its JSON.
fn object(o: &Value) -> Object {
    let o = o.clone();
    match o["kind"].as_str().unwrap() {
        "Provider" => Object::Provider(serde_json::from_value(o).unwrap()),
        "ModelRoute" => Object::ModelRoute(serde_json::from_value(o).unwrap()),
        "ApiKey" => Object::ApiKey(serde_json::from_value(o).unwrap()),
        "Budget" => Object::Budget(serde_json::from_value(o).unwrap()),
        "Secret" => Object::Secret(serde_json::from_value(o).unwrap()),
        other => panic!("{other}"),
    }
}

/// A controller (not running its loop: tests feed changes and call rounds) and what it shares.
struct Harness {
    controller: Controller,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    published: watch::Receiver<Option<Arc<Published>>>,
    leader: watch::Receiver<bool>,
    _leader_tx: watch::Sender<bool>,
    client: Client,
}

fn harness(leading: bool) -> (Harness, ApiServerVerifier) {
    let (client, verifier) = client();
    let (tx, published) = watch::channel(None);
    let (leader_tx, leader) = watch::channel(leading);
    let settings = Settings {
        namespace: None,
        snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
        identity: "op-0".into(),
        debounce: Duration::from_millis(1),
        resync: Duration::from_secs(60),
        spend_interval: Duration::from_secs(60),
        max_shards: 32,
        limits: Limits::default(),
    };
    let shared = Arc::new(Shared::default());
    let outbox = Outbox::new();
    let metrics = Arc::new(Metrics::new());
    let controller = Controller::new(
        client.clone(),
        settings,
        metrics.clone(),
        shared.clone(),
        outbox.clone(),
        tx,
        leader.clone(),
    );
    let h = Harness {
        controller,
        shared,
        outbox,
        metrics,
        published,
        leader,
        _leader_tx: leader_tx,
        client,
    };
    (h, verifier)
}

impl Harness {
    fn apply(&mut self, o: &Value) {
        self.controller.take(Change::Apply(Box::new(object(o))));
    }

    fn version(&self) -> u64 {
        self.published.borrow().as_ref().map_or(0, |p| p.version)
    }

    fn snapshot(&self) -> RouterConfig {
        let p = self.published.borrow().clone().expect("published");
        serde_json::from_slice(p.json()).unwrap()
    }

    /// Starts the outbox worker, one write at a time so their order is exact.
    fn start_worker(&self) -> watch::Sender<bool> {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(outbox::run(
            self.outbox.clone(),
            self.shared.clone(),
            Writer::new(self.client.clone(), "op-0"),
            self.metrics.clone(),
            Limits {
                concurrency: 1,
                ..Limits::default()
            },
            self.leader.clone(),
            stopped,
        ));
        stop
    }
}

/// Answers a status patch of `plural/name` like the API server (a merge patch of `status`),
/// returning the patch's status.
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

// ---------------------------------------------------------------------------------------------
// Rounds and the leader's writes

#[tokio::test]
async fn a_leader_publishes_first_then_writes_keys_statuses_and_events_then_nothing() {
    let collector = spans::collector();
    let (mut h, mut api) = harness(true);
    let mut objects = objects();
    for o in &objects {
        h.apply(o);
    }
    h.controller.round(Priority::Bulk);
    // Published before any write: routers never wait for the API server.
    assert_eq!(h.version(), 1);
    let snapshot = h.snapshot();
    assert!(snapshot.providers.contains_key("team-a/mock"));
    assert!(!snapshot.providers.contains_key("team-a/broken"));
    let spans = spans::mine(&collector);
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.fields["otel.name"] == "reconcile")
            .count(),
        1,
        "{spans:#?}"
    );

    let stop = h.start_worker();
    // The generated key first; alice's status waits for its Secret.
    let (call, send) = api.next().await;
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/api/v1/namespaces/team-a/secrets")
    );
    let mut key_secret = call.body.clone();
    respond(send, 201, call.body);
    // Statuses in (kind, namespace, name) order, then their Events.
    let broken = expect_patch_of(&mut api, &mut objects, "providers", "broken").await;
    assert_eq!(broken["conditions"][0]["reason"], "SecretNotFound");
    assert_eq!(broken["conditions"][0]["status"], "False");
    assert_eq!(broken["models"], 0);
    let mock = expect_patch_of(&mut api, &mut objects, "providers", "mock").await;
    assert_eq!(mock["conditions"][0]["status"], "True");
    assert_eq!(mock["models"], 1);
    assert_eq!(mock["observedGeneration"], 1);
    expect_event(&mut api, "Warning", "SecretNotFound", "broken").await;
    expect_event(&mut api, "Normal", "Ready", "mock").await;
    api.expect_no_more().await;

    // The watch brings our writes back and the new Secret: the echoes compile nothing; the key
    // joins the snapshot (as a delta) and its status is written.
    for o in &objects {
        h.apply(o);
    }
    assert!(
        !h.controller.dirty,
        "status echoes change nothing compile reads"
    );
    key_secret["metadata"]["namespace"] = "team-a".into();
    key_secret["metadata"]["resourceVersion"] = "2".into();
    key_secret["kind"] = "Secret".into();
    key_secret["apiVersion"] = "v1".into();
    h.apply(&key_secret);
    h.controller.round(Priority::Urgent);
    assert_eq!(h.version(), 2);
    let p = h.published.borrow().clone().unwrap();
    let delta = p.delta_from(&(1, snapshot.hash.clone())).expect("a delta");
    let delta: SnapshotDelta = serde_json::from_slice(delta).unwrap();
    assert_eq!(delta.api_keys.upsert.len(), 1);
    let mut applied = snapshot.clone();
    let mut digest = SnapshotDigest::of(&applied);
    delta.apply(&mut applied, &mut digest).unwrap();
    assert_eq!(applied, h.snapshot());

    let alice = expect_patch_of(&mut api, &mut objects, "apikeys", "alice").await;
    assert_eq!(alice["conditions"][0]["status"], "True");
    assert!(alice["prefix"].as_str().unwrap().starts_with("sk-sb-"));
    expect_event(&mut api, "Normal", "Ready", "alice").await;

    // A quiet cluster, echoes included, sees no writes at all.
    for o in &objects {
        h.apply(o);
    }
    h.controller.round(Priority::Urgent);
    h.controller.sweep();
    api.expect_no_more().await;
    let writes = spans::mine(&collector)
        .into_iter()
        .filter(|s| s.fields.contains_key("k8s.object.kind"))
        .map(|s| {
            // Writes are the outbox's, not part of a reconcile round.
            assert_eq!(s.parent, None, "{s:?}");
            format!(
                "{} {}/{}",
                s.fields["otel.name"], s.fields["k8s.namespace.name"], s.fields["k8s.object.name"]
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(
        writes,
        [
            "generate_key ApiKey team-a/alice",
            "write_status Provider team-a/broken",
            "write_status Provider team-a/mock",
            "write_status ApiKey team-a/alice",
        ]
    );
    let _ = stop.send(true);
}

#[tokio::test]
async fn a_follower_publishes_but_never_writes() {
    let (mut h, mut api) = harness(false);
    for o in &objects() {
        h.apply(o);
    }
    h.controller.round(Priority::Bulk);
    let _stop = h.start_worker();
    api.expect_no_more().await;
    assert_eq!(h.version(), 1);
    assert_eq!(h.outbox.lengths(), (0, 0, 0, 0));
}

#[tokio::test]
async fn a_real_change_is_written_before_a_pending_first_round() {
    let (mut h, mut api) = harness(true);
    let mut objects: Vec<Value> = (0..20)
        .map(|i| {
            provider(
                &format!("p{i:02}"),
                json!({"type": "mock", "models": [{"name": "m"}]}),
            )
        })
        .collect();
    for o in &objects {
        h.apply(o);
    }
    h.controller.round(Priority::Bulk);
    assert_eq!(h.outbox.lengths().2, 20, "the first round is a bulk sweep");
    // A user breaks p17 before the sweep got to it.
    let broken = provider(
        "p17",
        json!({"type": "mock", "models": [{"name": "m"}], "credentials": {"env": "X"}}),
    );
    objects[17] = broken.clone();
    h.apply(&broken);
    h.controller.round(Priority::Urgent);
    assert_eq!(h.version(), 2, "published at once");
    let _stop = h.start_worker();
    let first = expect_patch_of(&mut api, &mut objects, "providers", "p17").await;
    assert_eq!(first["conditions"][0]["reason"], "InvalidCredentials");
    let next = expect_patch_of(&mut api, &mut objects, "providers", "p00").await;
    assert_eq!(next["conditions"][0]["status"], "True");
}

#[tokio::test]
async fn rejected_objects_are_counted_by_reason_as_verdicts_move() {
    let (mut h, _api) = harness(false);
    for o in &objects() {
        h.apply(o);
    }
    h.controller.round(Priority::Bulk);
    let gauge = |kind: &str, reason: &str| {
        h.metrics
            .rejected_objects
            .with_label_values(&[kind, reason])
            .get()
    };
    assert_eq!(gauge("Provider", "SecretNotFound"), 1);
    assert_eq!(gauge("ApiKey", "SecretNotFound"), 1);
    h.controller
        .take(Change::Delete(switchboard_api::ObjectRef {
            kind: "Provider",
            namespace: "team-a".into(),
            name: "broken".into(),
        }));
    h.controller.round(Priority::Urgent);
    let gauge = |kind: &str, reason: &str| {
        h.metrics
            .rejected_objects
            .with_label_values(&[kind, reason])
            .get()
    };
    assert_eq!(gauge("Provider", "SecretNotFound"), 0);
    assert_eq!(gauge("ApiKey", "SecretNotFound"), 1);
}

#[path = "controller_spend_tests.rs"]
mod spend;
