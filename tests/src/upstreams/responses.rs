//! The OpenAI Responses side of the mock: tools from `tools` and from Codex's `additional_tools`
//! input items (namespaces flattened for the policy, calls answered with their `namespace`), and
//! the answer as a `response` object or as the event sequence OpenAI streams (`response.created`,
//! `response.in_progress`, per item `output_item.added`, its deltas and `.done` events,
//! `output_item.done`, then `response.completed` with usage).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Decision, OUTPUT_TOKENS, ToolView, decide, input_tokens, sse};

fn tools_of(body: &Value) -> Vec<ToolView> {
    let mut lists: Vec<&Value> = vec![&body["tools"]];
    for item in body["input"].as_array().into_iter().flatten() {
        if item["type"] == "additional_tools" {
            lists.push(&item["tools"]);
        }
    }
    let mut out = Vec::new();
    for tool in lists.into_iter().filter_map(Value::as_array).flatten() {
        collect(tool, None, &mut out);
    }
    out
}

fn collect(tool: &Value, namespace: Option<&str>, out: &mut Vec<ToolView>) {
    let name = tool["name"].as_str().unwrap_or("");
    match tool["type"].as_str().unwrap_or("") {
        "namespace" => {
            for inner in tool["tools"].as_array().into_iter().flatten() {
                collect(inner, Some(name), out);
            }
        }
        kind @ ("function" | "custom") => out.push(ToolView {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            custom: kind == "custom",
            schema: tool["parameters"].clone(),
        }),
        _ => {}
    }
}

fn text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The last user message's text, and whether a tool result follows it.
fn facts(body: &Value) -> (String, bool) {
    let items: Vec<Value> = match &body["input"] {
        Value::String(s) => vec![json!({"role": "user", "content": s})],
        Value::Array(items) => items.clone(),
        _ => vec![],
    };
    let last_user = items
        .iter()
        .rposition(|i| i["role"] == "user" && i["type"] != "additional_tools");
    let user_text = last_user
        .map(|i| text(&items[i]["content"]))
        .unwrap_or_default();
    let after = last_user.map_or(0, |i| i + 1);
    let has_result = items[after..].iter().any(|i| {
        matches!(
            i["type"].as_str(),
            Some("function_call_output" | "custom_tool_call_output")
        )
    });
    (user_text, has_result)
}

/// Output items of the answer, complete.
fn output(body: &Value) -> Vec<Value> {
    let (user_text, has_result) = facts(body);
    let schema = (body["text"]["format"]["type"] == "json_schema")
        .then(|| &body["text"]["format"]["schema"]);
    let mut items = Vec::new();
    let effort = body["reasoning"]["effort"].as_str();
    if effort.is_some_and(|e| e != "none") {
        items.push(json!({"id": "rs_mock1", "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "**Planning**\n\nDeciding what to do."}],
            "encrypted_content": "gAAAAABmockOpaqueReasoning=="}));
    }
    match decide(&tools_of(body), &user_text, has_result, schema) {
        Decision::Text(t) => items.push(json!({"id": "msg_mock1", "type": "message",
            "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]})),
        Decision::Call {
            namespace,
            name,
            input,
            custom,
        } => {
            let mut item = if custom {
                json!({"type": "custom_tool_call", "id": "ctc_mock1", "call_id": "call_mock1",
                       "name": name, "input": input.as_str().unwrap_or("")})
            } else {
                json!({"type": "function_call", "id": "fc_mock1", "call_id": "call_mock1",
                       "name": name, "arguments": input.to_string(), "status": "completed"})
            };
            if let Some(ns) = namespace {
                item["namespace"] = json!(ns);
            }
            items.push(item);
        }
    }
    items
}

/// The `response` object `id` with `output` and `status`.
fn response(body: &Value, id: &str, output: Vec<Value>, status: &str) -> Value {
    let usage = (status == "completed").then(|| {
        let input = input_tokens(body);
        json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": input + OUTPUT_TOKENS})
    });
    json!({
        "id": id, "object": "response", "created_at": 1_796_613_572,
        "status": status, "background": false,
        "completed_at": if status == "completed" { json!(1_796_613_573) } else { Value::Null },
        "error": null, "incomplete_details": null, "instructions": body["instructions"],
        "max_output_tokens": body["max_output_tokens"], "model": body["model"],
        "output": output, "parallel_tool_calls": body["parallel_tool_calls"].as_bool().unwrap_or(true),
        "previous_response_id": null, "reasoning": {"effort": body["reasoning"]["effort"], "summary": null},
        "service_tier": "default", "store": body["store"].as_bool().unwrap_or(true),
        "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": null,
        "metadata": {}
    })
}

/// The events of one complete item at `index`, after those of the items before it.
fn item_events(item: &Value, index: usize, events: &mut Vec<(String, Value)>) {
    let mut ev = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        events.push((kind.to_string(), data));
    };
    let id = item["id"].clone();
    let mut added = item.clone();
    match item["type"].as_str().unwrap_or("") {
        "message" => {
            added["status"] = json!("in_progress");
            added["content"] = json!([]);
            ev(
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            let part = &item["content"][0];
            let text = part["text"].as_str().unwrap_or("");
            ev(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            );
            let mid = text
                .char_indices()
                .nth(text.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for delta in [&text[..mid], &text[mid..]] {
                ev(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index,
                    "content_index": 0, "delta": delta, "logprobs": []}),
                );
            }
            ev(
                "response.output_text.done",
                json!({"item_id": id, "output_index": index,
                "content_index": 0, "text": text, "logprobs": []}),
            );
            ev(
                "response.content_part.done",
                json!({"item_id": id, "output_index": index,
                "content_index": 0, "part": part}),
            );
        }
        "reasoning" => {
            added["summary"] = json!([]);
            ev(
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            let summary = item["summary"][0]["text"].clone();
            ev(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": index,
                "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
            );
            ev(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": index,
                "summary_index": 0, "delta": summary}),
            );
            ev(
                "response.reasoning_summary_text.done",
                json!({"item_id": id, "output_index": index,
                "summary_index": 0, "text": summary}),
            );
            ev(
                "response.reasoning_summary_part.done",
                json!({"item_id": id, "output_index": index,
                "summary_index": 0, "part": {"type": "summary_text", "text": summary}}),
            );
        }
        "custom_tool_call" => {
            added["input"] = json!("");
            ev(
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            ev(
                "response.custom_tool_call_input.delta",
                json!({"item_id": id, "output_index": index,
                "delta": item["input"]}),
            );
            ev(
                "response.custom_tool_call_input.done",
                json!({"item_id": id, "output_index": index,
                "input": item["input"]}),
            );
        }
        _ => {
            added["arguments"] = json!("");
            added["status"] = json!("in_progress");
            ev(
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            ev(
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": index,
                "delta": item["arguments"]}),
            );
            ev(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": index,
                "arguments": item["arguments"]}),
            );
        }
    }
    ev(
        "response.output_item.done",
        json!({"output_index": index, "item": item}),
    );
}

/// Answers a Responses request; each answer has its own id (`resp_mock<n>`).
pub fn answer(body: &Value) -> Response {
    static ANSWERS: AtomicU64 = AtomicU64::new(0);
    let id = format!("resp_mock{:06}", ANSWERS.fetch_add(1, Ordering::SeqCst));
    let out = output(body);
    if body["stream"] != true {
        return axum::Json(response(body, &id, out, "completed")).into_response();
    }
    let opening = response(body, &id, vec![], "in_progress");
    let mut events = vec![
        (
            "response.created".to_string(),
            json!({"type": "response.created", "response": opening}),
        ),
        (
            "response.in_progress".to_string(),
            json!({"type": "response.in_progress", "response": opening}),
        ),
    ];
    for (i, item) in out.iter().enumerate() {
        item_events(item, i, &mut events);
    }
    events.push((
        "response.completed".into(),
        json!({"type": "response.completed", "response": response(body, &id, out, "completed")}),
    ));
    for (n, (_, data)) in events.iter_mut().enumerate() {
        data["sequence_number"] = json!(n);
    }
    sse(events)
}
