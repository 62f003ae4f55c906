//! Golden tests of the Responses translation, both ways and per provider: a Responses request's
//! chat view (and each translating provider's request made from it), and each provider's answer
//! (through its own translator, as the pipeline runs it) as a `response` object and as the
//! Responses event stream. Fixtures are in `tests/golden/responses/` (requests from Codex CLI and
//! the Agents SDK, trimmed) and reuse the providers' upstream fixtures. To re-record after an
//! intended change, run with `SWITCHBOARD_UPDATE_GOLDEN=1` and review the diff. The schema test
//! (`tests/sdk_schemas.rs`) validates every expected answer here against the official SDKs.

use std::path::PathBuf;

use serde_json::{Map, Value};
use switchboard_router::{
    ingress::responses::{
        request::{ChatView, chat_view, input_items},
        response::{Context, answer_of, echo, response_object},
        stream::Stream,
    },
    json::RawObject,
    providers::{
        anthropic::translate as anthropic, bedrock::translate as bedrock,
        gemini::translate as gemini, openai_wire::ChatRequest, upstream::StreamTranslate,
    },
    streaming::sse::PayloadTranslator,
};

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Timestamps (`created_at`, `completed_at`, wherever they are) as 0: translators stamp the
/// time of translation.
fn timeless(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if matches!(k.as_str(), "created_at" | "completed_at") && x.is_number() {
                    *x = 0.into();
                } else {
                    timeless(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(timeless),
        _ => {}
    }
}

fn pretty(v: &Value) -> String {
    let mut v = v.clone();
    timeless(&mut v);
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn check(expected: &str, got: String) {
    if std::env::var("SWITCHBOARD_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(path(expected), &got).unwrap();
        return;
    }
    let want = read(expected);
    assert!(
        want == got,
        "{expected} differs (SWITCHBOARD_UPDATE_GOLDEN=1 re-records):\n--- expected\n{want}\n--- got\n{got}"
    );
}

fn request(name: &str) -> RawObject {
    RawObject::parse(read(&format!("responses/{name}.request.json")).as_bytes()).unwrap()
}

fn view(name: &str) -> ChatView {
    let body = request(name);
    let items = input_items(&body).unwrap();
    chat_view(&body, &items).unwrap()
}

fn chat_json(view: &ChatView) -> Value {
    serde_json::from_slice(&view.body.to_vec()).unwrap()
}

fn context(name: &str) -> Context {
    let body = request(name);
    let map: Map<String, Value> = serde_json::from_slice(&body.to_vec()).unwrap();
    Context {
        id: "resp_golden".into(),
        tools: view(name).tools,
        echo: echo(&map),
    }
}

// -------------------------------------------------------------------------------------------
// Request: Responses -> chat view -> each translating provider

#[test]
fn codex_default_request() {
    let v = view("codex-default");
    assert!(v.tools.dropped.is_empty());
    assert!(v.stream);
    check(
        "responses/codex-default.chat.expected.json",
        pretty(&chat_json(&v)),
    );
}

#[test]
fn codex_custom_model_request_drops_web_search() {
    let v = view("codex-custom-model");
    assert_eq!(v.tools.dropped, ["web_search"]);
    check(
        "responses/codex-custom-model.chat.expected.json",
        pretty(&chat_json(&v)),
    );
}

#[test]
fn structured_request() {
    let v = view("structured");
    assert_eq!(v.tools.dropped, ["file_search"]);
    assert!(!v.strict);
    check(
        "responses/structured.chat.expected.json",
        pretty(&chat_json(&v)),
    );
}

fn chat_request(name: &str) -> ChatRequest {
    ChatRequest::parse(&view(name).body).unwrap()
}

#[test]
fn codex_default_to_anthropic() {
    let (body, _) = anthropic::request(
        &chat_request("codex-default"),
        anthropic::Dialect::Api("claude-sonnet-4-5"),
        None,
        false,
    )
    .unwrap();
    check(
        "responses/codex-default.anthropic.expected.json",
        pretty(&body),
    );
}

#[test]
fn structured_to_anthropic() {
    let (body, _) = anthropic::request(
        &chat_request("structured"),
        anthropic::Dialect::Api("claude-sonnet-4-5"),
        None,
        false,
    )
    .unwrap();
    check(
        "responses/structured.anthropic.expected.json",
        pretty(&body),
    );
}

#[test]
fn codex_default_to_gemini() {
    let (body, _) = gemini::request(&chat_request("codex-default")).unwrap();
    check(
        "responses/codex-default.gemini.expected.json",
        pretty(&body),
    );
}

#[test]
fn codex_default_to_bedrock() {
    let (body, _) = bedrock::request(&chat_request("codex-default"), None).unwrap();
    check(
        "responses/codex-default.bedrock.expected.json",
        pretty(&body),
    );
}

// -------------------------------------------------------------------------------------------
// Response: each provider's answer -> chat -> Responses

fn response_of(chat: &str, ctx: &Context) -> Value {
    response_object(ctx, &answer_of(chat.as_bytes()).unwrap(), None)
}

#[test]
fn namespaced_and_custom_calls_map_back() {
    let r = response_of(
        &read("responses/tool-calls.chat.json"),
        &context("codex-default"),
    );
    let calls: Vec<(&str, &str, &str)> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] != "message" && i["type"] != "reasoning")
        .map(|i| {
            (
                i["type"].as_str().unwrap(),
                i["name"].as_str().unwrap(),
                i["namespace"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("custom_tool_call", "exec", "functions"),
            ("function_call", "wait", "functions")
        ]
    );
    check("responses/tool-calls.expected.json", pretty(&r));
}

#[test]
fn anthropic_response() {
    let c = anthropic::response(
        read("anthropic/response.upstream.json").as_bytes(),
        &anthropic::Hints::default(),
    )
    .unwrap();
    check(
        "responses/anthropic.response.expected.json",
        pretty(&response_of(&c.render(), &context("structured"))),
    );
}

#[test]
fn gemini_response() {
    let c = gemini::response(
        read("gemini/response.upstream.json").as_bytes(),
        &gemini::Hints::default(),
        "gemini-2.5-pro",
        "fixed",
    )
    .unwrap();
    check(
        "responses/gemini.response.expected.json",
        pretty(&response_of(&c.render(), &context("structured"))),
    );
}

#[test]
fn bedrock_response() {
    let c = bedrock::response(
        read("bedrock/response.upstream.json").as_bytes(),
        &bedrock::Hints::default(),
        "anthropic.claude-sonnet-4-5-v1:0",
        "gen-fixed",
    )
    .unwrap();
    check(
        "responses/bedrock.response.expected.json",
        pretty(&response_of(&c.render(), &context("structured"))),
    );
}

// -------------------------------------------------------------------------------------------
// Stream: each provider's events -> chat chunks -> Responses events

/// SSE text as `(event, data)` pairs.
fn sse(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut event = String::new();
            let mut data = String::new();
            for l in f.lines() {
                if let Some(e) = l.strip_prefix("event: ") {
                    event = e.into();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data = d.into();
                }
            }
            (event, data)
        })
        .collect()
}

/// The provider's events through its translator, then through the Responses stream.
fn responses_stream(tr: &mut dyn StreamTranslate, events: Vec<(String, String)>) -> String {
    let mut payloads = Vec::new();
    for (e, d) in events {
        payloads.extend(tr.on_event(&e, &d).unwrap());
    }
    payloads.extend(tr.on_end());
    let mut out = Stream::new(context("structured"));
    let frames: Vec<u8> = payloads
        .iter()
        .flat_map(|p| out.on_payload(p))
        .flat_map(|b| b.to_vec())
        .collect();
    sse(&String::from_utf8(frames).unwrap())
        .into_iter()
        .map(|(event, data)| {
            let mut v: Value = serde_json::from_str(&data).unwrap();
            timeless(&mut v);
            format!("event: {event}\ndata: {v}\n\n")
        })
        .collect()
}

#[test]
fn anthropic_stream() {
    let mut tr = anthropic::Stream::new(anthropic::Hints::default());
    check(
        "responses/anthropic.stream.expected.sse",
        responses_stream(&mut tr, sse(&read("anthropic/stream.upstream.sse"))),
    );
}

#[test]
fn gemini_stream() {
    let mut tr = gemini::Stream::new(gemini::Hints::default(), "gemini-2.5-pro", "fixed");
    check(
        "responses/gemini.stream.expected.sse",
        responses_stream(&mut tr, sse(&read("gemini/stream.upstream.sse"))),
    );
}

#[test]
fn bedrock_stream() {
    let events = read("bedrock/stream.upstream.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_string(),
                v["data"].to_string(),
            )
        })
        .collect();
    let mut tr = bedrock::Stream::new(
        bedrock::Hints::default(),
        "anthropic.claude-sonnet-4-5-v1:0",
        "gen-fixed",
    );
    check(
        "responses/bedrock.stream.expected.sse",
        responses_stream(&mut tr, events),
    );
}
