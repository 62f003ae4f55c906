//! The field table of docs/providers.md, as golden files: one Messages request carrying every
//! field Claude Code sends (and a server tool), and what each provider type receives for it —
//! forwarded as sent (Anthropic, Claude on Vertex AI and Bedrock, with their envelope and
//! headers), or mapped from the chat view (OpenAI-compatible, Azure, Gemini, Bedrock Converse)
//! with the fields that have no counterpart listed as dropped. The other way round, one OpenAI chat
//! request (`developer` role, a mid-conversation system message, `reasoning_effort`,
//! `response_format`) as Anthropic receives it. To re-record after an intended change, run with
//! `SWITCHBOARD_UPDATE_GOLDEN=1` and review the diff.

use std::path::PathBuf;

use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use switchboard_router::{
    ingress::messages::translate as messages,
    json::RawObject,
    providers::{
        Native, WireFormat,
        anthropic::{native, translate as anthropic},
        bedrock::translate as bedrock,
        gemini::translate as gemini,
        openai,
        openai_wire::ChatRequest,
    },
};

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/fields")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn check(expected: &str, got: &Value) {
    let got = serde_json::to_string_pretty(got).unwrap() + "\n";
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

/// Claude Code's request, with its `anthropic-beta` and `anthropic-version` and its key.
fn original() -> Native {
    let body = RawObject::parse(read("messages.anthropic.json").as_bytes()).unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "anthropic-beta",
        HeaderValue::from_static("claude-code-20250219,effort-2025-11-24"),
    );
    h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    h.insert(
        "x-api-key",
        HeaderValue::from_static("sk-client-never-forwarded"),
    );
    Native::new(WireFormat::AnthropicMessages, body, &h)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// What a native target receives: the headers forwarded and the body.
fn native_case(envelope: native::Envelope<'_>) -> Value {
    let n = original();
    let headers: serde_json::Map<String, Value> = native::headers(&n, envelope)
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"headers": headers, "body": json_of(&native::body(&n, envelope))})
}

/// The chat view of the request and what it left out.
fn chat_view() -> (RawObject, Vec<String>) {
    let view = messages::request(&original().body).unwrap();
    (view.body, view.dropped)
}

#[test]
fn anthropic_receives_the_request_as_sent() {
    check(
        "anthropic.expected.json",
        &native_case(native::Envelope::Api("claude-opus-5-5-20261101")),
    );
}

#[test]
fn claude_on_vertex_receives_it_in_vertexs_envelope() {
    check(
        "vertex-claude.expected.json",
        &native_case(native::Envelope::Vertex),
    );
}

#[test]
fn claude_on_bedrock_receives_it_in_invoke_models_envelope() {
    check(
        "bedrock-claude.expected.json",
        &native_case(native::Envelope::Bedrock),
    );
}

#[test]
fn openai_compatible_and_azure_receive_the_chat_view() {
    let (view, dropped) = chat_view();
    let body = json_of(&openai::upstream_body(&view, "gpt-x", true, Some(32768)));
    check(
        "openai.expected.json",
        &json!({"dropped": dropped, "body": body}),
    );
}

#[test]
fn gemini_receives_the_chat_view_translated() {
    let (view, dropped) = chat_view();
    let (body, _) = gemini::request(&ChatRequest::parse(&view).unwrap()).unwrap();
    check(
        "gemini.expected.json",
        &json!({"dropped": dropped, "body": body}),
    );
}

#[test]
fn bedrock_converse_receives_the_chat_view_translated() {
    let (view, dropped) = chat_view();
    let (body, _) = bedrock::request(&ChatRequest::parse(&view).unwrap(), Some(32000)).unwrap();
    check(
        "bedrock-converse.expected.json",
        &json!({"dropped": dropped, "body": body}),
    );
}

#[test]
fn anthropic_receives_an_openai_chat_request_translated() {
    let req = ChatRequest::parse(&RawObject::parse(read("chat.openai.json").as_bytes()).unwrap())
        .unwrap();
    let (body, _) = anthropic::request(
        &req,
        anthropic::Dialect::Api("claude-opus-5-5"),
        Some(64000),
        true,
    )
    .unwrap();
    check("chat-to-anthropic.expected.json", &body);
}
