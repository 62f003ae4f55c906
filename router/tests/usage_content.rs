//! Content in the usage store (docs/usage.md#privacy): none by default; the messages and the
//! answer when the request's ApiKey or the requested model's ModelRoute sets `recordContent`,
//! kept across a restart.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use switchboard_router::state::Settings;

const KEEPER_KEY: &str = "sk-sb-test-keeper-0123456789";

/// The shared manifests plus a key and a route that opt in to keeping content.
fn content_manifests() -> String {
    format!(
        r#"{}---
apiVersion: v1
kind: Secret
metadata: {{name: keeper}}
stringData: {{key: {KEEPER_KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: keeper}}
spec: {{secretRef: {{name: keeper, key: key}}, allowedModels: ["test/*"], recordContent: true}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: kept}}
spec: {{model: test/kept, targets: [{{provider: mock, model: mock-chat}}], recordContent: true}}
"#,
        manifests(&[])
    )
}

/// POSTs a chat request with `key`; the generation id and the whole body as text.
async fn chat(router: &TestRouter, key: &str, model: &str, text: &str, stream: bool) -> String {
    let resp = post_chat(
        &router.http,
        &router.url(""),
        key,
        &json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": text}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    resp.text().await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn content_is_kept_only_for_keys_and_routes_that_opt_in_and_survives_a_restart() {
    let dir = scratch_dir("usage-content");
    let (first, first_state, usage) = TestRouter::start_with_usage(
        &content_manifests(),
        Settings::default(),
        sqlite_usage(&dir),
    )
    .await;
    let plain = chat(&first, CLIENT_KEY, "test/mock", "plain words", false).await;
    let by_key = chat(&first, KEEPER_KEY, "test/mock", "keep me", false).await;
    let streamed = chat(&first, KEEPER_KEY, "test/mock", "stream me", true).await;
    let by_route = chat(&first, CLIENT_KEY, "test/kept", "route words", false).await;
    // The records are handed to the writer after each response is sent: wait for them, then
    // stop the writer, which stores what is queued.
    first_state.records_written(Duration::from_secs(2)).await;
    usage.shutdown().await;
    first.server.shutdown().await;
    // The state holds the recorder, and with it the spill file's lock: the next router takes it.
    drop(first_state);

    // A new process answers from the store alone.
    let (second, state, usage) = TestRouter::start_with_usage(
        &content_manifests(),
        Settings::default(),
        sqlite_usage(&dir),
    )
    .await;
    assert!(state.generations.get(&plain).is_none());
    let data = |id: String| {
        let url = second.admin(&format!("/admin/v1/generations/{id}"));
        let http = second.http.clone();
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["data"].clone()
        }
    };
    let p = data(plain).await;
    assert_eq!(p["api_key"], "default/main");
    assert!(
        p.get("input").is_none() && p.get("output").is_none(),
        "no content by default: {p}"
    );
    for (id, said) in [
        (by_key, "keep me"),
        (streamed, "stream me"),
        (by_route, "route words"),
    ] {
        let d = data(id).await;
        let input = d["input"].as_str().unwrap_or_else(|| panic!("{d}"));
        let messages: Value = serde_json::from_str(input).unwrap();
        assert_eq!(messages[0]["content"], said, "{d}");
        // The mock upstream echoes the last user message.
        let output = d["output"].as_str().unwrap_or_else(|| panic!("{d}"));
        assert!(output.contains(said), "{output}");
    }
    // The key that made a request reads its content through the client API too.
    let v: Value = get_as(
        &second.http,
        second.url(&format!(
            "/api/v1/generation?id={}",
            chat(&second, KEEPER_KEY, "test/mock", "live", false).await
        )),
        KEEPER_KEY,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(v["data"]["input"].as_str().unwrap().contains("live"), "{v}");
    usage.shutdown().await;
    second.server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}
