//! Mock model upstreams for the coding-agent and SDK tests, speaking the real wire formats as
//! captured from the APIs the clients were built against (see `docs/migration.md`): OpenAI
//! Responses at `POST /v1/responses` ([`responses`]), Anthropic Messages at `POST /v1/messages`
//! ([`anthropic`]) and OpenAI-compatible Chat Completions at `POST /v1/chat/completions`
//! ([`chat`]), JSON or SSE as asked; Azure OpenAI's v1 Responses at
//! `POST /openai/v1/responses` (key in `api-key`).
//!
//! The "model" is a fixed policy, the same for both formats:
//! - a conversation that already holds a tool result gets the final text [`FINAL_TEXT`];
//! - a user turn saying [`TRIGGER`] gets one shell call: Codex's freeform `exec` tool (a JavaScript
//!   cell calling `tools.exec_command`), else a shell-like function (`exec_command`, `run_shell`,
//!   `shell`, `bash`), with `echo hi`;
//! - a user turn mentioning the weather gets a call of the first function tool, its arguments
//!   filled from its schema;
//! - a requested JSON schema gets an object that fits it;
//! - anything else gets [`PLAIN_TEXT`].
//!
//! A request that asks for reasoning is answered with a reasoning item (Responses: a summary and
//! opaque `encrypted_content`; Anthropic: a signed thinking block) first. Usage is reported on
//! every answer, and every request is recorded for the test to inspect.

pub mod anthropic;
pub mod chat;
pub mod responses;

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// What a user says to get a shell call.
pub const TRIGGER: &str = "echo hi";
/// The answer once a tool result is in the conversation.
pub const FINAL_TEXT: &str = "Done: the command printed hi.";
/// The answer to anything else.
pub const PLAIN_TEXT: &str = "Hello from the mock upstream.";
/// The signature on the Anthropic mock's thinking blocks; it must come back on the next turn.
pub const THINKING_SIGNATURE: &str = "EqQBCkYIARgCmockSignature";
/// Output tokens every answer reports.
pub const OUTPUT_TOKENS: u64 = 20;

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Value,
}

#[derive(Clone)]
struct St {
    key: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running mock upstream (both formats on one port).
pub struct Upstream {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Starts a mock that accepts `key` (as `Authorization: Bearer` for Responses, `x-api-key`
    /// for Anthropic).
    pub async fn start(key: &str) -> Upstream {
        let st = St {
            key: key.to_string(),
            seen: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/responses", post(answer))
            .route("/v1/messages", post(answer))
            .route("/v1/chat/completions", post(answer))
            .route("/openai/v1/responses", post(answer))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream {
            addr,
            seen: st.seen,
        }
    }

    /// The base URL a Provider names: `http://addr/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

async fn answer(State(st): State<St>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.seen.lock().expect("not poisoned").push(Seen {
        path: uri.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if uri.path() == "/v1/messages" {
        if header("x-api-key") != st.key || header("anthropic-version").is_empty() {
            let e = json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}});
            return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
        }
        return anthropic::answer(&body);
    }
    // Azure OpenAI's v1 API: the key in `api-key`.
    let azure = uri.path().starts_with("/openai/") && header("api-key") == st.key;
    if header("authorization") != format!("Bearer {}", st.key) && !azure {
        let e = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    if uri.path() == "/v1/chat/completions" {
        return chat::answer(&body);
    }
    responses::answer(&body)
}

/// What the mock model decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Answer with text.
    Text(String),
    /// Call a tool (`namespace`, `name`) with these arguments (for a custom tool, the input).
    Call {
        /// The tool's namespace, if it has one.
        namespace: Option<String>,
        /// Its name.
        name: String,
        /// Arguments: a JSON object, or a string for a freeform tool.
        input: Value,
        /// A freeform (custom) tool.
        custom: bool,
    },
}

/// A tool as the policy sees it: namespace, name, freeform or not, parameter schema.
pub struct ToolView {
    /// Namespace.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// A freeform tool (or one taking a single `input` string, as a gateway maps it).
    pub custom: bool,
    /// The parameters' JSON schema.
    pub schema: Value,
}

const SHELL_NAMES: &[&str] = &["exec_command", "run_shell", "shell", "bash", "Bash"];

/// The policy of the module doc, over the tools offered and the conversation's facts.
pub fn decide(
    tools: &[ToolView],
    user_text: &str,
    has_tool_result: bool,
    schema: Option<&Value>,
) -> Decision {
    if has_tool_result {
        return Decision::Text(FINAL_TEXT.into());
    }
    let call = |t: &ToolView, input: Value| Decision::Call {
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        input,
        custom: t.custom,
    };
    if user_text.contains(TRIGGER) {
        let exec = tools
            .iter()
            .find(|t| t.custom && (t.name == "exec" || t.name.ends_with("__exec")));
        if let Some(t) = exec {
            let js = format!(
                "const r = await tools.exec_command({{cmd: \"{TRIGGER}\"}});\ntext(r.output);"
            );
            return call(t, json!(js));
        }
        if let Some(t) = tools.iter().find(|t| {
            SHELL_NAMES
                .iter()
                .any(|s| t.name == *s || t.name.ends_with(&format!("__{s}")))
        }) {
            let props = &t.schema["properties"];
            let field = if props.get("cmd").is_some() {
                "cmd"
            } else {
                "command"
            };
            return call(t, json!({ field: TRIGGER }));
        }
    }
    if user_text.to_lowercase().contains("weather")
        && let Some(t) = tools.iter().find(|t| !t.custom)
    {
        return call(t, fill(&t.schema));
    }
    match schema {
        Some(s) => Decision::Text(fill(s).to_string()),
        None => Decision::Text(PLAIN_TEXT.into()),
    }
}

/// A value that fits a JSON schema (objects get every property).
pub fn fill(schema: &Value) -> Value {
    if let Some(e) = schema["enum"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.first().and_then(Value::as_str).unwrap_or("string"),
        Value::String(k) => k.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    out.insert(k.clone(), fill(v));
                }
            }
            Value::Object(out)
        }
        "array" => json!([fill(&schema["items"])]),
        "integer" => json!(21),
        "number" => json!(21.5),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!("Paris"),
    }
}

/// A rough token count of a request (a quarter of its JSON's length).
pub fn input_tokens(body: &Value) -> u64 {
    (body.to_string().len() as u64).div_ceil(4)
}

/// An SSE body of `(event, data)` pairs, each with its `event:` line.
pub fn sse(events: Vec<(String, Value)>) -> Response {
    let mut out = String::new();
    for (name, data) in events {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    ([("content-type", "text/event-stream")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(ns: Option<&str>, name: &str, custom: bool, schema: Value) -> ToolView {
        ToolView {
            namespace: ns.map(str::to_string),
            name: name.into(),
            custom,
            schema,
        }
    }

    #[test]
    fn the_policy_picks_exec_then_a_shell_then_text() {
        let tools = [
            tool(Some("functions"), "exec", true, json!({})),
            tool(
                None,
                "run_shell",
                false,
                json!({"properties": {"command": {}}}),
            ),
        ];
        let d = decide(&tools, "Run the shell command: echo hi", false, None);
        assert!(matches!(d, Decision::Call { ref name, custom: true, .. } if name == "exec"));
        let d = decide(&tools[1..], "please echo hi", false, None);
        assert_eq!(
            d,
            Decision::Call {
                namespace: None,
                name: "run_shell".into(),
                input: json!({"command": "echo hi"}),
                custom: false
            }
        );
        assert_eq!(
            decide(&tools, "echo hi", true, None),
            Decision::Text(FINAL_TEXT.into())
        );
        assert_eq!(
            decide(&tools, "Say hello", false, None),
            Decision::Text(PLAIN_TEXT.into())
        );
    }

    #[test]
    fn schemas_are_filled() {
        let s = json!({"type": "object", "properties": {"city": {"type": "string"},
            "t": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(
            fill(&s),
            json!({"city": "Paris", "t": 21.5, "tags": ["Paris"]})
        );
    }
}
