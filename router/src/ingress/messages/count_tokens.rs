//! `POST /v1/messages/count_tokens`: the input tokens of a Messages request. The model's route
//! is planned as for a generation; when its first target speaks Messages (Anthropic, Claude on
//! Vertex AI) the request is forwarded to its counting API as sent, model rewritten, and the count
//! comes back as it came. Otherwise, or when every such target fails, the answer is an estimate
//! from a real tokenizer ([`crate::tokens`]) over what the model reads (system prompt, messages,
//! tool definitions), marked by the `x-switchboard-token-count` header. Counting costs nothing
//! and reserves nothing; a refused request gets Anthropic's error shape.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue},
    response::Response,
};
use serde_json::{Value, json};

use super::{error_response, json_response};
use crate::{
    error::ApiError,
    ingress::intake::{authenticated_json, begin, tag_generation},
    json::RawObject,
    observability::access::Access,
    providers::{self, Call, EXTENSION_FIELDS, Native, WireFormat},
    routing::{attempts::Attempts, request::plan_request},
    state::AppState,
    tokens,
};

/// Says how a count was made when it is not the target's own: `estimate; tokenizer=o200k_base`.
pub const COUNT_HEADER: &str = "x-switchboard-token-count";

/// Handles a `count_tokens` request.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut access = begin(&state, "count_tokens", &headers);
    let generation_id = access.generation_id.clone();
    let mut response = match count(&state, &headers, body, &mut access).await {
        Ok(resp) => resp,
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            error_response(&e)
        }
    };
    access.finish_after_response();
    tag_generation(&mut response, &generation_id);
    response
}

/// The count: the first target's own when it has a counting API, else the estimate.
async fn count(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    access: &mut Access,
) -> Result<Response, ApiError> {
    let (caller, body) = authenticated_json(state, headers, body, access).await?;
    let plan = plan_request(state, &caller, &routing_view(&body)?, access)?;
    let original = Native::new(WireFormat::AnthropicMessages, body, headers);
    let mut attempts = Attempts::new(state, plan);
    while let Some((cand, slot)) = attempts.next(access).await {
        let call = Call {
            provider: &cand.provider,
            client: slot.client(),
            upstream_model: cand.upstream_model,
            request: &original.body,
            stream: false,
            first_token_timeout: std::time::Duration::from_millis(
                cand.provider.config.timeouts.total_ms,
            ),
            native: Some(&original),
        };
        match providers::count_tokens(call).await {
            Ok(Some(bytes)) => {
                attempts.succeeded(access, &cand, None, None);
                return Ok(json_response(bytes.into()));
            }
            // The primary target has no counting API: estimate for it.
            Ok(None) => break,
            Err(e) => attempts.failed(access, &cand, e)?,
        }
    }
    let mut resp = json_response(
        json!({"input_tokens": estimate(&original.body)})
            .to_string()
            .into(),
    );
    let how = format!("estimate; tokenizer={}", tokens::TOKENIZER);
    resp.headers_mut()
        .insert(COUNT_HEADER, HeaderValue::from_str(&how).expect("ASCII"));
    Ok(resp)
}

/// What routing reads of a `count_tokens` body (which has no `max_tokens`): its model, and
/// Switchboard's routing extensions.
fn routing_view(body: &RawObject) -> Result<RawObject, ApiError> {
    let model = body
        .get("model")
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_param("model", "`model` is required and must be a string"))?;
    let mut view = RawObject::default();
    view.set("model", &model);
    view.set("messages", &json!([{"role": "user", "content": ""}]));
    for name in EXTENSION_FIELDS {
        if let Some(v) = body.get(name) {
            view.set_raw(name, v.get().to_string());
        }
    }
    Ok(view)
}

/// Tokens a message's framing adds beyond its text (role markers), as chat templates do.
const PER_MESSAGE: u64 = 4;

/// The estimated input tokens of a Messages request: the text of the system prompt and of every
/// message (text, thinking, tool calls' JSON input, tool results), and each tool's name,
/// description and JSON schema, in [`tokens::TOKENIZER`]. Images are not counted.
pub fn estimate(body: &RawObject) -> u64 {
    let value = |name: &str| -> Value {
        body.get(name)
            .and_then(|v| serde_json::from_str(v.get()).ok())
            .unwrap_or(Value::Null)
    };
    let mut text = String::new();
    read(&value("system"), &mut text);
    let messages = value("messages");
    let turns = messages.as_array().map_or(0, Vec::len) as u64;
    read(&messages, &mut text);
    for tool in value("tools").as_array().into_iter().flatten() {
        for key in ["name", "description"] {
            if let Some(s) = tool.get(key).and_then(Value::as_str) {
                text.push_str(s);
                text.push('\n');
            }
        }
        if let Some(schema) = tool.get("input_schema") {
            text.push_str(&schema.to_string());
            text.push('\n');
        }
    }
    tokens::count(&text) + turns * PER_MESSAGE
}

/// Appends what the model reads of `v` (a system prompt, messages or content blocks) to `out`.
fn read(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| read(i, out)),
        Value::Object(o) => {
            for (k, v) in o {
                match k.as_str() {
                    "text" | "thinking" | "content" | "name" => read(v, out),
                    "input" => {
                        out.push_str(&v.to_string());
                        out.push('\n');
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_what_the_model_reads() {
        let body = RawObject::parse(
            br#"{"model":"m","system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":"hello"},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"a.txt"}]}],
            "tools":[{"name":"Bash","description":"Run a command","input_schema":{"type":"object"}}]}"#,
        )
        .unwrap();
        let text = "Be brief.\nhello\nBash\n{\"command\":\"ls\"}\na.txt\nBash\nRun a command\n{\"type\":\"object\"}\n";
        assert_eq!(estimate(&body), tokens::count(text) + 3 * PER_MESSAGE);
        let none = RawObject::parse(br#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(estimate(&none), 0);
    }
}
