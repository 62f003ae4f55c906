//! Mock LLM upstreams a coding agent can hold a session with, behind the router: an Anthropic
//! Messages server and an OpenAI Chat Completions server, each answering like a small model would
//! in the agent's shell tool round trip, in its vendor's real wire format (the Anthropic events
//! are those of the captures in the research notes: `event:` lines, `message_start` with
//! `service_tier`, `input_json_delta` split in pieces, cumulative `message_delta` usage).
//!
//! The plan, for either format: a request carrying a tool result gets the final answer, quoting
//! the tool's output (`The command printed: <output>`); a request whose user turns ask to run
//! [`TRIGGER`] while offering a `Bash` tool gets a call of it; anything else gets [`GREETING`].
//! Every request is recorded (path, query, headers, body) for the test to inspect.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// The command the agent is asked to run.
pub const TRIGGER: &str = "echo hi";
/// The answer to a plain prompt.
pub const GREETING: &str = "Hello from the mock upstream.";

/// Which wire format a mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAiChat,
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The path.
    pub path: String,
    /// The query string.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Value,
}

impl Received {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
struct St {
    dialect: Dialect,
    seen: Arc<Mutex<Vec<Received>>>,
}

/// A running mock.
pub struct AgentUpstream {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl AgentUpstream {
    /// Starts a mock speaking `dialect` on a loopback port.
    pub async fn start(dialect: Dialect) -> AgentUpstream {
        let st = St {
            dialect,
            seen: Arc::default(),
        };
        let app = Router::new().fallback(post(answer)).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        AgentUpstream {
            addr,
            seen: st.seen,
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the Provider's `baseURL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

/// What the mock model answers.
enum Plan {
    Text(String),
    Bash,
}

/// The text of a content value: a string, or the `text` of its blocks.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn plan(dialect: Dialect, body: &Value) -> Plan {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let tool_output = messages.iter().find_map(|m| match dialect {
        Dialect::OpenAiChat => (m["role"] == "tool").then(|| text_of(&m["content"])),
        Dialect::Anthropic => m["content"].as_array().and_then(|blocks| {
            blocks
                .iter()
                .find(|b| b["type"] == "tool_result")
                .map(|b| text_of(&b["content"]))
        }),
    });
    if let Some(output) = tool_output {
        return Plan::Text(format!("The command printed: {}", output.trim()));
    }
    let has_bash = body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|t| t["name"] == "Bash" || t["function"]["name"] == "Bash")
    });
    let asks = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .any(|m| text_of(&m["content"]).contains(TRIGGER));
    if has_bash && asks {
        Plan::Bash
    } else {
        Plan::Text(GREETING.into())
    }
}

async fn answer(State(st): State<St>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.seen.lock().expect("not poisoned").push(Received {
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: json.clone(),
    });
    // Input tokens as a real model would count them, about a twelfth of the JSON bytes.
    let input = (body.len() / 12) as u64;
    let stream = json["stream"] == true;
    let p = plan(st.dialect, &json);
    match st.dialect {
        Dialect::Anthropic if stream => sse(anthropic_events(&json, &p, input)),
        Dialect::Anthropic => axum::Json(anthropic_message(&json, &p, input)).into_response(),
        Dialect::OpenAiChat if stream => sse(chat_chunks(&p, input)),
        Dialect::OpenAiChat => axum::Json(chat_completion(&p, input)).into_response(),
    }
}

fn sse(events: Vec<(Option<&'static str>, String)>) -> Response {
    let body: String = events
        .into_iter()
        .map(|(name, data)| match name {
            Some(n) => format!("event: {n}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect();
    ([("content-type", "text/event-stream; charset=utf-8")], body).into_response()
}

const BASH_INPUT: &str = r#"{"command": "echo hi", "description": "Print hi"}"#;

/// The answer's blocks, stop reason and output tokens.
fn anthropic_blocks(p: &Plan) -> (Value, &'static str, u64) {
    match p {
        Plan::Text(t) => (json!([{"type": "text", "text": t}]), "end_turn", 15),
        Plan::Bash => (
            json!([{"type": "tool_use", "id": "toolu_01mockbash", "name": "Bash",
                "input": serde_json::from_str::<Value>(BASH_INPUT).expect("JSON")}]),
            "tool_use",
            34,
        ),
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0})
}

fn anthropic_message(req: &Value, p: &Plan, input: u64) -> Value {
    let (content, stop, output) = anthropic_blocks(p);
    let mut u = usage(input, output);
    u["service_tier"] = json!("standard");
    json!({"id": "msg_01mock", "type": "message", "role": "assistant", "model": req["model"],
        "content": content, "stop_reason": stop, "stop_sequence": null, "usage": u})
}

fn anthropic_events(req: &Value, p: &Plan, input: u64) -> Vec<(Option<&'static str>, String)> {
    let (_, stop, output) = anthropic_blocks(p);
    let mut start_usage = usage(input, 1);
    start_usage["service_tier"] = json!("standard");
    let mut ev = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_01mockstream", "type": "message",
                "role": "assistant", "model": req["model"], "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": start_usage}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    let delta = |d: Value| {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": d}),
        )
    };
    match p {
        Plan::Text(t) => {
            ev.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ));
            let (a, b) = t.split_at(t.len() / 2);
            for part in [a, b] {
                ev.push(delta(json!({"type": "text_delta", "text": part})));
            }
        }
        Plan::Bash => {
            ev.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_01mockbash", "name": "Bash",
                    "input": {}}}),
            ));
            let (a, b) = BASH_INPUT.split_at(11);
            for part in ["", a, b] {
                ev.push(delta(
                    json!({"type": "input_json_delta", "partial_json": part}),
                ));
            }
        }
    }
    ev.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    ev.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage(input, output)}),
    ));
    ev.push(("message_stop", json!({"type": "message_stop"})));
    ev.into_iter()
        .map(|(n, d)| (Some(n), d.to_string()))
        .collect()
}

fn chat_usage(input: u64, output: u64) -> Value {
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

fn chat_completion(p: &Plan, input: u64) -> Value {
    let (message, finish, output) = match p {
        Plan::Text(t) => (json!({"role": "assistant", "content": t}), "stop", 15),
        Plan::Bash => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_mockbash",
                "type": "function", "function": {"name": "Bash", "arguments": BASH_INPUT}}]}),
            "tool_calls",
            34,
        ),
    };
    json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000,
        "model": "mock-chat", "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": chat_usage(input, output)})
}

fn chat_chunks(p: &Plan, input: u64) -> Vec<(Option<&'static str>, String)> {
    let chunk = |choices: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "mock-chat", "choices": choices})
    };
    let mut out = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
        "finish_reason": null}]),
    )];
    let output = match p {
        Plan::Text(t) => {
            out.push(chunk(
                json!([{"index": 0, "delta": {"content": t}, "finish_reason": null}]),
            ));
            out.push(chunk(
                json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            ));
            15
        }
        Plan::Bash => {
            out.push(chunk(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "id": "call_mockbash", "type": "function",
                "function": {"name": "Bash", "arguments": ""}}]}, "finish_reason": null}]),
            ));
            out.push(chunk(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": BASH_INPUT}}]}, "finish_reason": null}]),
            ));
            out.push(chunk(
                json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            ));
            34
        }
    };
    let mut last = chunk(json!([]));
    last["usage"] = chat_usage(input, output);
    out.push(last);
    let mut events: Vec<(Option<&'static str>, String)> =
        out.into_iter().map(|c| (None, c.to_string())).collect();
    events.push((None, "[DONE]".into()));
    events
}
