//! `POST /v1/responses` over real sockets: passed through to an `openai` target (the mock speaks
//! OpenAI's Responses wire format), translated for an `anthropic` one (the mock speaks Messages),
//! streamed and not; `usage.cost` on both; namespaced and freeform tools mapped back; built-in
//! tools dropped with a header, or refused when the request asks for strictness; stored
//! responses (`GET`, `input_items`, `DELETE`, `previous_response_id`) scoped to their key; and
//! admission through the same budgets as chat.

mod support;

use serde_json::{Value, json};
use support::TestRouter;
use switchboard_e2e::upstreams::{FINAL_TEXT, PLAIN_TEXT, THINKING_SIGNATURE, Upstream};

const KEY: &str = "sk-sb-responses-test-0123456789";
const OTHER: &str = "sk-sb-responses-other-0123456789";
const UPSTREAM_KEY: &str = "sk-upstream-responses-0123456789";

fn manifests(up: &Upstream, budgets: &str) -> String {
    let url = up.url();
    let root = format!("http://{}", up.addr);
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{up: {UPSTREAM_KEY}, main: {KEY}, other: {OTHER}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: main}}
spec: {{secretRef: {{name: s, key: main}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: other}}
spec: {{secretRef: {{name: s, key: other}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: oai}}
spec:
  type: openai
  baseURL: {url}
  credentials: {{secretRef: {{name: s, key: up}}}}
  models: [{{name: gpt-x, pricing: {{inputUSDPerMillion: "1", outputUSDPerMillion: "4"}}, capabilities: [tools, jsonSchema, reasoning]}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: claude}}
spec:
  type: anthropic
  baseURL: {url}
  credentials: {{secretRef: {{name: s, key: up}}}}
  models: [{{name: claude-x, pricing: {{inputUSDPerMillion: "3", outputUSDPerMillion: "15"}}, capabilities: [tools, jsonSchema, reasoning]}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: azure}}
spec:
  type: azureOpenAI
  baseURL: {root}
  credentials: {{secretRef: {{name: s, key: up}}}}
  models: [{{name: my-deployment, pricing: {{inputUSDPerMillion: "1", outputUSDPerMillion: "4"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: azure}}
spec: {{model: azure/gpt, targets: [{{provider: azure, model: my-deployment}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: native}}
spec: {{model: openai/gpt, targets: [{{provider: oai, model: gpt-x}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: translated}}
spec: {{model: anthropic/claude, targets: [{{provider: claude, model: claude-x}}]}}
{budgets}"#
    )
}

async fn start(budgets: &str) -> (Upstream, TestRouter) {
    let up = Upstream::start(UPSTREAM_KEY).await;
    let router = TestRouter::start(&manifests(&up, budgets)).await;
    (up, router)
}

async fn post(router: &TestRouter, key: &str, body: Value) -> reqwest::Response {
    router
        .http
        .post(router.url("/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// SSE text as `(event, data)`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let event = f
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

/// Codex's default shape: tools only in an `additional_tools` item, a freeform `exec` in the
/// `functions` namespace.
fn codex_body(model: &str, input: Vec<Value>) -> Value {
    let mut items = vec![
        json!({"type": "additional_tools", "role": "developer", "tools": [
        {"type": "namespace", "name": "functions", "description": "", "tools": [
            {"type": "custom", "name": "exec", "description": "Run JavaScript",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /[\\s\\S]+/"}},
            {"type": "function", "name": "wait", "strict": false,
             "parameters": {"type": "object", "properties": {"cell_id": {"type": "string"}}}}]}]}),
    ];
    items.extend(input);
    json!({"model": model, "stream": true, "input": items, "store": false,
           "include": ["reasoning.encrypted_content"], "prompt_cache_key": "t-1",
           "reasoning": {"effort": "low"}, "client_metadata": {"x": "y"},
           "tools": [{"type": "web_search", "external_web_access": false}]})
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_target_gets_the_request_as_sent_and_the_answer_gains_cost() {
    let (up, router) = start("").await;
    let resp = post(
        &router,
        KEY,
        json!({"model": "openai/gpt", "input": "hi", "provider": {"sort": "price"},
               "models": ["openai/gpt"], "metadata": {"a": "b"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-switchboard-dropped-tools").is_none());
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["id"].as_str().unwrap().starts_with("resp_mock"),
        "the upstream's object, passed on: {v}"
    );
    assert_eq!(v["provider"], "oai");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/responses");
    assert_eq!(
        seen[0].body,
        json!({"model": "gpt-x", "input": "hi", "metadata": {"a": "b"}}),
        "only the model rewritten, Switchboard's extensions removed"
    );
    let input = v["usage"]["input_tokens"].as_u64().unwrap();
    let expected = (input as f64 * 1.0 + 20.0 * 4.0) / 1e6;
    assert!(
        (v["usage"]["cost"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_gets_responses_at_its_v1_api() {
    let (up, router) = start("").await;
    let resp = post(
        &router,
        KEY,
        json!({"model": "azure/gpt", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let ev = events(&resp.text().await.unwrap());
    let (kind, done) = ev.last().unwrap();
    assert_eq!(kind, "response.completed");
    assert_eq!(done["response"]["provider"], "azure");
    assert!(done["response"]["usage"]["cost"].as_f64().unwrap() > 0.0);
    let seen = &up.seen()[0];
    assert_eq!(seen.path, "/openai/v1/responses");
    assert_eq!(seen.headers["api-key"], UPSTREAM_KEY);
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(
        seen.body["model"], "my-deployment",
        "the deployment, in the body"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_translating_target_answers_a_response_object() {
    let (up, router) = start("").await;
    let resp = post(
        &router,
        KEY,
        json!({"model": "anthropic/claude", "instructions": "Be brief.", "input": "hi",
               "max_output_tokens": 300}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], PLAIN_TEXT);
    assert_eq!(v["instructions"], "Be brief.");
    assert_eq!(v["provider"], "claude");
    let u = &v["usage"];
    let expected = (u["input_tokens"].as_f64().unwrap() * 3.0 + 20.0 * 15.0) / 1e6;
    assert!(
        (u["cost"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{v}"
    );
    let seen = up.seen();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].body["system"][0]["text"], "Be brief.");
    assert_eq!(seen[0].body["max_tokens"], 300);
    // The same access record as chat, labelled `responses`.
    let metrics = router.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchboard_requests_total{")
                && l.contains(r#"endpoint="responses""#)
                && l.contains(r#"status="200""#)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_tools_round_trip_through_a_translating_target() {
    let (up, router) = start("").await;
    let resp = post(
        &router,
        KEY,
        codex_body(
            "anthropic/claude",
            vec![user("Run the shell command: echo hi")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-switchboard-dropped-tools"],
        "web_search",
        "a built-in tool the target cannot run is dropped and named"
    );
    let ev = events(&resp.text().await.unwrap());
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds.last(), Some(&"response.completed"));
    for (i, (_, d)) in ev.iter().enumerate() {
        assert_eq!(d["sequence_number"], i as u64);
    }
    let done: Vec<&Value> = ev
        .iter()
        .filter(|(k, _)| k == "response.output_item.done")
        .map(|(_, d)| &d["item"])
        .collect();
    assert_eq!(
        done.len(),
        2,
        "a reasoning item (the signed thinking) and the call"
    );
    assert_eq!(done[0]["type"], "reasoning");
    let call = done[1];
    assert_eq!(call["type"], "custom_tool_call");
    assert_eq!(
        (call["name"].as_str(), call["namespace"].as_str()),
        (Some("exec"), Some("functions"))
    );
    assert!(
        call["input"]
            .as_str()
            .unwrap()
            .contains("tools.exec_command")
    );
    let completed = &ev.last().unwrap().1["response"];
    assert!(completed["usage"]["cost"].as_f64().unwrap() > 0.0);
    // The upstream saw the flattened tools, no built-in one.
    let seen = up.seen();
    let names: Vec<&str> = seen[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["functions__exec", "functions__wait"]);

    // Turn 2, as Codex sends it: the whole history, the call and its output, the reasoning
    // item with its encrypted content.
    let reasoning = done[0].clone();
    let mut call_item = call.clone();
    call_item.as_object_mut().unwrap().remove("id");
    let output = json!({"type": "custom_tool_call_output", "call_id": call["call_id"],
        "output": [{"type": "input_text", "text": "Script completed\n"}, {"type": "input_text", "text": "hi\n"}]});
    let resp = post(
        &router,
        KEY,
        codex_body(
            "anthropic/claude",
            vec![
                user("Run the shell command: echo hi"),
                reasoning,
                call_item,
                output,
            ],
        ),
    )
    .await;
    let ev = events(&resp.text().await.unwrap());
    let text: String = ev
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, FINAL_TEXT);
    let turn2 = &up.seen()[1].body;
    let assistant = &turn2["messages"][1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"][0]["type"], "thinking");
    assert_eq!(
        assistant["content"][0]["signature"], THINKING_SIGNATURE,
        "the thinking block came back with its signature"
    );
    assert_eq!(assistant["content"][1]["name"], "functions__exec");
    assert_eq!(
        turn2["messages"][2]["content"][0]["content"],
        "Script completed\nhi\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_stream_passes_through_with_cost_on_completed() {
    let (up, router) = start("").await;
    let resp = post(
        &router,
        KEY,
        codex_body("openai/gpt", vec![user("Run the shell command: echo hi")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("x-switchboard-dropped-tools").is_none(),
        "OpenAI serves web_search itself"
    );
    let ev = events(&resp.text().await.unwrap());
    let call = ev
        .iter()
        .find(|(k, d)| k == "response.output_item.done" && d["item"]["type"] == "custom_tool_call")
        .map(|(_, d)| d["item"].clone())
        .expect("the upstream's call, passed on");
    assert_eq!(call["namespace"], "functions");
    let (kind, completed) = ev.last().unwrap();
    assert_eq!(kind, "response.completed");
    assert_eq!(completed["response"]["provider"], "oai");
    assert!(completed["response"]["usage"]["cost"].as_f64().unwrap() > 0.0);
    // Forwarded as sent: the built-in tool and Codex's fields included.
    let sent = &up.seen()[0].body;
    assert_eq!(sent["tools"][0]["type"], "web_search");
    assert_eq!(sent["prompt_cache_key"], "t-1");
    assert_eq!(sent["model"], "gpt-x");
}

#[tokio::test(flavor = "multi_thread")]
async fn strictness_refuses_what_translation_would_drop() {
    let (up, router) = start("").await;
    let mut body = codex_body("anthropic/claude", vec![user("hi")]);
    body["provider"] = json!({"require_parameters": true});
    let resp = post(&router, KEY, body.clone()).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search"),
        "{v}"
    );
    assert!(
        up.seen().is_empty(),
        "nothing reached the translating target"
    );
    body["model"] = json!("openai/gpt");
    assert_eq!(post(&router, KEY, body).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_responses_continue_and_belong_to_their_key() {
    let (up, router) = start("").await;
    for model in ["anthropic/claude", "openai/gpt"] {
        let first: Value = post(&router, KEY, json!({"model": model, "input": "hi"}))
            .await
            .json()
            .await
            .unwrap();
        let id = first["id"].as_str().unwrap().to_string();
        // Stored in the background right after the answer.
        let url = router.url(&format!("/v1/responses/{id}"));
        let mut got = None;
        for _ in 0..50 {
            let r = router.http.get(&url).bearer_auth(KEY).send().await.unwrap();
            if r.status() == 200 {
                got = Some(r.json::<Value>().await.unwrap());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            got.as_ref().map(|g| &g["id"]),
            Some(&first["id"]),
            "{model}"
        );
        let other = router
            .http
            .get(&url)
            .bearer_auth(OTHER)
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "another key sees nothing");

        let items: Value = router
            .http
            .get(format!("{url}/input_items?order=asc"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(items["object"], "list");
        assert_eq!(items["data"][0]["content"][0]["text"], "hi");

        let before = up.seen().len();
        let second = post(
            &router,
            KEY,
            json!({"model": "anthropic/claude", "input": "and again", "previous_response_id": id}),
        )
        .await;
        assert_eq!(second.status(), 200);
        let seen = &up.seen()[before].body;
        let texts: Vec<String> = seen["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(
            texts.len(),
            3,
            "hi, the stored answer, the new turn: {texts:?}"
        );
        assert!(texts[2].contains("and again"));

        let denied = router
            .http
            .delete(&url)
            .bearer_auth(OTHER)
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 404);
        let deleted: Value = router
            .http
            .delete(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            deleted,
            json!({"id": id, "object": "response.deleted", "deleted": true})
        );
        let gone = router.http.get(&url).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(gone.status(), 404);
    }
    let missing = post(
        &router,
        KEY,
        json!({"model": "openai/gpt", "input": "x", "previous_response_id": "resp_nope"}),
    )
    .await;
    assert_eq!(missing.status(), 404);
    let v: Value = missing.json().await.unwrap();
    assert_eq!(v["error"]["metadata"]["error_code"], "response_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn store_false_keeps_nothing_and_bad_input_is_a_400() {
    let (_up, router) = start("").await;
    let v: Value = post(
        &router,
        KEY,
        json!({"model": "anthropic/claude", "input": "hi", "store": false}),
    )
    .await
    .json()
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let url = router.url(&format!("/v1/responses/{}", v["id"].as_str().unwrap()));
    assert_eq!(
        router
            .http
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    for body in [
        json!({"model": "anthropic/claude"}),
        json!({"model": "anthropic/claude", "input": 7}),
        json!({"model": "anthropic/claude", "input": [7]}),
    ] {
        let resp = post(&router, KEY, body).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (v["error"]["code"].as_u64(), v["error"]["param"].as_str()),
            (Some(400), Some("input"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_admitted_by_the_same_budgets() {
    let budget = "---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {name: tiny}\nspec: {limitUSD: \"0.0001\", window: monthly}\n";
    let (up, router) = start(budget).await;
    let resp = post(
        &router,
        KEY,
        json!({"model": "anthropic/claude", "input": "hi", "max_output_tokens": 100000}),
    )
    .await;
    assert_eq!(resp.status(), 402);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 402);
    assert_eq!(v["error"]["metadata"]["error_code"], "budget_exceeded");
    assert!(up.seen().is_empty());
}
