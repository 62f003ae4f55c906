//! Forwarding an Anthropic Messages request as the client sent it, to every upstream that speaks
//! Messages: api.anthropic.com, Vertex AI's `publishers/anthropic` models (`rawPredict`) and
//! Bedrock's Claude models (`InvokeModel`). Only the model is rewritten — set in the body, or
//! moved to the URL with the vendor's envelope — and Switchboard's extension fields stripped;
//! every other field (thinking modes, `output_config`, `context_management`, `cache_control`, tool
//! flags, mid-conversation system messages, fields added after this was written) goes as sent.
//! The client's `anthropic-beta` and `anthropic-version` headers go along (Bedrock takes the betas
//! in the body, as Anthropic's own Bedrock client sends them). Pure but for [`events`].

use futures_util::StreamExt;

use super::API_VERSION;
use crate::providers::{
    native::{EventStream, Native, SseEvent},
    upstream,
};

/// `anthropic_version` in Vertex AI request bodies.
pub const VERTEX_VERSION: &str = "vertex-2023-10-16";
/// `anthropic_version` in Bedrock `InvokeModel` bodies.
pub const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// Where a native Messages request goes.
#[derive(Debug, Clone, Copy)]
pub enum Envelope<'a> {
    /// api.anthropic.com (or a compatible base URL): `model` in the body, the version and betas
    /// as headers.
    Api(&'a str),
    /// Vertex AI `rawPredict`: the model in the URL, `anthropic_version: vertex-2023-10-16` in the
    /// body, betas as a header.
    Vertex,
    /// Bedrock `InvokeModel`: the model and the streaming choice in the URL,
    /// `anthropic_version: bedrock-2023-05-31` and `anthropic_beta` (a list) in the body.
    Bedrock,
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The body to send for `native` in `envelope`.
pub fn body(native: &Native, envelope: Envelope<'_>) -> Vec<u8> {
    match envelope {
        Envelope::Api(model) => native.forward(&[("model", Some(json_string(model)))]),
        Envelope::Vertex => native.forward(&[
            ("model", None),
            ("anthropic_version", Some(json_string(VERTEX_VERSION))),
        ]),
        Envelope::Bedrock => {
            let betas: Vec<&str> = native
                .header("anthropic-beta")
                .map(|b| {
                    b.split(',')
                        .map(str::trim)
                        .filter(|b| !b.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let betas = (!betas.is_empty())
                .then(|| serde_json::to_string(&betas).expect("strings serialise"));
            native.forward(&[
                ("model", None),
                ("stream", None),
                ("anthropic_version", Some(json_string(BEDROCK_VERSION))),
                ("anthropic_beta", betas),
            ])
        }
    }
}

/// The client headers to send with `native` in `envelope`: `anthropic-version` (the client's,
/// else the router's) to api.anthropic.com, and the client's `anthropic-beta` to Anthropic and
/// Vertex AI.
pub fn headers(native: &Native, envelope: Envelope<'_>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Envelope::Api(_) = envelope {
        let version = native.header("anthropic-version").unwrap_or(API_VERSION);
        out.push(("anthropic-version", version.to_string()));
    }
    if !matches!(envelope, Envelope::Bedrock)
        && let Some(betas) = native.header("anthropic-beta")
    {
        out.push(("anthropic-beta", betas.to_string()));
    }
    out
}

/// The SSE events of a Messages stream, as they came.
pub fn events(resp: reqwest::Response) -> EventStream {
    Box::pin(
        upstream::sse_events(resp)
            .map(|ev| ev.map(|(event, data)| SseEvent { event, data }))
            .filter(|ev| {
                // Comments and keep-alive lines without data are not events.
                std::future::ready(!matches!(ev, Ok(SseEvent { event, data }) if event.is_empty() && data.is_empty()))
            }),
    )
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::{json::RawObject, providers::native::WireFormat};

    fn native() -> Native {
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-beta",
            HeaderValue::from_static("claude-code-20250219,effort-2025-11-24"),
        );
        h.insert("x-api-key", HeaderValue::from_static("sk-client-key"));
        let body = RawObject::parse(
            br#"{"model":"claude-opus-5-5","messages":[{"role":"user","content":"hi"},{"role":"system","content":"env"}],"max_tokens":128000,"thinking":{"type":"adaptive","display":"omitted"},"stream":true,"provider":{"sort":"price"}}"#,
        )
        .unwrap();
        Native::new(WireFormat::AnthropicMessages, body, &h)
    }

    #[test]
    fn anthropic_gets_the_body_with_only_the_model_rewritten() {
        let n = native();
        assert_eq!(
            String::from_utf8(body(&n, Envelope::Api("claude-x"))).unwrap(),
            r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"},{"role":"system","content":"env"}],"max_tokens":128000,"thinking":{"type":"adaptive","display":"omitted"},"stream":true}"#
        );
        assert_eq!(
            headers(&n, Envelope::Api("claude-x")),
            [
                ("anthropic-version", "2023-06-01".to_string()),
                (
                    "anthropic-beta",
                    "claude-code-20250219,effort-2025-11-24".to_string()
                )
            ]
        );
    }

    #[test]
    fn vertex_and_bedrock_get_their_envelopes() {
        let n = native();
        assert_eq!(
            String::from_utf8(body(&n, Envelope::Vertex)).unwrap(),
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"system","content":"env"}],"max_tokens":128000,"thinking":{"type":"adaptive","display":"omitted"},"stream":true,"anthropic_version":"vertex-2023-10-16"}"#
        );
        assert_eq!(
            headers(&n, Envelope::Vertex),
            [(
                "anthropic-beta",
                "claude-code-20250219,effort-2025-11-24".to_string()
            )]
        );
        assert_eq!(
            String::from_utf8(body(&n, Envelope::Bedrock)).unwrap(),
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"system","content":"env"}],"max_tokens":128000,"thinking":{"type":"adaptive","display":"omitted"},"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["claude-code-20250219","effort-2025-11-24"]}"#
        );
        assert!(headers(&n, Envelope::Bedrock).is_empty());
    }
}
