//! Workload identity through the operator's full loop, against the mock Kubernetes API server
//! serving its ServiceAccount issuer (`/.well-known/openid-configuration`, `/openid/v1/jwks`): the
//! operator discovers the issuer and ships it with its key set in the snapshot; a router (no
//! Kubernetes client, no flags) admits a pod's projected token as the ApiKey granting its
//! ServiceAccount and spends on that key's budget; no key Secret is generated for that ApiKey; the
//! API server's rotated keys reach the router and the stored (sharded) snapshot; a second ApiKey
//! granting the same ServiceAccount rejects both with `OverlappingSubjects` in status.

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Client,
    api::{DynamicObject, PostParams},
    discovery::ApiResource,
};
use serde_json::{Value, json};
use switchboard_api::identity::KeySource;
use switchboard_e2e::{
    eventually,
    kube_api::MockKubeApi,
    stored,
    token_issuer::{SigningKey, jwks, service_account_claims},
};
use switchboard_operator::{
    Config, Running, controller, issuers::IssuerSettings, leader::LeaseSettings,
};
use switchboard_router::{
    config::operator::{self as config_source, OperatorSource},
    server::{self, RunningServer},
    state::{AppState, Settings},
};
use tokio::sync::watch;

const NS: &str = "team-a";
const TOKEN: &str = "e2e-identity-router-token-0123456789";
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const APIKEYS: &str = "apis/switchboard.dev/v1alpha1/apikeys";
const SECRETS: &str = "api/v1/secrets";

fn kube_client(api: &MockKubeApi) -> Client {
    switchboard_router::providers::clients::install_crypto_provider();
    let config = kube::Config::new(api.url().parse().unwrap());
    Client::try_from(config).expect("client for the mock API server")
}

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
            retry_period: Duration::from_millis(200),
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        router_token: TOKEN.into(),
        keep_alive: Duration::from_secs(15),
        redis_url: None,
        issuers: IssuerSettings {
            interval: Duration::from_millis(200),
            ..IssuerSettings::default()
        },
    };
    switchboard_operator::start(client, config)
        .await
        .expect("operator starts")
}

/// A router fed by the operator, with default settings (it trusts no issuer by itself).
async fn start_router(operator_url: &str) -> (Arc<AppState>, RunningServer, watch::Sender<bool>) {
    let state = AppState::new(Settings::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut source = OperatorSource::new(operator_url, TOKEN);
    source.max_backoff = Duration::from_secs(1);
    config_source::start(state.clone(), source, None, stop_rx);
    let server = server::start(
        state.clone(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    (state, server, stop)
}

async fn create(client: &Client, doc: Value) {
    let kind = doc["kind"].as_str().unwrap().to_string();
    let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), "v1".to_string()),
    };
    let resource = ApiResource {
        api_version: doc["apiVersion"].as_str().unwrap().into(),
        group,
        version,
        plural: format!("{}s", kind.to_lowercase()),
        kind,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(doc).unwrap(),
    )
    .await
    .unwrap();
}

fn api_key(name: &str, service_account: &str) -> Value {
    json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ApiKey",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"subjects": [{"serviceAccount": {"namespace": NS, "name": service_account}}]}})
}

fn ready(obj: &Value) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

async fn chat(server: &RunningServer, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server.api_addr))
        .bearer_auth(token)
        .json(&json!({"model": "smart", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_ships_the_clusters_issuer_and_a_pods_token_spends_on_its_api_key() {
    let kube = MockKubeApi::start().await;
    let first = SigningKey::rs256("sa-2026-01");
    kube.serve_issuer(ISSUER, jwks(&[&first]));
    let client = kube_client(&kube);
    for doc in [
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "mock", "namespace": NS},
               "spec": {"type": "mock", "models": [{"name": "chat",
                   "pricing": {"inputUSDPerMillion": "1", "outputUSDPerMillion": "2"}}]}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ModelRoute",
               "metadata": {"name": "smart", "namespace": NS},
               "spec": {"model": "smart", "targets": [{"provider": "mock", "model": "chat"}]}}),
        api_key("app", "app"),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Budget",
               "metadata": {"name": "app", "namespace": NS},
               "spec": {"limitUSD": "1", "window": "monthly", "scope": {"apiKeys": ["app"]}}}),
    ] {
        create(&client, doc).await;
    }

    let operator = start_operator(client.clone()).await;
    let (state, router, stop) = start_router(&format!("http://{}", operator.push_addr)).await;

    let issuer = eventually(
        Duration::from_secs(10),
        "the issuer in the snapshot",
        || {
            let state = state.clone();
            async move { state.runtime()?.config.issuers.get(ISSUER).cloned() }
        },
    )
    .await;
    assert_eq!(issuer.audiences, ["switchboard"]);
    assert_eq!(issuer.keys, KeySource::Jwks(jwks(&[&first])));
    assert!(
        kube.requests()
            .iter()
            .any(|r| r == "GET /.well-known/openid-configuration"),
        "discovered through the API server"
    );
    assert!(kube.requests().iter().any(|r| r == "GET /openid/v1/jwks"));

    let condition = eventually(Duration::from_secs(10), "ApiKey app Ready", || {
        let kube = &kube;
        async move { ready(&kube.get(APIKEYS, NS, "app")?).filter(|c| c["status"] == "True") }
    })
    .await;
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.starts_with("subjects accepted, 1 subject"),
        "{message}"
    );
    assert!(
        kube.get(SECRETS, NS, "switchboard-apikey-app").is_none(),
        "no key is generated for an ApiKey reached by subjects alone"
    );

    // A pod of ServiceAccount team-a/app, with its projected token.
    let claims = service_account_claims(ISSUER, NS, "app", "switchboard", "app-5f7c9-x2x4q");
    let token = first.sign(&claims);
    let (status, body) = chat(&router, &token).await;
    assert_eq!(status, 200, "{body}");
    let cost = body["usage"]["cost"].as_f64().unwrap();
    assert!(cost > 0.0);
    let data = eventually(Duration::from_secs(5), "the spend settled", || {
        let token = token.clone();
        let url = format!("http://{}/api/v1/key", router.api_addr);
        async move {
            let v: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["data"]["budgets"][0]["reserved_usd"] == "0"
                && v["data"]["budgets"][0]["spent_usd"] != "0")
                .then_some(v["data"].clone())
        }
    })
    .await;
    assert_eq!(data["api_key"], "team-a/app");
    assert_eq!(data["budgets"][0]["name"], "team-a/app");
    assert_eq!(
        data["identity"]["subject"],
        "system:serviceaccount:team-a:app"
    );
    assert_eq!(data["usage"].as_f64(), Some(cost));

    // The API server rotates its signing key: the operator reads the new key set and ships it.
    let second = SigningKey::es256("sa-2026-02");
    kube.serve_issuer(ISSUER, jwks(&[&second]));
    let rotated = second.sign(&claims);
    eventually(Duration::from_secs(10), "the rotated key accepted", || {
        let router = &router;
        let rotated = rotated.clone();
        async move { (chat(router, &rotated).await.0 == 200).then_some(()) }
    })
    .await;

    // A router starting while the operator is down reads the stored, sharded snapshot: it
    // carries the issuer with the rotated keys, and the ApiKey with its subjects.
    let stored = eventually(Duration::from_secs(10), "the rotated keys stored", || {
        let kube = &kube;
        let rotated = KeySource::Jwks(jwks(&[&second]));
        async move {
            stored::snapshot(kube, "switchboard-system", "switchboard-config")
                .ok()
                .filter(|c| c.issuers.get(ISSUER).is_some_and(|i| i.keys == rotated))
        }
    })
    .await;
    let by_token = stored.api_keys.values().find(|k| k.name == "app").unwrap();
    assert_eq!(by_token.subjects.len(), 1);

    // A second ApiKey granting the same ServiceAccount: both are left out, saying why.
    create(&client, api_key("app-copy", "app")).await;
    let condition = eventually(Duration::from_secs(10), "ApiKey app rejected", || {
        let kube = &kube;
        async move { ready(&kube.get(APIKEYS, NS, "app")?).filter(|c| c["status"] == "False") }
    })
    .await;
    assert_eq!(condition["reason"], "OverlappingSubjects");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("ServiceAccount team-a/app") && message.contains("ApiKey team-a/app-copy"),
        "{message}"
    );
    let copy = eventually(Duration::from_secs(10), "ApiKey app-copy rejected", || {
        let kube = &kube;
        async move { ready(&kube.get(APIKEYS, NS, "app-copy")?).filter(|c| c["status"] == "False") }
    })
    .await;
    assert_eq!(copy["reason"], "OverlappingSubjects");
    let (status, body) = eventually(Duration::from_secs(10), "the token refused", || {
        let router = &router;
        let rotated = rotated.clone();
        async move { Some(chat(router, &rotated).await).filter(|(s, _)| *s == 401) }
    })
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["metadata"]["error_code"], "identity_not_granted",
        "{body}"
    );

    let _ = stop.send(true);
    router.shutdown().await;
    operator.shutdown().await;
}
