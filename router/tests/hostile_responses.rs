//! Money under a hostile upstream on `/v1/responses` and `/v1/completions` (issues 16 and 19):
//! usage reported as a huge, negative, fractional, string or missing count — by an OpenAI target
//! answering Responses or legacy completions natively, or by the chat or Anthropic upstream a
//! request was translated for — is billed at the request's worst case, told to the client in the
//! endpoint's own usage fields with `clamped`, marked on the generation record, and settled at
//! exactly what the client was told; honest usage passes as reported.

mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::Uri,
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{CLIENT_KEY, TestRouter, get_as};

/// What the scripted upstream reports: input and output counts as JSON values, or no usage.
#[derive(Clone, Debug)]
enum Report {
    Counts(Value, Value),
    Missing,
}

const TEXT: &str = "hello world!";

#[derive(Clone)]
struct Script(Arc<Mutex<Report>>);

/// One upstream told apart by path: OpenAI Responses (`/responses`), legacy completions
/// (`/completions`), chat (`/chat/completions`) and Anthropic Messages (`/messages`).
async fn upstream(script: Script) -> SocketAddr {
    let app = Router::new().fallback(answer).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

/// SSE of `(event name, data)` frames, ending with `[DONE]` when `done`.
fn sse(events: Vec<(Option<&str>, Value)>, done: bool) -> Response {
    let mut text = String::new();
    for (event, data) in events {
        if let Some(e) = event {
            text.push_str(&format!("event: {e}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    ([("content-type", "text/event-stream")], text).into_response()
}

async fn answer(State(script): State<Script>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = request["stream"] == json!(true);
    let report = script.0.lock().unwrap().clone();
    let counts = |p: &str, c: &str| match &report {
        Report::Counts(prompt, completion) => Some(json!({p: prompt, c: completion})),
        Report::Missing => None,
    };
    if path.ends_with("/responses") {
        return responses(counts("input_tokens", "output_tokens"), stream);
    }
    if path.ends_with("/messages") {
        return anthropic(counts("input_tokens", "output_tokens"), stream);
    }
    let usage = counts("prompt_tokens", "completion_tokens");
    let chat = path.ends_with("/chat/completions");
    let (object, choice, last) = if chat {
        (
            "chat.completion",
            json!({"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}),
            json!({"index": 0, "delta": {}, "finish_reason": "stop"}),
        )
    } else {
        (
            "text_completion",
            json!({"index": 0, "text": TEXT, "logprobs": null, "finish_reason": "stop"}),
            json!({"index": 0, "text": "", "logprobs": null, "finish_reason": "stop"}),
        )
    };
    if !stream {
        let mut v =
            json!({"id": "c1", "object": object, "created": 1, "model": "m", "choices": [choice]});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        return json_response(v);
    }
    let object = if chat {
        "chat.completion.chunk"
    } else {
        object
    };
    let first = if chat {
        json!({"index": 0, "delta": {"content": TEXT}, "finish_reason": null})
    } else {
        json!({"index": 0, "text": TEXT, "logprobs": null, "finish_reason": null})
    };
    let chunk = |choices: Value| json!({"id": "c1", "object": object, "created": 1, "model": "m", "choices": choices});
    let mut events = vec![(None, chunk(json!([first]))), (None, chunk(json!([last])))];
    if let Some(u) = usage {
        let mut c = chunk(json!([]));
        c["usage"] = u;
        events.push((None, c));
    }
    sse(events, true)
}

fn responses(usage: Option<Value>, stream: bool) -> Response {
    let mut response = json!({
        "id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-x",
        "status": "completed", "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}],
    });
    if let Some(u) = usage {
        response["usage"] = u;
    }
    if !stream {
        return json_response(response);
    }
    let mut opening = response.clone();
    opening["status"] = json!("in_progress");
    opening["output"] = json!([]);
    opening.as_object_mut().unwrap().remove("usage");
    sse(
        vec![
            (
                Some("response.created"),
                json!({"type": "response.created", "response": opening, "sequence_number": 0}),
            ),
            (
                Some("response.output_text.delta"),
                json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                       "content_index": 0, "delta": TEXT, "sequence_number": 1}),
            ),
            (
                Some("response.completed"),
                json!({"type": "response.completed", "response": response, "sequence_number": 2}),
            ),
        ],
        false,
    )
}

fn anthropic(usage: Option<Value>, stream: bool) -> Response {
    if !stream {
        let mut v = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": null
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        return json_response(v);
    }
    let (start, end) = match usage {
        Some(u) => (
            json!({"input_tokens": u["input_tokens"], "output_tokens": 1}),
            json!({"output_tokens": u["output_tokens"]}),
        ),
        None => (json!({}), json!({})),
    };
    sse(
        vec![
            (
                Some("message_start"),
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                    "role": "assistant", "model": "claude", "content": [], "stop_reason": null,
                    "usage": start}}),
            ),
            (
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}}),
            ),
            (
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                Some("message_delta"),
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": end}),
            ),
            (Some("message_stop"), json!({"type": "message_stop"})),
        ],
        false,
    )
}

/// An `openai` target (Responses and completions natively), an `openaiCompatible` one
/// (Responses translated onto chat, completions natively) and an `anthropic` one (both
/// translated), each as `<name>/m`, under one budget on the client key.
fn manifest(up: &str) -> String {
    let mut m = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{up: sk-provider-0123456789abcdef, key: {CLIENT_KEY}}}\n---\n\
         apiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: client}}\nspec: {{secretRef: {{name: s, key: key}}}}\n---\n\
         apiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: b}}\nspec: {{limitUSD: \"100\", window: total, scope: {{apiKeys: [client]}}}}\n"
    );
    for (name, ty) in [
        ("openai", "openai"),
        ("compat", "openaiCompatible"),
        ("anthropic", "anthropic"),
    ] {
        m.push_str(&format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {name}}}\nspec:\n  type: {ty}\n  baseURL: {up}/v1\n  credentials: {{secretRef: {{name: s, key: up}}}}\n  models: [{{name: x, pricing: {{inputUSDPerMillion: \"1\", outputUSDPerMillion: \"2\"}}}}]\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {name}}}\nspec: {{model: {name}/m, targets: [{{provider: {name}, model: x}}]}}\n"
        ));
    }
    m
}

struct World {
    script: Script,
    router: TestRouter,
}

/// What one answer told: its `usage`, its output count and the generation id.
struct Told {
    usage: Value,
    output_tokens: Value,
    id: String,
}

impl World {
    async fn start() -> World {
        let script = Script(Arc::new(Mutex::new(Report::Missing)));
        let addr = upstream(script.clone()).await;
        let router = TestRouter::start(&manifest(&format!("http://{addr}"))).await;
        World { script, router }
    }

    fn set(&self, r: Report) {
        *self.script.0.lock().unwrap() = r;
    }

    /// `POST path` of "hi" to `model` with an output limit of 10 tokens.
    async fn ask(&self, path: &str, model: &str, stream: bool) -> Told {
        let responses = path == "/v1/responses";
        let body = if responses {
            json!({"model": model, "input": "hi", "max_output_tokens": 10, "stream": stream})
        } else {
            json!({"model": model, "prompt": "hi", "max_tokens": 10, "stream": stream})
        };
        let resp = self
            .router
            .http
            .post(self.router.url(path))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path} {model}");
        let id = resp.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let text = resp.text().await.unwrap();
        let payloads: Vec<Value> = if stream {
            text.split("\n\n")
                .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str(d).unwrap())
                .collect()
        } else {
            vec![serde_json::from_str(&text).unwrap()]
        };
        let usage = if responses {
            let last = payloads.last().unwrap();
            if stream {
                assert_eq!(last["type"], "response.completed", "{text}");
                last["response"]["usage"].clone()
            } else {
                last["usage"].clone()
            }
        } else {
            let told: Vec<&Value> = payloads
                .iter()
                .filter(|p| p.get("usage").is_some_and(|u| !u.is_null()))
                .collect();
            assert_eq!(told.len(), 1, "one usage: {text}");
            if stream {
                assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            }
            told[0]["usage"].clone()
        };
        let output = if responses {
            "output_tokens"
        } else {
            "completion_tokens"
        };
        Told {
            output_tokens: usage[output].clone(),
            usage,
            id,
        }
    }

    async fn generation(&self, id: &str) -> Value {
        let v: Value = get_as(
            &self.router.http,
            self.router.url(&format!("/api/v1/generation?id={id}")),
            CLIENT_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
        v["data"].clone()
    }

    /// The budget's settled spend once nothing is reserved.
    async fn spent(&self) -> Decimal {
        for _ in 0..200 {
            let data = self.router.key_info(CLIENT_KEY).await;
            let b = &data["budgets"][0];
            if b["reserved_usd"] == "0" {
                return b["spent_usd"].as_str().unwrap().parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a reservation was never settled");
    }
}

fn hostile() -> Vec<(&'static str, Report)> {
    let u64_max: Value = serde_json::from_str("18446744073709551615").unwrap();
    vec![
        ("too_large", Report::Counts(json!(5), u64_max)),
        ("too_large", Report::Counts(json!(5), json!(1e30))),
        ("negative", Report::Counts(json!(5), json!(-5))),
        ("fractional", Report::Counts(json!(5), json!(2.5))),
        ("not_a_number", Report::Counts(json!(5), json!("7"))),
        ("missing", Report::Missing),
    ]
}

/// Every (endpoint, model) pair: native Responses and completions at the `openai` target,
/// translated Responses at the chat and Anthropic targets, native completions at the
/// OpenAI-compatible one and translated at the Anthropic one.
const PATHS: [(&str, &str); 6] = [
    ("/v1/responses", "openai/m"),
    ("/v1/responses", "compat/m"),
    ("/v1/responses", "anthropic/m"),
    ("/v1/completions", "openai/m"),
    ("/v1/completions", "compat/m"),
    ("/v1/completions", "anthropic/m"),
];

#[tokio::test(flavor = "multi_thread")]
async fn unusable_usage_on_responses_and_completions_is_billed_at_the_worst_case_and_told() {
    let w = World::start().await;
    let mut told = Decimal::ZERO;
    for (path, model) in PATHS {
        let mut worst = None;
        for (kind, report) in hostile() {
            w.set(report.clone());
            for stream in [false, true] {
                let at = format!("{path} {model} stream={stream} {report:?}");
                let t = w.ask(path, model, stream).await;
                let reason = t.usage["clamped"]["reason"].as_str().unwrap_or_default();
                assert!(reason.ends_with(kind), "{at}: {}", t.usage);
                assert_eq!(t.output_tokens, 10, "{at}: {}", t.usage);
                let cost = t.usage["cost"].as_f64().unwrap();
                // Always the same worst case for the same request, whatever was reported.
                assert_eq!(*worst.get_or_insert(cost), cost, "{at}: {}", t.usage);
                let g = w.generation(&t.id).await;
                assert_eq!(g["usage_anomaly"], json!(reason), "{at}: {g}");
                let recorded: Decimal = g["total_cost"].as_str().unwrap().parse().unwrap();
                assert_eq!(recorded.to_string().parse::<f64>().unwrap(), cost, "{at}");
                told += recorded;
            }
        }
        // 10 output tokens at $2/M and a prompt estimate at $1/M.
        assert!(worst.is_some_and(|c| c > 0.00002), "{path} {model}");
    }
    assert_eq!(w.spent().await, told);
}

#[tokio::test(flavor = "multi_thread")]
async fn honest_usage_on_responses_and_completions_is_billed_as_reported() {
    let w = World::start().await;
    w.set(Report::Counts(json!(20), json!(3)));
    for (path, model) in PATHS {
        for stream in [false, true] {
            let t = w.ask(path, model, stream).await;
            // 20 × $1/M + 3 × $2/M.
            assert_eq!(
                t.usage["cost"],
                json!(0.000026),
                "{path} {model}: {}",
                t.usage
            );
            assert!(t.usage.get("clamped").is_none(), "{}", t.usage);
            assert_eq!(t.output_tokens, 3);
            assert_eq!(w.generation(&t.id).await["usage_anomaly"], Value::Null);
        }
    }
    assert_eq!(w.spent().await, Decimal::new(26 * 12, 6));
}
