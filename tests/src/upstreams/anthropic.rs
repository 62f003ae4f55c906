//! The Anthropic Messages side of the mock: the answer as a `message` or as Anthropic's event
//! sequence (`message_start`, `ping`, per block `content_block_start` / deltas /
//! `content_block_stop`, `message_delta` with the stop reason and usage, `message_stop`), each
//! with its `event:` line. A freeform tool reaches it as a gateway maps it (a function taking one
//! `input` string); a forced tool (`tool_choice: {"type": "tool"}`, how JSON output is emulated)
//! is called with arguments that fit its schema.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Decision, OUTPUT_TOKENS, THINKING_SIGNATURE, ToolView, decide, fill, input_tokens, sse,
};

fn tools_of(body: &Value) -> Vec<ToolView> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let schema = t["input_schema"].clone();
            let custom = schema["required"] == json!(["input"])
                && schema["properties"]["input"]["type"] == "string"
                && schema["properties"]
                    .as_object()
                    .is_some_and(|p| p.len() == 1);
            ToolView {
                namespace: None,
                name: t["name"].as_str().unwrap_or("").to_string(),
                custom,
                schema,
            }
        })
        .collect()
}

fn blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(b) => b.clone(),
        _ => vec![],
    }
}

/// The last user text, and whether the last user turn holds a tool result.
fn facts(body: &Value) -> (String, bool) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let user: Vec<Vec<Value>> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| blocks(&m["content"]))
        .collect();
    let has_result = user
        .last()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "tool_result"));
    let text = user
        .iter()
        .rev()
        .map(|b| {
            b.iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<String>()
        })
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    (text, has_result)
}

/// The content blocks and stop reason of the answer.
fn content(body: &Value) -> (Vec<Value>, &'static str) {
    let mut out = Vec::new();
    if matches!(
        body["thinking"]["type"].as_str(),
        Some("enabled" | "adaptive")
    ) {
        out.push(
            json!({"type": "thinking", "thinking": "Planning the answer.",
                        "signature": THINKING_SIGNATURE}),
        );
    }
    let tools = tools_of(body);
    if body["tool_choice"]["type"] == "tool" {
        let name = body["tool_choice"]["name"].as_str().unwrap_or("");
        let schema = tools
            .iter()
            .find(|t| t.name == name)
            .map_or(Value::Null, |t| t.schema.clone());
        out.push(json!({"type": "tool_use", "id": "toolu_mockjson", "name": name, "input": fill(&schema)}));
        return (out, "tool_use");
    }
    let (user_text, has_result) = facts(body);
    match decide(&tools, &user_text, has_result, None) {
        Decision::Text(t) => {
            out.push(json!({"type": "text", "text": t}));
            (out, "end_turn")
        }
        Decision::Call {
            name,
            input,
            custom,
            ..
        } => {
            let input = if custom {
                json!({ "input": input })
            } else {
                input
            };
            out.push(
                json!({"type": "tool_use", "id": "toolu_mock1", "name": name, "input": input}),
            );
            (out, "tool_use")
        }
    }
}

fn usage(body: &Value, output: u64) -> Value {
    json!({"input_tokens": input_tokens(body), "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": 0, "output_tokens": output})
}

/// Answers a Messages request.
pub fn answer(body: &Value) -> Response {
    let (blocks, stop) = content(body);
    let message = |content: Vec<Value>, stop: Value, output| {
        json!({"id": "msg_mock01", "type": "message", "role": "assistant", "model": body["model"],
               "content": content, "stop_reason": stop, "stop_sequence": null,
               "usage": usage(body, output)})
    };
    if body["stream"] != true {
        return axum::Json(message(blocks, json!(stop), OUTPUT_TOKENS)).into_response();
    }
    let mut ev: Vec<(String, Value)> = vec![
        (
            "message_start".into(),
            json!({"type": "message_start", "message": message(vec![], Value::Null, 1)}),
        ),
        ("ping".into(), json!({"type": "ping"})),
    ];
    for (i, b) in blocks.iter().enumerate() {
        let (start, deltas) = match b["type"].as_str().unwrap_or("") {
            "thinking" => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                vec![
                    json!({"type": "thinking_delta", "thinking": b["thinking"]}),
                    json!({"type": "signature_delta", "signature": b["signature"]}),
                ],
            ),
            "text" => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": b["text"]})],
            ),
            _ => (
                json!({"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}),
                vec![json!({"type": "input_json_delta", "partial_json": b["input"].to_string()})],
            ),
        };
        ev.push((
            "content_block_start".into(),
            json!({"type": "content_block_start", "index": i, "content_block": start}),
        ));
        for d in deltas {
            ev.push((
                "content_block_delta".into(),
                json!({"type": "content_block_delta", "index": i, "delta": d}),
            ));
        }
        ev.push((
            "content_block_stop".into(),
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    ev.push(("message_delta".into(), json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}})));
    ev.push(("message_stop".into(), json!({"type": "message_stop"})));
    sse(ev)
}
