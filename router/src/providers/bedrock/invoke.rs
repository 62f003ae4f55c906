//! Claude models on Bedrock through `InvokeModel` / `InvokeModelWithResponseStream`, which take
//! the Anthropic Messages body itself: an Anthropic Messages request is forwarded as the client
//! sent it, in Bedrock's envelope ([`anthropic::native::Envelope::Bedrock`]), and answered in
//! Messages. Streamed answers come as event-stream `chunk` frames whose `bytes` are the base64 of
//! one Messages event each. (Converse, which the translating path uses, would drop every field it
//! does not model.)

use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{Auth, event_stream, model_path, post, translate::exception_status};
use crate::providers::{
    AttemptError, Call, Native, NativeBody, Reply, WireFormat, anthropic,
    native::{EventStream, SseEvent},
    upstream,
};

/// Whether an upstream model id is a Claude model (`anthropic.claude-…`, also behind an inference
/// profile such as `us.anthropic.claude-…` or an ARN naming one).
pub fn is_anthropic(model: &str) -> bool {
    model.contains("anthropic.claude")
}

/// A native attempt: `original` forwarded to `InvokeModel`.
pub async fn chat(call: &Call<'_>, auth: &Auth, original: &Native) -> Result<Reply, AttemptError> {
    let body = anthropic::native::body(original, anthropic::native::Envelope::Bedrock);
    if !call.stream {
        let path = model_path(call.upstream_model, "invoke");
        let resp = post(call, auth, &path, body, "application/json").await?;
        let bytes = upstream::body(resp).await?;
        return Ok(Reply::Native(
            WireFormat::AnthropicMessages,
            NativeBody::Complete(bytes),
        ));
    }
    let path = model_path(call.upstream_model, "invoke-with-response-stream");
    let resp = post(
        call,
        auth,
        &path,
        body,
        "application/vnd.amazon.eventstream",
    )
    .await?;
    let events: EventStream = Box::pin(
        event_stream(resp)
            .filter_map(|ev| std::future::ready(ev.and_then(chunk_event).transpose())),
    );
    Ok(Reply::Native(
        WireFormat::AnthropicMessages,
        NativeBody::Stream(events),
    ))
}

#[derive(Deserialize)]
struct Chunk {
    bytes: String,
}

#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type", default)]
    kind: String,
}

/// The Messages event in one decoded event-stream message: a `chunk`'s base64 `bytes`, named
/// after its `type`; an exception is the attempt's error; other messages carry nothing.
pub fn chunk_event((event, payload): (String, String)) -> Result<Option<SseEvent>, AttemptError> {
    if let Some(exception) = event.strip_prefix("exception:") {
        return Err(AttemptError::Status {
            status: exception_status(exception),
            body: payload,
            retry_after: None,
        });
    }
    if event != "chunk" {
        return Ok(None);
    }
    let bad = |e: String| AttemptError::Protocol(format!("Bedrock sent a bad chunk: {e}"));
    let chunk: Chunk = serde_json::from_str(&payload).map_err(|e| bad(e.to_string()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(chunk.bytes.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let data = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
    let kind: Kind = serde_json::from_str(&data).map_err(|e| bad(e.to_string()))?;
    Ok(Some(SseEvent {
        event: kind.kind,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_to_named_messages_events() {
        let data =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let ev = chunk_event(("chunk".into(), format!(r#"{{"bytes":"{b64}"}}"#)))
            .unwrap()
            .unwrap();
        assert_eq!(ev.event, "content_block_delta");
        assert_eq!(ev.data, data);
        assert!(matches!(
            chunk_event((
                "exception:throttlingException".into(),
                r#"{"message":"slow down"}"#.into()
            )),
            Err(AttemptError::Status { status: 429, .. })
        ));
        assert!(
            chunk_event(("initial-response".into(), "{}".into()))
                .unwrap()
                .is_none()
        );
        assert!(
            [
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                "us.anthropic.claude-opus-4-1"
            ]
            .iter()
            .all(|m| is_anthropic(m))
        );
        assert!(!is_anthropic("amazon.nova-pro-v1:0"));
    }
}
