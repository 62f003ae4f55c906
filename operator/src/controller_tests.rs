use switchboard_api::parse_manifests;

use super::*;

#[test]
fn only_referenced_secrets_are_compiled() {
    let objects = parse_manifests(
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: openai, namespace: a}
spec: {type: openai, credentials: {secretRef: {name: openai-key, key: k}}, models: [{name: m}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: env, namespace: a}
spec: {type: openai, credentials: {env: OPENAI_API_KEY}, models: [{name: m}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: alice, namespace: b}
spec: {}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: bob, namespace: b}
spec: {secretRef: {name: bobs, key: key}}
"#,
        "default",
    )
    .unwrap()
    .objects;
    let providers: Vec<&Provider> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Provider(p) => Some(p),
            _ => None,
        })
        .collect();
    let keys: Vec<&ApiKey> = objects
        .iter()
        .filter_map(|o| match o {
            Object::ApiKey(k) => Some(k),
            _ => None,
        })
        .collect();
    let wanted = referenced_secrets(providers, keys);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        wanted,
        BTreeSet::from([
            pair("a", "openai-key"),
            pair("b", "switchboard-apikey-alice"),
            pair("b", "bobs"),
        ])
    );
}

/// Collects the spans created in this test binary, with the thread that created them (tests
/// filter by their own thread). Installed once as the global subscriber: a thread-local default
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
// Reconcile scenarios: the exact API calls one round makes (controller-rs fixtures pattern).

mod scenarios {
    use kube::runtime::{reflector::store::Writer as StoreWriter, watcher::Event};
    use serde_json::json;

    use super::*;
    use crate::fixtures::{ApiServerVerifier, client, respond};

    const SNAPSHOT_SECRET: &str =
        "/api/v1/namespaces/switchboard-system/secrets/switchboard-config";

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
        let path =
            format!("/apis/switchboard.dev/v1alpha1/namespaces/team-a/{plural}/{name}/status");
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

    // -----------------------------------------------------------------------------------------
    // Spend: the leader reads the ledger and writes what it holds into Budget and ApiKey status.

    use jiff::Timestamp;
    use switchboard_api::{
        counters::{budget_counter, key_usage_counter},
        resources::BudgetWindow,
    };
    use switchboard_ledger::{
        BoxFuture, CounterState, LedgerError, ReserveRequest, Reserved, Settlement,
        local::LocalLedger,
    };

    /// A Secret-backed ApiKey `app` and a $0.00001 `total` Budget over it with a 50 % soft limit.
    fn spend_objects() -> Vec<Value> {
        let meta = |name: &str| {
            json!({"name": name, "namespace": "team-a", "uid": format!("uid-{name}"),
                   "generation": 1, "resourceVersion": "1"})
        };
        vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("keys"),
                   "stringData": {"app": "sk-sb-spend-test-0123456789"}}),
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ApiKey", "metadata": meta("app"),
                   "spec": {"secretRef": {"name": "keys", "key": "app"}}}),
            json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Budget", "metadata": meta("team"),
                   "spec": {"limitUSD": "0.00001", "window": "total", "softLimitPercent": 50,
                            "scope": {"apiKeys": ["app"]}}}),
        ]
    }

    /// Records `nanos` against the Budget and the key's current month, as a router settling a
    /// request does.
    async fn spend(ledger: &LocalLedger, id: &str, nanos: i64) {
        let now = Timestamp::now();
        ledger
            .settle(&Settlement {
                id: id.into(),
                counters: vec![
                    (
                        budget_counter("team-a/team", BudgetWindow::Total, now),
                        nanos,
                        None,
                    ),
                    (
                        key_usage_counter("team-a/app", BudgetWindow::Monthly, now),
                        nanos,
                        None,
                    ),
                ],
            })
            .await
            .unwrap();
    }

    async fn expect_snapshot_secret_created(api: &mut ApiServerVerifier) {
        api.expect(
            "PATCH",
            SNAPSHOT_SECRET,
            404,
            crate::fixtures::status_error(404, "NotFound"),
        )
        .await;
        let (call, send) = api.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("POST", "/api/v1/namespaces/switchboard-system/secrets")
        );
        respond(send, 201, call.body);
    }

    /// The status with every `lastTransitionTime` replaced by `T`, which must be a UTC time.
    fn without_times(mut status: Value) -> Value {
        for c in status["conditions"].as_array_mut().unwrap() {
            let t = c["lastTransitionTime"].as_str().unwrap();
            assert!(t.ends_with('Z') && t.len() == 20, "{t}");
            c["lastTransitionTime"] = "T".into();
        }
        status
    }

    #[tokio::test]
    async fn leader_rounds_write_ledger_spend_into_budget_and_api_key_status() {
        let ledger = LocalLedger::in_memory();
        spend(&ledger, "r1", 6_000).await;
        let (controller, mut api, _) = controller(true);
        let mut controller = controller.with_ledger(ledger.clone());
        let mut objects = spend_objects();
        let mut stores = TestStores::new(&objects);

        // Round 1: $0.000006 of $0.00001: past the 50 % soft limit, within the limit.
        let verifier = tokio::spawn(async move {
            expect_snapshot_secret_created(&mut api).await;
            let app = expect_patch_of(&mut api, &mut objects, "apikeys", "app").await;
            assert_eq!(app["spendUSD"], "0.000006");
            assert_eq!(app["prefix"], "sk-sb-spen…");
            expect_event(&mut api, "Normal", "Ready", "app").await;
            let team = expect_patch_of(&mut api, &mut objects, "budgets", "team").await;
            assert_eq!(
                without_times(team),
                json!({
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "Compiled",
                         "message": "covers 1 key", "lastTransitionTime": "T",
                         "observedGeneration": 1},
                        {"type": "SoftLimitReached", "status": "True", "reason": "SoftLimitReached",
                         "message": "spent $0.000006 of the $0.00001 limit, at or above the 50% soft limit ($0.000005)",
                         "lastTransitionTime": "T", "observedGeneration": 1},
                        {"type": "Exceeded", "status": "False", "reason": "WithinLimit",
                         "message": "spent $0.000006 of the $0.00001 limit in total; $0.000004 left",
                         "lastTransitionTime": "T", "observedGeneration": 1}
                    ],
                    "observedGeneration": 1,
                    "spentUSD": "0.000006",
                    "remainingUSD": "0.000004",
                    "windowStart": null,
                    "resetsAt": null
                })
            );
            expect_event(&mut api, "Normal", "Ready", "team").await;
            expect_event(&mut api, "Warning", "SoftLimitReached", "team").await;
            api.expect_no_more().await;
            (api, objects)
        });
        controller.reconcile(&stores.stores).await;
        let (mut api, mut objects) = verifier.await.unwrap();
        for o in &objects {
            stores.apply(o.clone());
        }

        // Round 2: another $0.000004 reaches the limit: Exceeded with a warning; the key's spend
        // follows; nothing else is announced.
        spend(&ledger, "r2", 4_000).await;
        let verifier = tokio::spawn(async move {
            let app = expect_patch_of(&mut api, &mut objects, "apikeys", "app").await;
            assert_eq!(app["spendUSD"], "0.00001");
            let team = expect_patch_of(&mut api, &mut objects, "budgets", "team").await;
            assert_eq!(team["spentUSD"], "0.00001");
            assert_eq!(team["remainingUSD"], "0");
            let exceeded = &team["conditions"][2];
            assert_eq!(
                (&exceeded["type"], &exceeded["status"], &exceeded["reason"]),
                (&json!("Exceeded"), &json!("True"), &json!("LimitReached"))
            );
            assert_eq!(
                exceeded["message"],
                "spent $0.00001 of the $0.00001 limit in total; requests in scope are refused \
                 (a total budget never resets)"
            );
            expect_event(&mut api, "Warning", "LimitReached", "team").await;
            api.expect_no_more().await;
            (api, objects)
        });
        controller.reconcile(&stores.stores).await;
        let (mut api, objects) = verifier.await.unwrap();
        for o in &objects {
            stores.apply(o.clone());
        }

        // Round 3: the ledger says the same: no writes.
        let verifier = tokio::spawn(async move { api.expect_no_more().await });
        controller.reconcile(&stores.stores).await;
        verifier.await.unwrap();
        assert_eq!(
            controller
                .metrics
                .spend_reads
                .with_label_values(&["ok"])
                .get(),
            3
        );
    }

    /// A ledger that is always unreachable.
    struct Unreachable;

    impl Ledger for Unreachable {
        fn reserve<'a>(
            &'a self,
            _: &'a ReserveRequest,
        ) -> BoxFuture<'a, Result<Reserved, LedgerError>> {
            Box::pin(async { Err(LedgerError("connection refused".into())) })
        }
        fn settle<'a>(&'a self, _: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
            Box::pin(async { Err(LedgerError("connection refused".into())) })
        }
        fn read<'a>(
            &'a self,
            _: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
            Box::pin(async { Err(LedgerError("connection refused".into())) })
        }
        fn kind(&self) -> &'static str {
            "unreachable"
        }
    }

    #[tokio::test]
    async fn ledger_outage_still_writes_ready_leaves_spend_alone_and_is_counted() {
        let (controller, mut api, _) = controller(true);
        let mut controller = controller.with_ledger(Arc::new(Unreachable));
        let mut objects = spend_objects();
        // What an earlier leader wrote while the ledger answered.
        let before = json!({"spentUSD": "0.00002", "remainingUSD": "0",
                            "conditions": [{"type": "Exceeded", "status": "True", "reason": "LimitReached",
                                            "message": "m", "lastTransitionTime": "2026-05-01T00:00:00Z"}]});
        objects[2]["status"] = before.clone();
        let stores = TestStores::new(&objects);
        let verifier = tokio::spawn(async move {
            expect_snapshot_secret_created(&mut api).await;
            let app = expect_patch_of(&mut api, &mut objects, "apikeys", "app").await;
            assert!(app.get("spendUSD").is_none(), "{app}");
            expect_event(&mut api, "Normal", "Ready", "app").await;
            let team = expect_patch_of(&mut api, &mut objects, "budgets", "team").await;
            for field in ["spentUSD", "remainingUSD", "windowStart", "resetsAt"] {
                assert!(team.get(field).is_none(), "{field} in {team}");
            }
            assert_eq!(team["conditions"][0]["type"], "Ready");
            assert_eq!(team["conditions"][1], before["conditions"][0]);
            expect_event(&mut api, "Normal", "Ready", "team").await;
            api.expect_no_more().await;
        });
        controller.reconcile(&stores.stores).await;
        verifier.await.unwrap();
        let errors = controller
            .metrics
            .spend_reads
            .with_label_values(&["error"])
            .get();
        assert_eq!(errors, 1);
        assert!(
            controller
                .metrics
                .render()
                .contains(r#"switchboard_operator_spend_reads_total{result="error"} 1"#)
        );
    }
}
