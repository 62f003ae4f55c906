//! CRDs kept current across `helm upgrade` (`--apply-crds`), in the full loop against the mock
//! Kubernetes API, which prunes custom resources to their stored CRD as an API server does.
//!
//! An older ApiKey CRD (without `team` and `disabled`, as an earlier release had) is installed:
//! an ApiKey applied with `disabled: true` silently loses the field, and the key would work. The
//! operator then starts as `main` runs it with `--apply-crds`: the four CRDs are server-side
//! applied, existing objects keep their identity and fields, the same ApiKey applied again keeps
//! `team` and `disabled`, and the snapshot pushed to routers says so. Also: missing CRDs are
//! created, and a CRD applied by a newer operator is left alone.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use switchboard_api::snapshot::ApiKeyConfig;
use switchboard_e2e::{kube_api::MockKubeApi, stored};
use switchboard_operator::{
    Config, Running, controller,
    crds::{self, Decision, FIELD_MANAGER, VERSION_ANNOTATION},
    leader::LeaseSettings,
};

const NS: &str = "team-a";
const CRDS: &str = "apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const APIKEYS: &str = "apis/switchboard.dev/v1alpha1/apikeys";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kube_client(api: &MockKubeApi) -> Client {
    switchboard_router::providers::clients::install_crypto_provider();
    let config = kube::Config::new(api.url().parse().unwrap());
    Client::try_from(config).expect("client for the mock API server")
}

/// This release's CRDs as an earlier release would have installed them from `crds/`: no
/// version annotation, and the ApiKey schema without `spec.team` and `spec.disabled`.
fn older_crds() -> Vec<CustomResourceDefinition> {
    switchboard_api::crdgen::crds()
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(&crd).unwrap();
            if crd.spec.names.kind == "ApiKey" {
                let spec = &mut v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
                    ["spec"]["properties"];
                let spec = spec.as_object_mut().expect("ApiKey spec properties");
                assert!(spec.remove("team").is_some() && spec.remove("disabled").is_some());
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

async fn apply_yaml(client: &Client, yaml: &str) {
    let object: Value = serde_yaml::from_str(yaml).unwrap();
    let name = object["metadata"]["name"].as_str().unwrap();
    let (group, version) = object["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap_or(("", "v1"));
    let kind = object["kind"].as_str().unwrap();
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
    api.patch(
        name,
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
}

const KEY_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: ml-key, namespace: team-a}
stringData: {key: sk-sb-crd-upgrade-0123456789}
"#;

const KEY: &str = r#"
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: ml, namespace: team-a}
spec:
  secretRef: {name: ml-key, key: key}
  allowedModels: ["gpt-*"]
  team: ml
  disabled: true
"#;

const PROVIDER: &str = r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: mock, namespace: team-a}
spec: {type: mock, models: [{name: gpt-mock}]}
"#;

async fn start_operator(client: Client) -> Running {
    let config = Config {
        controller: controller::Settings {
            namespace: None,
            snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
            identity: "op-0".into(),
            debounce: Duration::from_millis(50),
            resync: Duration::from_secs(60),
            spend_interval: Duration::from_secs(60),
            max_shards: 32,
            limits: switchboard_operator::outbox::Limits::default(),
        },
        lease: LeaseSettings {
            namespace: "switchboard-system".into(),
            name: "switchboard-operator".into(),
            identity: "op-0".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_millis(500),
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        router_token: "crd-upgrade-token-0123456789".into(),
        keep_alive: Duration::from_secs(15),
        redis_url: None,
    };
    switchboard_operator::start(client, config)
        .await
        .expect("operator starts")
}

/// The ApiKey entry of the snapshot the operator stored, once it has one for `ml`.
async fn snapshot_key(api: &MockKubeApi, want: impl Fn(&ApiKeyConfig) -> bool) -> ApiKeyConfig {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let key = stored::snapshot(api, "switchboard-system", "switchboard-config")
            .ok()
            .and_then(|snapshot| snapshot.api_keys.into_values().find(|k| k.name == "ml"));
        if let Some(k) = key.filter(|k| want(k)) {
            return k;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot with the expected ApiKey `ml` within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_crd_is_replaced_at_start_and_objects_keep_their_fields() {
    let api = MockKubeApi::start().await;
    let client = kube_client(&api);
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in older_crds() {
        crd_api.create(&PostParams::default(), &crd).await.unwrap();
    }
    apply_yaml(&client, KEY_SECRET).await;
    apply_yaml(&client, PROVIDER).await;
    apply_yaml(&client, KEY).await;

    // Under the older CRD the new fields are pruned away: the key would not be disabled.
    let before = api.get(APIKEYS, NS, "ml").expect("ApiKey stored");
    assert_eq!(before["spec"]["allowedModels"], json!(["gpt-*"]));
    assert!(before["spec"].get("team").is_none(), "{before}");
    assert!(before["spec"].get("disabled").is_none(), "{before}");

    // The new operator starts as `main` runs it with --apply-crds.
    let applied = crds::apply(client.clone(), VERSION)
        .await
        .expect("CRDs applied");
    assert_eq!(applied.len(), 4);
    assert!(
        applied.iter().all(|a| a.decision == Decision::Apply),
        "{applied:?}"
    );
    let patches: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/"))
        .collect();
    assert_eq!(patches.len(), 4, "{patches:?}");
    for p in &patches {
        assert!(
            p.contains(&format!("fieldManager={FIELD_MANAGER}")) && p.contains("force=true"),
            "server-side apply, forced: {p}"
        );
    }
    for crd in crds::desired(VERSION) {
        let name = crd.metadata.name.clone().unwrap();
        let stored = api.get(CRDS, "", &name).expect("CRD stored");
        assert_eq!(
            stored["metadata"]["annotations"][VERSION_ANNOTATION],
            VERSION
        );
        assert_eq!(
            stored["spec"],
            serde_json::to_value(&crd.spec).unwrap(),
            "{name} is this release's"
        );
    }

    // Existing objects are the same objects, fields intact.
    let after = api.get(APIKEYS, NS, "ml").expect("ApiKey kept");
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(after["spec"], before["spec"]);

    let operator = start_operator(client.clone()).await;
    let k = snapshot_key(&api, |_| true).await;
    assert_eq!((k.team, k.disabled), (None, false));

    // Applied again under the current CRD, the key keeps `team` and `disabled`, and routers are
    // told.
    apply_yaml(&client, KEY).await;
    let stored = api.get(APIKEYS, NS, "ml").unwrap();
    assert_eq!(stored["spec"]["team"], "ml");
    assert_eq!(stored["spec"]["disabled"], true);
    let k = snapshot_key(&api, |k| k.disabled).await;
    assert_eq!(k.team.as_deref(), Some("ml"));
    assert_eq!(k.allowed_models, ["gpt-*"]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_crds_are_created_and_newer_ones_left_alone() {
    let api = MockKubeApi::start().await;
    let client = kube_client(&api);

    let applied = crds::apply(client.clone(), VERSION).await.unwrap();
    assert!(applied.iter().all(|a| a.decision == Decision::Apply));
    assert_eq!(api.list(CRDS).len(), 4, "created by server-side apply");

    // A newer operator (another release of the chart) applied the Budget CRD since.
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let newer = json!({"metadata": {"annotations": {VERSION_ANNOTATION: "99.0.0"}}});
    crd_api
        .patch(
            "budgets.switchboard.dev",
            &PatchParams::default(),
            &Patch::Merge(&newer),
        )
        .await
        .unwrap();
    let before = api.get(CRDS, "", "budgets.switchboard.dev").unwrap();

    let applied = crds::apply(client, VERSION).await.unwrap();
    let budget = applied
        .iter()
        .find(|a| a.name == "budgets.switchboard.dev")
        .unwrap();
    assert_eq!(
        budget.decision,
        Decision::KeepNewer {
            installed: "99.0.0".into()
        }
    );
    assert_eq!(
        api.get(CRDS, "", "budgets.switchboard.dev").unwrap(),
        before,
        "untouched"
    );
    assert_eq!(
        applied
            .iter()
            .filter(|a| a.decision == Decision::Apply)
            .count(),
        3
    );
}
