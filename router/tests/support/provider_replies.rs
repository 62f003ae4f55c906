//! What each mock upstream answers, in its vendor's wire format: Anthropic messages and events,
//! Gemini responses and chunks, Bedrock Converse responses and eventstream frames, Azure OpenAI
//! completions and chunks. The decisions (what to answer) are the parent's.

use super::*;

// ---------------------------------------------------------------------------------------------
// Anthropic

pub(super) const ANTHROPIC_USAGE_IN: u64 = 12;

pub(super) fn anthropic_blocks(a: &Answer, f: &Facts) -> (Vec<Value>, &'static str) {
    match a {
        Answer::Text { thinking, text } => {
            let mut blocks = vec![];
            if *thinking {
                blocks.push(json!({"type": "thinking", "thinking": "The user greets me.", "signature": SIGNATURE}));
            }
            blocks.push(json!({"type": "text", "text": text}));
            (blocks, "end_turn")
        }
        Answer::Call { name, args } => (
            vec![
                json!({"type": "text", "text": "Let me check."}),
                json!({"type": "tool_use", "id": "toolu_01A", "name": name, "input": args}),
            ],
            "tool_use",
        ),
        Answer::Json(v) => (
            vec![
                json!({"type": "tool_use", "id": "toolu_01J", "name": f.json_tool.clone().unwrap_or_default(), "input": v}),
            ],
            "tool_use",
        ),
    }
}

pub(super) fn anthropic_message(a: &Answer, f: &Facts) -> Value {
    let (content, stop) = anthropic_blocks(a, f);
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": if f.model.is_empty() { "claude-vertex" } else { &f.model }, "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": ANTHROPIC_USAGE_IN, "cache_creation_input_tokens": 100,
                  "cache_read_input_tokens": 200, "output_tokens": 30}
    })
}

pub(super) fn anthropic_events(a: &Answer, f: &Facts) -> Vec<(Option<&'static str>, Value)> {
    let (content, stop) = anthropic_blocks(a, f);
    let mut ev = vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {
            "id": "msg_01Stream", "type": "message", "role": "assistant", "content": [],
            "model": f.model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": ANTHROPIC_USAGE_IN, "cache_creation_input_tokens": 100,
                      "cache_read_input_tokens": 200, "output_tokens": 1}}}),
        ),
        (Some("ping"), json!({"type": "ping"})),
    ];
    for (i, b) in content.iter().enumerate() {
        match b["type"].as_str().unwrap() {
            "thinking" => {
                ev.push((Some("content_block_start"), json!({"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
                ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": b["thinking"]}})));
                ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": SIGNATURE}})));
            }
            "text" => {
                ev.push((Some("content_block_start"), json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
                let text = b["text"].as_str().unwrap();
                let (x, y) = text.split_at(text.len() / 2);
                for part in [x, y] {
                    ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": part}})));
                }
            }
            _ => {
                ev.push((Some("content_block_start"), json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})));
                let input = b["input"].to_string();
                let (x, y) = input.split_at(input.len() / 2);
                for part in ["", x, y] {
                    ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": part}})));
                }
            }
        }
        ev.push((
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    ev.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 30}})));
    ev.push((Some("message_stop"), json!({"type": "message_stop"})));
    ev
}

// ---------------------------------------------------------------------------------------------
// Gemini

pub(super) fn gemini_parts(a: &Answer) -> (Vec<Value>, &'static str) {
    match a {
        Answer::Text { thinking, text } => {
            let mut parts = vec![];
            if *thinking {
                parts.push(json!({"text": "The user greets me.", "thought": true}));
            }
            let mut t = json!({"text": text});
            if *thinking {
                t["thoughtSignature"] = json!(SIGNATURE);
            }
            parts.push(t);
            (parts, "STOP")
        }
        Answer::Call { name, args } => (
            vec![
                json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": SIGNATURE}),
            ],
            "STOP",
        ),
        Answer::Json(v) => (vec![json!({"text": v.to_string()})], "STOP"),
    }
}

pub(super) fn gemini_usage() -> Value {
    json!({"promptTokenCount": 312, "candidatesTokenCount": 20, "totalTokenCount": 342,
           "cachedContentTokenCount": 200, "thoughtsTokenCount": 10})
}

pub(super) fn gemini_response(a: &Answer) -> Value {
    let (parts, finish) = gemini_parts(a);
    json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
           "usageMetadata": gemini_usage(), "modelVersion": "gemini-2.5-flash", "responseId": "resp-gm-1"})
}

pub(super) fn gemini_chunks(a: &Answer) -> Vec<(Option<&'static str>, Value)> {
    let (parts, finish) = gemini_parts(a);
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}],
                               "modelVersion": "gemini-2.5-flash", "responseId": "resp-gm-s"});
            if i + 1 == n {
                c["candidates"][0]["finishReason"] = json!(finish);
                c["usageMetadata"] = gemini_usage();
            }
            (None, c)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bedrock

pub(super) fn bedrock_blocks(a: &Answer, json_tool: Option<&str>) -> (Vec<Value>, &'static str) {
    match a {
        Answer::Text { thinking, text } => {
            let mut b = vec![];
            if *thinking {
                b.push(json!({"reasoningContent": {"reasoningText": {"text": "The user greets me.", "signature": SIGNATURE}}}));
            }
            b.push(json!({"text": text}));
            (b, "end_turn")
        }
        Answer::Call { name, args } => (
            vec![json!({"toolUse": {"toolUseId": "tooluse_01B", "name": name, "input": args}})],
            "tool_use",
        ),
        Answer::Json(v) => (
            vec![
                json!({"toolUse": {"toolUseId": "tooluse_01J", "name": json_tool.unwrap_or("json_response"), "input": v}}),
            ],
            "tool_use",
        ),
    }
}

pub(super) fn bedrock_usage() -> Value {
    json!({"inputTokens": 12, "outputTokens": 30, "totalTokens": 342,
           "cacheReadInputTokens": 200, "cacheWriteInputTokens": 100})
}

pub(super) fn bedrock_response(a: &Answer, f: &Facts) -> Value {
    let (content, stop) = bedrock_blocks(a, f.json_tool.as_deref());
    json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
           "usage": bedrock_usage(), "metrics": {"latencyMs": 120}})
}

pub(super) fn bedrock_events(a: &Answer, f: &Facts) -> Vec<(String, Value)> {
    let (content, stop) = bedrock_blocks(a, f.json_tool.as_deref());
    let mut ev = vec![(
        "messageStart".to_string(),
        json!({"role": "assistant", "p": "abc"}),
    )];
    for (i, b) in content.iter().enumerate() {
        if let Some(tu) = b.get("toolUse") {
            ev.push(("contentBlockStart".into(), json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}})));
            let input = tu["input"].to_string();
            let (x, y) = input.split_at(input.len() / 2);
            for part in [x, y] {
                ev.push((
                    "contentBlockDelta".into(),
                    json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": part}}}),
                ));
            }
        } else if let Some(rc) = b.get("reasoningContent") {
            ev.push(("contentBlockDelta".into(), json!({"contentBlockIndex": i, "delta": {"reasoningContent": {"text": rc["reasoningText"]["text"]}}})));
            ev.push(("contentBlockDelta".into(), json!({"contentBlockIndex": i, "delta": {"reasoningContent": {"signature": SIGNATURE}}})));
        } else {
            let text = b["text"].as_str().unwrap();
            let (x, y) = text.split_at(text.len() / 2);
            for part in [x, y] {
                ev.push((
                    "contentBlockDelta".into(),
                    json!({"contentBlockIndex": i, "delta": {"text": part}}),
                ));
            }
        }
        ev.push(("contentBlockStop".into(), json!({"contentBlockIndex": i})));
    }
    ev.push(("messageStop".into(), json!({"stopReason": stop})));
    ev.push((
        "metadata".into(),
        json!({"usage": bedrock_usage(), "metrics": {"latencyMs": 120}}),
    ));
    ev
}

/// One `application/vnd.amazon.eventstream` message.
pub fn eventstream_frame(event: &str, payload: &Value) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let m = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut buf = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut buf).unwrap();
    buf
}

pub(super) fn eventstream(events: Vec<(String, Value)>) -> Response {
    let body: Vec<u8> = events
        .iter()
        .flat_map(|(e, p)| eventstream_frame(e, p))
        .collect();
    // Split mid-frame on purpose: the router must reassemble frames across reads.
    let (a, b) = body.split_at(body.len() / 3);
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::copy_from_slice(a)), Ok(Bytes::copy_from_slice(b))];
    let stream = futures_util::stream::iter(chunks);
    (
        [("content-type", "application/vnd.amazon.eventstream")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Azure OpenAI

pub(super) fn azure_completion(a: &Answer) -> Value {
    let (message, finish) = match a {
        Answer::Text { text, .. } => (json!({"role": "assistant", "content": text}), "stop"),
        Answer::Call { name, args } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_az1", "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
            "tool_calls",
        ),
        Answer::Json(v) => (
            json!({"role": "assistant", "content": v.to_string()}),
            "stop",
        ),
    };
    json!({"id": "chatcmpl-az", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-11-20",
           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
           "choices": [{"index": 0, "message": message, "finish_reason": finish, "content_filter_results": {}}],
           "usage": {"prompt_tokens": 312, "completion_tokens": 20, "total_tokens": 332,
                     "prompt_tokens_details": {"cached_tokens": 200}, "completion_tokens_details": {"reasoning_tokens": 0}}})
}

pub(super) fn azure_chunks(a: &Answer) -> Vec<(Option<&'static str>, Value)> {
    let base = |choices: Value| json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-2024-11-20", "choices": choices});
    let mut out = vec![(
        None,
        json!({"id": "", "object": "", "created": 0, "model": "", "choices": [], "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
    )];
    match a {
        Answer::Call { name, args } => {
            out.push((None, base(json!([{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_az1", "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]))));
            out.push((None, base(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args.to_string()}}]}, "finish_reason": null}]))));
            out.push((
                None,
                base(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
            ));
        }
        other => {
            let text = match other {
                Answer::Text { text, .. } => text.clone(),
                Answer::Json(v) => v.to_string(),
                Answer::Call { .. } => unreachable!(),
            };
            out.push((None, base(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]))));
            out.push((
                None,
                base(json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}])),
            ));
            out.push((
                None,
                base(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
            ));
        }
    }
    let mut usage = base(json!([]));
    usage["usage"] = json!({"prompt_tokens": 312, "completion_tokens": 20, "total_tokens": 332, "prompt_tokens_details": {"cached_tokens": 200}});
    out.push((None, usage));
    out.push((None, json!("[DONE]")));
    out
}
