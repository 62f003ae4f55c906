//! The OpenAI Chat Completions side of the mock, as an OpenAI-compatible server (vLLM, Ollama)
//! writes it: no `system_fingerprint`, usage without details, usage in the last chunk of a stream
//! only when `stream_options.include_usage` asks for it.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Decision, OUTPUT_TOKENS, PLAIN_TEXT, ToolView, decide, input_tokens};

fn answer_text(body: &Value) -> (String, Vec<Value>) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let has_result = messages.last().is_some_and(|m| m["role"] == "tool");
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let tools: Vec<ToolView> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| ToolView {
            namespace: None,
            name: t["function"]["name"].as_str().unwrap_or("").to_string(),
            custom: false,
            schema: t["function"]["parameters"].clone(),
        })
        .collect();
    match decide(&tools, &user_text, has_result, None) {
        Decision::Text(t) => (t, vec![]),
        Decision::Call { name, input, .. } => (
            String::new(),
            vec![json!({"id": "call_mock1", "type": "function",
                        "function": {"name": name, "arguments": input.to_string()}})],
        ),
    }
}

/// Answers a chat completion request.
pub fn answer(body: &Value) -> Response {
    let (text, calls) = answer_text(body);
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let input = input_tokens(body);
    let usage = json!({"prompt_tokens": input, "completion_tokens": OUTPUT_TOKENS,
                       "total_tokens": input + OUTPUT_TOKENS});
    let head = json!({"id": "chatcmpl-mock", "created": 1_796_613_572, "model": body["model"]});
    if body["stream"] != true {
        let mut message = json!({"role": "assistant", "content": if calls.is_empty() { json!(text) } else { Value::Null }});
        if !calls.is_empty() {
            message["tool_calls"] = json!(calls);
        }
        let mut out = head;
        out["object"] = json!("chat.completion");
        out["choices"] = json!([{"index": 0, "message": message, "finish_reason": finish}]);
        out["usage"] = usage;
        return axum::Json(out).into_response();
    }
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = head.clone();
        c["object"] = json!("chat.completion.chunk");
        c["choices"] = choices;
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        format!("data: {c}\n\n")
    };
    let mut out = chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        None,
    );
    if calls.is_empty() {
        let text = if text.is_empty() {
            PLAIN_TEXT.to_string()
        } else {
            text
        };
        let (a, b) = text.split_at(text.len() / 2);
        for part in [a, b] {
            out.push_str(&chunk(
                json!([{"index": 0, "delta": {"content": part}, "finish_reason": null}]),
                None,
            ));
        }
    } else {
        let mut call = calls[0].clone();
        call["index"] = json!(0);
        out.push_str(&chunk(
            json!([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]),
            None,
        ));
    }
    out.push_str(&chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
        None,
    ));
    if body["stream_options"]["include_usage"] == true {
        out.push_str(&chunk(json!([]), Some(&usage)));
    }
    out.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], out).into_response()
}
