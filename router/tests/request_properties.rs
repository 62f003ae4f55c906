//! Property test of request intake (issue 16): random JSON — and random bytes — sent to the chat,
//! embeddings and messages endpoints, with fields of every type and size where the router reads
//! numbers (`max_tokens`, `n`, `best_of`, reasoning budgets), never panics and always gets a 2xx
//! or 4xx in the endpoint's error shape; a stream never ends with an internal error. The only 5xx
//! a client can cause is the documented 503 when its own `provider` preferences exclude every
//! provider.

mod support;

use axum::{body::Body, http::Request};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Map, Value, json};
use support::{CLIENT_KEY, manifests, temp_manifest};
use switchboard_router::{app::app, state::Settings, state_from_manifests};
use tower::ServiceExt;

/// Any JSON value, leaning towards the shapes requests use.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-2.0e20f64..2.0e20).prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(json!("user")),
        Just(json!("test/mock")),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{1,10}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A number a client might send where the router reads a token count: in range, at the edges,
/// negative, fractional, huge, or not a number.
fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (1u64..5_000).prop_map(|n| json!(n)),
        3 => (1_000_000u64..1_000_000_000_000).prop_map(|n| json!(n)),
        1 => Just(json!(0)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(1u64 << 62)),
        1 => Just(json!(-1)),
        1 => Just(json!(2.5)),
        1 => Just(json!(1e30)),
        1 => Just(json!("10")),
        1 => any::<u64>().prop_map(|n| json!(n)),
    ]
}

/// Mostly a value of the right shape, sometimes anything.
fn mostly(valid: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![4 => valid, 1 => any_json()].boxed()
}

fn message() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        Just(json!("user")),
        Just(json!("assistant")),
        Just(json!("system")),
        Just(json!("tool")),
        any_json(),
    ];
    let content = prop_oneof![
        "[ -~]{0,40}".prop_map(Value::String),
        Just(json!([{"type": "text", "text": "hi"}])),
        Just(json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])),
        any_json(),
    ];
    (role, content, proptest::option::of(any_json())).prop_map(|(role, content, extra)| {
        let mut m = json!({"role": role, "content": content});
        if let Some(extra) = extra {
            m["tool_calls"] = extra;
        }
        m
    })
}

/// A request body: the fields the router reads, each present or not and of any type, plus
/// random others.
fn body() -> impl Strategy<Value = Value> {
    let model = prop_oneof![
        4 => Just(json!("test/mock")),
        1 => any_json(),
    ];
    let messages = prop_oneof![
        4 => proptest::collection::vec(message(), 1..4).prop_map(Value::Array),
        1 => any_json(),
    ];
    let field = |name: &'static str, v: BoxedStrategy<Value>| {
        proptest::option::weighted(0.3, v).prop_map(move |v| (name, v))
    };
    (
        model,
        messages,
        (
            field("max_tokens", count().boxed()),
            field("max_completion_tokens", count().boxed()),
            field(
                "n",
                prop_oneof![3 => (1u64..4).prop_map(|n| json!(n)), 1 => count()].boxed(),
            ),
            field("best_of", count().boxed()),
            field("stream", mostly(any::<bool>().prop_map(Value::Bool))),
            field(
                "stream_options",
                mostly(any::<bool>().prop_map(|b| json!({"include_usage": b}))),
            ),
        ),
        (
            field(
                "reasoning",
                mostly(prop_oneof![
                    count().prop_map(|n| json!({"max_tokens": n})),
                    Just(json!({"effort": "high"})),
                    Just(json!({"enabled": false})),
                ]),
            ),
            field(
                "reasoning_effort",
                mostly(prop_oneof![Just(json!("low")), Just(json!("high"))]),
            ),
            field("temperature", mostly((0.0f64..2.0).prop_map(|t| json!(t)))),
            field(
                "tools",
                mostly(Just(
                    json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
                )),
            ),
            field(
                "provider",
                mostly(prop_oneof![
                    Just(json!({"sort": "price"})),
                    Just(json!({"only": ["nobody"]})),
                    Just(json!({"max_price": {"prompt": 0.5}})),
                ]),
            ),
            field("input", mostly("[ -~]{1,20}".prop_map(Value::String))),
        ),
        proptest::collection::vec(("[a-z_]{1,8}", any_json()), 0..2),
    )
        .prop_map(|(model, messages, a, b, extra)| {
            let mut obj = Map::new();
            obj.insert("model".into(), model);
            obj.insert("messages".into(), messages);
            for (k, v) in [a.0, a.1, a.2, a.3, a.4, a.5, b.0, b.1, b.2, b.3, b.4, b.5] {
                if let Some(v) = v {
                    obj.insert(k.into(), v);
                }
            }
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
            Value::Object(obj)
        })
}

/// The endpoint and the raw body sent to it.
fn case() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let endpoint = prop_oneof![
        4 => Just("/v1/chat/completions"),
        1 => Just("/v1/embeddings"),
        1 => Just("/v1/messages"),
    ];
    let raw = prop_oneof![
        8 => body().prop_map(|b| b.to_string().into_bytes()),
        1 => any_json().prop_map(|b| b.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ];
    (endpoint, raw)
}

#[test]
fn random_requests_never_panic_and_always_get_2xx_or_4xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The mock serves `test/mock` at $1/$2 per million, under a budget that refuses the largest
    // worst cases.
    let manifest = format!(
        "{}---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: b}}\nspec: {{limitUSD: \"5\", window: total, scope: {{apiKeys: [main]}}}}\n",
        manifests(&[])
    );
    let state = rt.block_on(async {
        state_from_manifests(&[temp_manifest(&manifest)], Settings::default()).unwrap()
    });
    let router = app(state);
    // 512 cases, or PROPTEST_CASES.
    let defaults = proptest::test_runner::Config::default();
    let mut runner = TestRunner::new(proptest::test_runner::Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            512
        },
        failure_persistence: None,
        ..defaults
    });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&case(), |(endpoint, raw)| {
        let req = Request::post(endpoint)
            .header("authorization", format!("Bearer {CLIENT_KEY}"))
            .header("content-type", "application/json")
            .body(Body::from(raw.clone()))
            .unwrap();
        let (status, text) = rt.block_on(async {
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        });
        *statuses.lock().unwrap().entry(status).or_default() += 1;
        let sent = String::from_utf8_lossy(&raw);
        let excluded_by_preferences = status == 503
            && (text.contains("no_eligible_provider") || text.contains("No provider of"))
            && sent.contains("\"provider\"");
        prop_assert!(
            status < 500 || excluded_by_preferences,
            "{endpoint} {sent} -> {status} {text}"
        );
        prop_assert!(
            !text.contains("internal_error"),
            "{endpoint} {sent} -> {text}"
        );
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            let shaped = if endpoint == "/v1/messages" {
                v["type"] == "error" && v["error"]["message"].is_string()
            } else {
                v["error"]["message"].is_string()
                    && v["error"]["code"] == status
                    && v["error"]["metadata"]["error_code"].is_string()
            };
            prop_assert!(shaped, "{endpoint} {sent} -> {status} {text}");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Not vacuous: requests were served, refused by the budget and refused as invalid.
    let statuses = statuses.into_inner().unwrap();
    for status in [200, 400, 402] {
        assert!(
            statuses.get(&status).is_some_and(|n| *n >= 5),
            "{statuses:?}"
        );
    }
}
