//! Mock upstreams for the translated wire formats, written from each provider's public API
//! reference: Anthropic Messages (JSON and SSE events), Gemini generateContent (JSON and
//! `alt=sse`), Bedrock Converse / ConverseStream (`application/vnd.amazon.eventstream` frames),
//! Azure OpenAI deployments, and Vertex AI (both publishers, plus its OAuth2 token endpoint).
//!
//! Every mock answers like a small model would: a request carrying a tool result gets the final
//! answer; a request offering tools gets a call of the first tool; a request forcing a JSON
//! schema (natively or through an emulating tool) gets a JSON object; otherwise a greeting,
//! preceded by a signed thinking block when reasoning was asked for. Usage always reports cache
//! reads and writes. Magic upstream model names inject each provider's documented errors:
//! `rate-limited`, `overloaded`, `too-long`, and any request with the wrong key gets the auth
//! error.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use serde_json::{Value, json};

/// The key every mock expects (Anthropic, Gemini, Azure) — tests assert it never leaks.
pub const PROVIDER_KEY: &str = "sk-provider-SECRET-abcdef0123456789";
/// The thinking signature the mocks attach; must come back on the next turn.
pub const SIGNATURE: &str = "sig-EqQBCkYIARgCIkDmock";
/// The access token the Vertex mock's token endpoint issues.
pub const VERTEX_TOKEN: &str = "ya29.mock-access-token";

/// Which wire format a mock speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wire {
    Anthropic,
    Gemini,
    Bedrock,
    Azure,
    /// Plain OpenAI Chat Completions (`openaiCompatible`), the Azure mock's answers with a bearer key.
    OpenAi,
}

/// A request a mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

#[derive(Clone)]
struct St {
    wire: Wire,
    seen: Arc<Mutex<Vec<Seen>>>,
    token_requests: Arc<Mutex<Vec<String>>>,
}

/// A running provider mock.
pub struct ProviderMock {
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    token_requests: Arc<Mutex<Vec<String>>>,
}

impl ProviderMock {
    pub async fn start(wire: Wire) -> ProviderMock {
        let st = St {
            wire,
            seen: Arc::default(),
            token_requests: Arc::default(),
        };
        let app = Router::new()
            .route("/token", post(token))
            .fallback(post(answer))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        ProviderMock {
            addr,
            seen: st.seen,
            token_requests: st.token_requests,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("a request reached the mock")
    }

    /// Form bodies posted to `/token`.
    pub fn token_requests(&self) -> Vec<String> {
        self.token_requests.lock().unwrap().clone()
    }
}

async fn token(State(st): State<St>, body: String) -> Response {
    st.token_requests.lock().unwrap().push(body.clone());
    if !body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
        || !body.contains("assertion=")
    {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant"}).to_string(),
        )
            .into_response();
    }
    axum::Json(json!({"access_token": VERTEX_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

/// What the mock model decided to answer.
enum Answer {
    Text { thinking: bool, text: String },
    Call { name: String, args: Value },
    Json(Value),
}

/// Provider-neutral facts about a request.
struct Facts {
    has_tool_result: bool,
    first_tool: Option<String>,
    json_tool: Option<String>,
    json_native: bool,
    thinking: bool,
    has_image: bool,
    stream: bool,
    model: String,
}

fn facts(wire: Wire, path: &str, b: &Value) -> Facts {
    let raw = b.to_string();
    match wire {
        Wire::Anthropic => {
            let forced = b["tool_choice"]["type"] == "tool";
            Facts {
                has_tool_result: raw.contains("\"tool_result\""),
                first_tool: b["tools"][0]["name"].as_str().map(str::to_string),
                json_tool: forced
                    .then(|| b["tool_choice"]["name"].as_str().map(str::to_string))
                    .flatten(),
                json_native: false,
                thinking: ["enabled", "adaptive"]
                    .contains(&b["thinking"]["type"].as_str().unwrap_or("")),
                has_image: raw.contains("\"image\""),
                stream: b["stream"] == true
                    || path.contains("streamRawPredict")
                    || path.ends_with("/invoke-with-response-stream"),
                model: b["model"].as_str().unwrap_or("").to_string(),
            }
        }
        Wire::Gemini => Facts {
            has_tool_result: raw.contains("functionResponse"),
            first_tool: b["tools"][0]["functionDeclarations"][0]["name"]
                .as_str()
                .map(str::to_string),
            json_tool: None,
            json_native: b["generationConfig"]["responseMimeType"] == "application/json",
            thinking: b["generationConfig"]["thinkingConfig"]["includeThoughts"] == true,
            has_image: raw.contains("inlineData") || raw.contains("fileData"),
            stream: path.contains("streamGenerateContent"),
            model: path.to_string(),
        },
        Wire::Bedrock => Facts {
            has_tool_result: raw.contains("toolResult"),
            first_tool: b["toolConfig"]["tools"][0]["toolSpec"]["name"]
                .as_str()
                .map(str::to_string),
            json_tool: b["toolConfig"]["toolChoice"]["tool"]["name"]
                .as_str()
                .map(str::to_string),
            json_native: false,
            thinking: b["additionalModelRequestFields"]["thinking"]["type"] == "enabled",
            has_image: raw.contains("\"image\""),
            stream: path.ends_with("converse-stream"),
            model: path.to_string(),
        },
        Wire::Azure | Wire::OpenAi => Facts {
            has_tool_result: raw.contains("\"tool\""),
            first_tool: b["tools"][0]["function"]["name"]
                .as_str()
                .map(str::to_string),
            json_tool: None,
            json_native: b["response_format"]["type"] == "json_schema",
            thinking: false,
            has_image: raw.contains("image_url"),
            stream: b["stream"] == true,
            // Azure names the deployment in the path, OpenAI the model in the body.
            model: format!("{path} {}", b["model"].as_str().unwrap_or("")),
        },
    }
}

fn decide(f: &Facts) -> Answer {
    if f.has_tool_result {
        Answer::Text {
            thinking: false,
            text: "It is sunny in Paris.".into(),
        }
    } else if f.json_tool.is_some() || f.json_native {
        Answer::Json(json!({"city": "Paris", "temperature_c": 21}))
    } else if let Some(name) = &f.first_tool {
        Answer::Call {
            name: name.clone(),
            args: json!({"city": "Paris"}),
        }
    } else {
        Answer::Text {
            thinking: f.thinking,
            text: if f.has_image {
                "I see a red square.".into()
            } else {
                "Hello there!".into()
            },
        }
    }
}

fn authorised(wire: Wire, h: &HeaderMap, path: &str) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if path.contains("/projects/") {
        return get("authorization") == format!("Bearer {VERTEX_TOKEN}");
    }
    match wire {
        Wire::Anthropic => {
            get("x-api-key") == PROVIDER_KEY && get("anthropic-version") == "2023-06-01"
        }
        Wire::Gemini => get("x-goog-api-key") == PROVIDER_KEY,
        Wire::Azure => get("api-key") == PROVIDER_KEY,
        Wire::OpenAi => get("authorization") == format!("Bearer {PROVIDER_KEY}"),
        Wire::Bedrock => {
            let auth = get("authorization");
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDMOCK/")
                && auth.contains("/bedrock/aws4_request")
                && !get("x-amz-date").is_empty()
        }
    }
}

/// The documented error bodies, by provider and kind.
fn error(wire: Wire, kind: &str) -> Response {
    let (status, body, headers): (u16, Value, Vec<(&str, &str)>) = match (wire, kind) {
        (Wire::Anthropic, "auth") => (
            401,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            vec![],
        ),
        (Wire::Anthropic, "rate-limited") => (
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
            vec![("retry-after", "7")],
        ),
        (Wire::Anthropic, "overloaded") => (
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            vec![],
        ),
        (Wire::Anthropic, _) => (
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 212345 tokens > 200000 maximum"}}),
            vec![],
        ),
        (Wire::Gemini, "auth") => (
            400,
            json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}),
            vec![],
        ),
        (Wire::Gemini, "rate-limited") => (
            429,
            json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}),
            vec![],
        ),
        (Wire::Gemini, "overloaded") => (
            503,
            json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
            vec![],
        ),
        (Wire::Gemini, _) => (
            400,
            json!({"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}),
            vec![],
        ),
        (Wire::Bedrock, "auth") => (
            403,
            json!({"message": "The security token included in the request is invalid."}),
            vec![(
                "x-amzn-errortype",
                "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/",
            )],
        ),
        (Wire::Bedrock, "rate-limited") => (
            429,
            json!({"message": "Too many requests, please wait before trying again."}),
            vec![(
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )],
        ),
        (Wire::Bedrock, "overloaded") => (
            503,
            json!({"message": "Bedrock is unable to process your request."}),
            vec![(
                "x-amzn-errortype",
                "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )],
        ),
        (Wire::Bedrock, _) => (
            400,
            json!({"message": "Input is too long for requested model."}),
            vec![(
                "x-amzn-errortype",
                "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )],
        ),
        (Wire::Azure | Wire::OpenAi, "auth") => (
            401,
            json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}),
            vec![],
        ),
        (Wire::Azure | Wire::OpenAi, "rate-limited") => (
            429,
            json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded call rate limit."}}),
            vec![("retry-after", "3")],
        ),
        (Wire::Azure | Wire::OpenAi, "overloaded") => (
            503,
            json!({"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unable to process your request."}}),
            vec![],
        ),
        (Wire::Azure | Wire::OpenAi, _) => (
            400,
            json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
            vec![],
        ),
    };
    let mut resp = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn answer(State(st): State<St>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let raw = String::from_utf8_lossy(&body).into_owned();
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers.clone(),
        body: b.clone(),
        raw,
    });
    // Vertex's Anthropic publisher speaks the Anthropic format at a Google path, and so do
    // Bedrock's Claude models through InvokeModel.
    let claude_on_bedrock = st.wire == Wire::Bedrock
        && path.contains("anthropic.claude")
        && (path.ends_with("/invoke") || path.ends_with("/invoke-with-response-stream"));
    let wire = if path.contains("/publishers/anthropic/") || claude_on_bedrock {
        Wire::Anthropic
    } else if path.contains("/publishers/google/") {
        Wire::Gemini
    } else {
        st.wire
    };
    if !authorised(st.wire, &headers, &path) {
        let presented = ["x-api-key", "x-goog-api-key", "api-key", "authorization"]
            .iter()
            .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .collect::<Vec<_>>()
            .join(" ");
        let resp = error(wire, "auth");
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&body).replace(
            "\"message\":\"",
            &format!("\"message\":\"(presented: {presented}) "),
        );
        return Response::from_parts(parts, axum::body::Body::from(text));
    }
    if path.ends_with("/messages/count_tokens") || path.ends_with("count-tokens:rawPredict") {
        return axum::Json(json!({"input_tokens": 4242})).into_response();
    }
    let f = facts(wire, &path, &b);
    for kind in ["rate-limited", "overloaded", "too-long"] {
        if f.model.contains(kind) {
            return error(wire, kind);
        }
    }
    if path.ends_with(":batchEmbedContents") {
        let n = b["requests"].as_array().map_or(0, Vec::len);
        let embeddings: Vec<Value> = (0..n)
            .map(|i| json!({"values": [0.1 * (i as f64 + 1.0), 0.2, 0.3]}))
            .collect();
        return axum::Json(json!({"embeddings": embeddings})).into_response();
    }
    if path.ends_with(":predict") {
        let predictions: Vec<Value> = b["instances"].as_array().unwrap_or(&vec![]).iter().map(|_| json!({"embeddings": {"values": [0.3, 0.4], "statistics": {"token_count": 2.0, "truncated": false}}})).collect();
        return axum::Json(json!({"predictions": predictions})).into_response();
    }
    if claude_on_bedrock {
        let a = decide(&f);
        if !path.ends_with("/invoke-with-response-stream") {
            return axum::Json(anthropic_message(&a, &f)).into_response();
        }
        let chunks = anthropic_events(&a, &f)
            .into_iter()
            .map(|(_, data)| {
                let bytes = base64::engine::general_purpose::STANDARD.encode(data.to_string());
                ("chunk".to_string(), json!({"bytes": bytes}))
            })
            .collect();
        return eventstream(chunks);
    }
    if path.ends_with("/invoke") {
        return axum::Json(json!({"embedding": [0.5, 0.25, 0.125], "inputTextTokenCount": 4}))
            .into_response();
    }
    if path.ends_with("/embeddings") {
        return axum::Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 3, "total_tokens": 3}})).into_response();
    }
    let a = decide(&f);
    match (wire, f.stream) {
        (Wire::Anthropic, false) => axum::Json(anthropic_message(&a, &f)).into_response(),
        (Wire::Anthropic, true) => sse(anthropic_events(&a, &f)),
        (Wire::Gemini, false) => axum::Json(gemini_response(&a)).into_response(),
        (Wire::Gemini, true) => sse(gemini_chunks(&a)),
        (Wire::Bedrock, false) => axum::Json(bedrock_response(&a, &f)).into_response(),
        (Wire::Bedrock, true) => eventstream(bedrock_events(&a, &f)),
        (Wire::Azure | Wire::OpenAi, false) => axum::Json(azure_completion(&a)).into_response(),
        (Wire::Azure | Wire::OpenAi, true) => sse(azure_chunks(&a)),
    }
}

fn sse(events: Vec<(Option<&'static str>, Value)>) -> Response {
    let mut out = String::new();
    for (name, data) in events {
        if let Some(n) = name {
            out.push_str(&format!("event: {n}\n"));
        }
        if data == json!("[DONE]") {
            out.push_str("data: [DONE]\n\n");
        } else {
            out.push_str(&format!("data: {data}\n\n"));
        }
    }
    ([("content-type", "text/event-stream")], out).into_response()
}

#[path = "provider_replies.rs"]
mod replies;
use replies::*;
