//! `POST /v1/completions` over real sockets: translated for a provider without the legacy API
//! (the built-in mock), passed through to an `openaiCompatible` one with `usage.cost` added,
//! streamed and not; what chat cannot express refused only by a translating target.

mod support;

use serde_json::{Value, json};
use support::{Behaviour, CLIENT_KEY, MockUpstream, TestRouter, manifests};

async fn post(router: &TestRouter, body: Value) -> reqwest::Response {
    router
        .http
        .post(router.url("/v1/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn payloads(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_translating_target_answers_text_completions() {
    let router = TestRouter::start(&manifests(&[])).await;
    let resp = post(
        &router,
        json!({"model": "test/mock", "prompt": "Say hi", "echo": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Say hi") && text.len() > "Say hi".len(),
        "{v}"
    );
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    assert!(v["choices"][0]["finish_reason"].is_string());
    assert!(v.get("system_fingerprint").is_some());
    assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let resp = post(
        &router,
        json!({"model": "test/mock", "prompt": "Say hi", "stream": true}),
    )
    .await;
    let body = resp.text().await.unwrap();
    let p = payloads(&body);
    assert_eq!(p.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = p[..p.len() - 1]
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["cost"].as_f64().unwrap() > 0.0);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert!(!text.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_speaks_completions_gets_the_request_as_sent() {
    let upstream = MockUpstream::start(Behaviour::Json(
        200,
        r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" there","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":10,"total_tokens":15}}"#.into(),
    ))
    .await;
    let router = TestRouter::start(&manifests(&[upstream.base_url()])).await;
    let resp = post(
        &router,
        json!({"model": "test/model", "prompt": ["a", "b"], "suffix": "!", "max_tokens": 10,
               "provider": {"sort": "price"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["text"], " there");
    // 5 * 0.15 + 10 * 0.60 per million.
    assert_eq!(v["usage"]["cost"].as_f64(), Some(0.00000675));
    assert_eq!(v["system_fingerprint"], Value::Null);
    let sent = &upstream.received()[0];
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(
        sent.body,
        json!({"model": "m", "prompt": ["a", "b"], "suffix": "!", "max_tokens": 10})
    );

    upstream.set(Behaviour::Sse(
        vec![
            "data: {\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"text\":\"Hi\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n".into(),
            "data: {\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n".into(),
            "data: {\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\n".into(),
            "data: [DONE]\n\n".into(),
        ],
        std::time::Duration::ZERO,
    ));
    let resp = post(
        &router,
        json!({"model": "test/model", "prompt": "x", "stream": true}),
    )
    .await;
    let p = payloads(&resp.text().await.unwrap());
    assert_eq!(p.len(), 4);
    let usage: Value = serde_json::from_str(&p[2]).unwrap();
    assert_eq!(usage["usage"]["cost"].as_f64(), Some(0.0000009));
    assert_eq!(usage["provider"], "up0");
    assert_eq!(
        upstream.received()[1].body["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_chat_cannot_express_is_refused_by_a_translating_target() {
    let router = TestRouter::start(&manifests(&[])).await;
    let resp = post(
        &router,
        json!({"model": "test/mock", "prompt": "x", "suffix": "y"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("suffix"),
        "{v}"
    );
    let resp = post(&router, json!({"model": "test/mock"})).await;
    assert_eq!(resp.status(), 400);
}
