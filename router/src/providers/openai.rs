//! OpenAI Chat Completions and Embeddings over HTTP, for `openai` and every OpenAI-compatible
//! server. No translation: the request is the client's with `model` set to the upstream id and
//! Switchboard's extension fields removed; the reply is passed on as the upstream wrote it.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http::header;

use super::{
    AttemptError, Call, EXTENSION_FIELDS, Native, NativeBody, Reply, WireFormat,
    native::{EventStream, SseEvent},
    upstream,
};
use crate::json::RawObject;

/// The upstream request body: the client's fields, `model` replaced, extensions removed,
/// `stream_options.include_usage` forced on for streams so usage is always reported, and an
/// output limit above the model's declared `maxOutputTokens` (`cap`) lowered to it (the upstream
/// would refuse it; clients such as Claude Code ask for 128000 whatever the model).
/// Written straight from the parsed request: the client's values are copied once, into the
/// output, and `model` and `stream_options` keep their positions.
pub fn upstream_body(
    request: &RawObject,
    upstream_model: &str,
    stream: bool,
    cap: Option<u64>,
) -> Vec<u8> {
    let model = serde_json::to_string(upstream_model).expect("a string serialises");
    let stream_options = stream.then(|| {
        let mut options = request
            .get("stream_options")
            .and_then(|o| serde_json::from_str::<RawObject>(o.get()).ok())
            .unwrap_or_default();
        options.set("include_usage", &true);
        String::from_utf8(options.to_vec()).expect("JSON is UTF-8")
    });
    let size: usize = request
        .0
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut out = Vec::with_capacity(size + model.len() + 64);
    let field = |out: &mut Vec<u8>, key: &str, value: &str| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        serde_json::to_writer(&mut *out, key).expect("a string serialises");
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    };
    let (mut model_written, mut options_written) = (false, false);
    for (key, value) in &request.0 {
        match key.as_str() {
            k if EXTENSION_FIELDS.contains(&k) => {}
            "model" if !model_written => {
                field(&mut out, key, &model);
                model_written = true;
            }
            "model" => {}
            "stream_options" if stream_options.is_some() => {
                if !options_written {
                    field(&mut out, key, stream_options.as_deref().unwrap_or("{}"));
                    options_written = true;
                }
            }
            "max_tokens" | "max_completion_tokens"
                if cap.is_some_and(|c| value.get().parse::<u64>().is_ok_and(|n| n > c)) =>
            {
                field(&mut out, key, &cap.unwrap_or_default().to_string())
            }
            _ => field(&mut out, key, value.get()),
        }
    }
    if !model_written {
        field(&mut out, "model", &model);
    }
    if let (Some(options), false) = (&stream_options, options_written) {
        field(&mut out, "stream_options", options);
    }
    out.push(b'}');
    out
}

async fn post(
    call: &Call<'_>,
    path: &str,
    body: Vec<u8>,
) -> Result<reqwest::Response, AttemptError> {
    post_with(call, path, body, &[]).await
}

async fn post_with(
    call: &Call<'_>,
    path: &str,
    body: Vec<u8>,
    extra: &[(http::HeaderName, http::HeaderValue)],
) -> Result<reqwest::Response, AttemptError> {
    let p = call.provider;
    let credential = p
        .credential
        .as_ref()
        .map_err(|e| AttemptError::Credential(e.clone()))?;
    let url = p.url(path).map_err(AttemptError::Protocol)?;
    let mut req = call
        .client
        .post(url)
        .header(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )
        .body(body);
    if call.stream {
        req = req.header(
            header::ACCEPT,
            http::HeaderValue::from_static("text/event-stream"),
        );
    }
    for (name, value) in extra {
        req = req.header(name, value);
    }
    match (p.bearer(), credential) {
        (Some(bearer), _) => req = req.header(header::AUTHORIZATION, bearer.clone()),
        // Not a valid header value: reqwest refuses the request, as it always did.
        (None, Some(key)) => req = req.bearer_auth(key.expose()),
        (None, None) => {}
    }
    upstream::send(call, req, upstream::same_status).await
}

/// The SSE events of a native stream, as they came (comments and empty events left out).
pub fn events(resp: reqwest::Response) -> EventStream {
    Box::pin(
        upstream::sse_events(resp)
            .map(|ev| ev.map(|(event, data)| SseEvent { event, data }))
            .filter(|ev| {
                std::future::ready(
                    !matches!(ev, Ok(SseEvent { event, data }) if event.is_empty() && data.is_empty()),
                )
            }),
    )
}

/// A successful answer in a native format: the body, or the events with their names.
pub async fn native_reply(
    format: WireFormat,
    stream: bool,
    resp: reqwest::Response,
) -> Result<Reply, AttemptError> {
    let body = if stream {
        NativeBody::Stream(events(resp))
    } else {
        NativeBody::Complete(upstream::body(resp).await?)
    };
    Ok(Reply::Native(format, body))
}

/// The body of a native request: the client's as sent, `model` rewritten; a legacy completions
/// stream always asks for usage (`stream_options.include_usage`).
pub fn native_body(native: &Native, upstream_model: &str, stream: bool) -> Vec<u8> {
    let model = serde_json::to_string(upstream_model).expect("a string serialises");
    let mut edits = vec![("model", Some(model))];
    if stream && native.format == WireFormat::OpenAiCompletions {
        let mut options = native
            .body
            .get("stream_options")
            .and_then(|o| serde_json::from_str::<RawObject>(o.get()).ok())
            .unwrap_or_default();
        options.set("include_usage", &true);
        edits.push((
            "stream_options",
            Some(String::from_utf8(options.to_vec()).expect("JSON is UTF-8")),
        ));
    }
    native.forward(&edits)
}

/// A Responses or legacy completions request, forwarded as the client sent it.
async fn forward(call: &Call<'_>, native: &Native) -> Result<Reply, AttemptError> {
    let path = match native.format {
        WireFormat::OpenAiResponses => "/responses",
        _ => "/completions",
    };
    let body = native_body(native, call.upstream_model, call.stream);
    let resp = post_with(call, path, body, &native.headers).await?;
    native_reply(native.format, call.stream, resp).await
}

/// Relays a successful OpenAI-format response (shared with Azure OpenAI).
pub async fn reply(stream: bool, resp: reqwest::Response) -> Result<Reply, AttemptError> {
    if stream {
        let events = resp.bytes_stream().eventsource().map(|ev| match ev {
            Ok(ev) => Ok(ev.data),
            Err(e) => Err(AttemptError::Protocol(format!("stream broke: {e}"))),
        });
        Ok(Reply::Stream(Box::pin(events)))
    } else {
        let bytes = resp.bytes().await.map_err(AttemptError::from_reqwest)?;
        Ok(Reply::Complete(bytes))
    }
}

/// The model's declared `maxOutputTokens`.
pub fn output_cap(call: &Call<'_>) -> Option<u64> {
    let model = call.provider.config.models.get(call.upstream_model)?;
    model.max_output_tokens.map(u64::from)
}

/// A chat completion attempt: the client's Responses or legacy completions request forwarded
/// when this provider speaks it ([`super::ProviderRuntime::speaks`]), else the chat request.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
    if let Some(native) = call.native.filter(|n| call.provider.speaks(n.format)) {
        return forward(&call, native).await;
    }
    let body = upstream_body(
        call.request,
        call.upstream_model,
        call.stream,
        output_cap(&call),
    );
    let resp = post(&call, "/chat/completions", body).await?;
    reply(call.stream, resp).await
}

/// An embeddings attempt.
pub async fn embeddings(call: Call<'_>) -> Result<Bytes, AttemptError> {
    let body = upstream_body(call.request, call.upstream_model, false, None);
    let resp = post(&call, "/embeddings", body).await?;
    resp.bytes().await.map_err(AttemptError::from_reqwest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_body_swaps_model_strips_extensions_and_forces_usage() {
        let req = RawObject::parse(
            br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"provider":{"order":["a"]},"models":["x"],"stream_options":{"include_usage":false}}"#,
        )
        .unwrap();
        let out = String::from_utf8(upstream_body(&req, "gpt-4o-mini", true, None)).unwrap();
        assert_eq!(
            out,
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn upstream_body_appends_model_and_stream_options_when_absent() {
        let req = RawObject::parse(br#"{"messages":[],"stream":true}"#).unwrap();
        let out = String::from_utf8(upstream_body(&req, "m", true, None)).unwrap();
        assert_eq!(
            out,
            r#"{"messages":[],"stream":true,"model":"m","stream_options":{"include_usage":true}}"#
        );
        let req = RawObject::parse(br#"{"model":"a","stream_options":{"x":1},"n":1}"#).unwrap();
        let out = String::from_utf8(upstream_body(&req, "m", false, None)).unwrap();
        assert_eq!(out, r#"{"model":"m","stream_options":{"x":1},"n":1}"#);
    }

    #[test]
    fn native_bodies_keep_the_clients_bytes_and_completion_streams_report_usage() {
        let body = RawObject::parse(
            br#"{"model":"pub/m","prompt":"hi","provider":{"sort":"price"},"x":1.50}"#,
        )
        .unwrap();
        let n = Native::new(WireFormat::OpenAiCompletions, body, &http::HeaderMap::new());
        assert_eq!(
            String::from_utf8(native_body(&n, "m", true)).unwrap(),
            r#"{"model":"m","prompt":"hi","x":1.50,"stream_options":{"include_usage":true}}"#
        );
        let n = Native::new(WireFormat::OpenAiResponses, n.body, &http::HeaderMap::new());
        assert_eq!(
            String::from_utf8(native_body(&n, "m", true)).unwrap(),
            r#"{"model":"m","prompt":"hi","x":1.50}"#
        );
    }

    #[test]
    fn an_output_limit_above_the_models_is_lowered_to_it() {
        let req =
            RawObject::parse(br#"{"max_tokens":128000,"max_completion_tokens":100}"#).unwrap();
        let out = String::from_utf8(upstream_body(&req, "m", false, Some(16384))).unwrap();
        assert_eq!(
            out,
            r#"{"max_tokens":16384,"max_completion_tokens":100,"model":"m"}"#
        );
    }
}
