//! The operator's change → router latency, as leader and as follower, in-process against the
//! in-memory Kubernetes API of the tests (`switchboard_e2e::kube_api`, with the API server's
//! size limits), with a router following each replica's stream.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use switchboard_api::{
    Object,
    resources::ModelRoute,
    testing::scale::{self, SCALE_NAMESPACE, Scale},
};
use switchboard_e2e::kube_api::MockKubeApi;
use switchboard_operator::{Config, Running, controller, leader::LeaseSettings, outbox::Limits};
use switchboard_router::{
    config::operator::{self, OperatorSource},
    state::{AppState, Settings},
};
use tokio::sync::watch;

use crate::{median, ms, thousands};

const TOKEN: &str = "bench-controlplane-token-0123";

pub struct Latency {
    keys: usize,
    /// Operator start → both routers serving every key.
    first: Duration,
    leader: Vec<Duration>,
    follower: Vec<Duration>,
    /// Status writes waiting in the leader's outbox when each change was made.
    pending: Vec<u64>,
}

fn seed(api: &MockKubeApi, objects: Vec<Object>) {
    let mut collections: Vec<(&str, Vec<Value>)> = vec![
        ("apis/switchboard.dev/v1alpha1/providers", vec![]),
        ("apis/switchboard.dev/v1alpha1/modelroutes", vec![]),
        ("apis/switchboard.dev/v1alpha1/apikeys", vec![]),
        ("apis/switchboard.dev/v1alpha1/budgets", vec![]),
        ("api/v1/secrets", vec![]),
    ];
    for o in objects {
        let (i, v) = match o {
            Object::Provider(o) => (0, serde_json::to_value(o)),
            Object::ModelRoute(o) => (1, serde_json::to_value(o)),
            Object::ApiKey(o) => (2, serde_json::to_value(o)),
            Object::Budget(o) => (3, serde_json::to_value(o)),
            Object::Secret(o) => (4, serde_json::to_value(o)),
        };
        collections[i].1.push(v.expect("objects serialize"));
    }
    for (collection, values) in collections {
        api.seed(collection, values);
    }
}

async fn operator(client: Client, identity: &str) -> Running {
    let config = Config {
        controller: controller::Settings {
            namespace: None,
            snapshot_secret: ("switchboard-system".into(), "switchboard-config".into()),
            identity: identity.into(),
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(3600),
            spend_interval: Duration::from_secs(3600),
            max_shards: 32,
            limits: Limits::default(),
        },
        lease: LeaseSettings {
            namespace: "switchboard-system".into(),
            name: "switchboard-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_millis(200),
        },
        listen: "127.0.0.1:0".parse().expect("an address"),
        admin_listen: "127.0.0.1:0".parse().expect("an address"),
        router_token: TOKEN.into(),
        keep_alive: Duration::from_secs(15),
        redis_url: None,
    };
    switchboard_operator::start(client, config)
        .await
        .expect("the operator starts")
}

/// A metric's value on the operator's admin port (0 when absent).
async fn metric(op: &Running, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", op.admin_addr))
        .await
        .and_then(|r| r.error_for_status());
    let Ok(text) = text else { return 0 };
    let text = text.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn router(op: &Running, stop: watch::Receiver<bool>) -> Arc<AppState> {
    let state = AppState::new(Settings::default());
    operator::start(
        state.clone(),
        OperatorSource::new(format!("http://{}", op.push_addr), TOKEN),
        None,
        stop,
    );
    state
}

/// The weight of route `model-0`'s first target as `state` serves it.
fn weight(state: &AppState) -> Option<u32> {
    let rt = state.runtime()?;
    rt.config.routes.get("model-0").map(|r| r.targets[0].weight)
}

async fn until(limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "gave up after {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

pub async fn measure(keys: usize) -> Latency {
    switchboard_router::providers::clients::install_crypto_provider();
    let scale = Scale::keys(keys);
    let api = MockKubeApi::start().await;
    seed(&api, scale::objects(&scale));
    let client = Client::try_from(kube::Config::new(
        api.url().parse().expect("the mock's URL"),
    ))
    .expect("a client");
    let started = Instant::now();
    let leader = operator(client.clone(), "op-leader").await;
    until(Duration::from_secs(60), || true).await;
    while metric(&leader, "switchboard_operator_leader").await != 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let follower = operator(client.clone(), "op-follower").await;
    let (stop, stopped) = watch::channel(false);
    let (via_leader, via_follower) = (router(&leader, stopped.clone()), router(&follower, stopped));
    let all = |s: &AppState| s.runtime().is_some_and(|r| r.config.api_keys.len() == keys);
    until(Duration::from_secs(900), || {
        all(&via_leader) && all(&via_follower)
    })
    .await;
    let first = started.elapsed();

    let routes: Api<ModelRoute> = Api::namespaced(client, SCALE_NAMESPACE);
    let base = scale::route(0, &scale);
    let (mut on_leader, mut on_follower, mut pending) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..5u32 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pending.push(metric(&leader, "switchboard_operator_outbox{queue=\"bulk\"}").await);
        let mut targets = serde_json::to_value(&base.spec.targets).expect("targets");
        targets[0]["weight"] = json!(20 + i);
        let t = Instant::now();
        routes
            .patch(
                "route-0",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"targets": targets}})),
            )
            .await
            .expect("the change is applied");
        let want = Some(20 + i);
        let (mut a, mut b) = (None, None);
        until(Duration::from_secs(30), || {
            if a.is_none() && weight(&via_leader) == want {
                a = Some(t.elapsed());
            }
            if b.is_none() && weight(&via_follower) == want {
                b = Some(t.elapsed());
            }
            a.is_some() && b.is_some()
        })
        .await;
        on_leader.push(a.expect("measured"));
        on_follower.push(b.expect("measured"));
    }
    let refused = api.refused();
    assert!(refused.is_empty(), "the mock API refused: {refused:?}");
    let _ = stop.send(true);
    leader.shutdown().await;
    follower.shutdown().await;
    Latency {
        keys,
        first,
        leader: on_leader,
        follower: on_follower,
        pending,
    }
}

pub fn report(l: &Latency) -> Vec<String> {
    let mut leader = l.leader.clone();
    let mut follower = l.follower.clone();
    let range = |v: &mut Vec<Duration>| {
        let med = median(v);
        format!("{} / {} / {}", ms(v[0]), ms(med), ms(v[v.len() - 1]))
    };
    vec![
        "### Operator: a change until the routers serve it".into(),
        String::new(),
        format!(
            "{} keys (with their routes, budgets, providers and Secrets) in the in-memory \
             Kubernetes API of the tests (the API server's size limits enforced; no write was \
             refused), two operator replicas in-process (one leader) with the default \
             `--debounce` of 100 ms and `--status-qps` of 100, and a router following each \
             replica's stream (deltas). Each row is a ModelRoute target's weight changed with a \
             merge patch, until the router routes by it; made while the leader's first-round \
             status writes were still queued ({} to {} waiting).",
            thousands(l.keys as u64),
            thousands(*l.pending.iter().min().unwrap_or(&0)),
            thousands(*l.pending.iter().max().unwrap_or(&0))
        ),
        String::new(),
        "| router following | change → router serves it, ms (min / median / max of 5) |".into(),
        "|---|---:|".into(),
        format!("| the leader | {} |", range(&mut leader)),
        format!("| a follower | {} |", range(&mut follower)),
        String::new(),
        format!(
            "Operators started → both routers serving all {} keys: {:.1} s (both replicas list \
             and compile everything; the leader stores the shards).",
            thousands(l.keys as u64),
            l.first.as_secs_f64()
        ),
        String::new(),
    ]
}
