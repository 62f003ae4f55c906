//! AWS Bedrock over HTTP: Converse and ConverseStream (`application/vnd.amazon.eventstream`
//! framing, decoded with `aws-smithy-eventstream`), Anthropic Messages requests to Claude models
//! forwarded through `InvokeModel` ([`invoke`]), and Titan/Cohere embeddings through
//! `InvokeModel`, every request signed with AWS SigV4 (`aws-sigv4`, service `bedrock`).
//!
//! Credentials, from the Provider's Secret value:
//! - a JSON document `{"accessKeyId": "AKIA...", "secretAccessKey": "...", "sessionToken": "..."}`
//!   (`sessionToken` optional), signed with SigV4; or
//! - a Bedrock API key (any other text), sent as `Authorization: Bearer <key>`;
//! - without `credentials`, the router's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!   `AWS_SESSION_TOKEN` environment variables, read at each request.

pub mod invoke;
pub mod translate;
pub mod wire;

use std::{fmt, time::SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};
use http::header;
use serde::Deserialize;
use switchboard_api::snapshot::SecretValue;

use super::{
    AttemptError, Call, Reply, WireFormat, anthropic,
    azure::percent_encode,
    openai_wire::{ChatRequest, embedding_inputs, embeddings_body, random_id},
    upstream,
};

/// How requests to a Bedrock provider are authorised.
#[derive(Clone)]
pub enum Auth {
    /// SigV4 with these keys.
    Keys(Credentials),
    /// A Bedrock API key, as a bearer token.
    Bearer(String),
    /// SigV4 with the router's `AWS_*` environment variables.
    Environment,
    /// The Secret could not be used; requests fail over with this reason.
    Invalid(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Keys(_) => "Keys(<redacted>)",
            Auth::Bearer(_) => "Bearer(<redacted>)",
            Auth::Environment => "Environment",
            Auth::Invalid(_) => "Invalid",
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyDocument {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

impl Auth {
    /// From the Provider's resolved credential.
    pub fn from_credential(credential: &Result<Option<SecretValue>, String>) -> Auth {
        match credential {
            Err(why) => Auth::Invalid(why.clone()),
            Ok(None) => Auth::Environment,
            Ok(Some(v)) => {
                let text = v.expose().trim();
                if text.starts_with('{') {
                    match serde_json::from_str::<KeyDocument>(text) {
                        Ok(k) => Auth::Keys(Credentials::new(
                            k.access_key_id,
                            k.secret_access_key,
                            k.session_token,
                            None,
                            "switchboard-secret",
                        )),
                        Err(e) => Auth::Invalid(format!(
                            "the Bedrock credential is JSON but not {{accessKeyId, \
                             secretAccessKey, sessionToken?}}: {e}"
                        )),
                    }
                } else {
                    Auth::Bearer(text.to_string())
                }
            }
        }
    }

    fn resolve(&self) -> Result<Option<Credentials>, AttemptError> {
        match self {
            Auth::Keys(c) => Ok(Some(c.clone())),
            Auth::Bearer(_) => Ok(None),
            Auth::Invalid(why) => Err(AttemptError::Credential(why.clone())),
            Auth::Environment => {
                let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
                match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => Ok(Some(Credentials::new(
                        id,
                        secret,
                        var("AWS_SESSION_TOKEN"),
                        None,
                        "switchboard-environment",
                    ))),
                    _ => Err(AttemptError::Credential(
                        "the Bedrock provider has no credentials: set credentials.secretRef, or \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY on the router"
                            .into(),
                    )),
                }
            }
        }
    }
}

/// A signed POST of `body` to `{baseURL}{path}`.
async fn post(
    call: &Call<'_>,
    auth: &Auth,
    path: &str,
    body: Vec<u8>,
    accept: &str,
) -> Result<reqwest::Response, AttemptError> {
    let p = call.provider;
    let base = p.config.base_url.as_deref().unwrap_or_default();
    let url = format!("{base}{path}");
    let region = p
        .config
        .bedrock
        .as_ref()
        .map_or("us-east-1", |b| b.region.as_str());
    let mut req = call
        .client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, accept);
    if let Auth::Bearer(key) = auth {
        req = req.bearer_auth(key);
    } else if let Some(creds) = auth.resolve()? {
        for (name, value) in sigv4_headers(&creds, region, &url, &body, SystemTime::now())? {
            req = req.header(name, value);
        }
    }
    upstream::send(call, req.body(body), upstream::same_status).await
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for a POST.
pub fn sigv4_headers(
    creds: &Credentials,
    region: &str,
    url: &str,
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, AttemptError> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| AttemptError::Credential(format!("SigV4 parameters: {e}")))?
        .into();
    let headers = [("content-type", "application/json")];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| AttemptError::Credential(format!("SigV4 request: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| AttemptError::Credential(format!("SigV4 signing failed: {e}")))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn model_path(model: &str, operation: &str) -> String {
    format!("/model/{}/{operation}", percent_encode(model))
}

/// A chat completion attempt: an Anthropic Messages request to a Claude model through
/// `InvokeModel`, anything else translated to Converse.
pub async fn chat(call: Call<'_>, auth: &Auth) -> Result<Reply, AttemptError> {
    if let Some(original) = call
        .native
        .filter(|n| n.format == WireFormat::AnthropicMessages)
        .filter(|_| invoke::is_anthropic(call.upstream_model))
    {
        return invoke::chat(&call, auth, original).await;
    }
    let req = ChatRequest::for_model(&call)?;
    let (body, hints) = translate::request(&req, anthropic::model_max_output(&call))?;
    let id = format!("gen-{}", random_id());
    let body = body.to_string().into_bytes();
    if call.stream {
        let path = model_path(call.upstream_model, "converse-stream");
        let resp = post(
            &call,
            auth,
            &path,
            body,
            "application/vnd.amazon.eventstream",
        )
        .await?;
        return Ok(Reply::Stream(upstream::translate(
            event_stream(resp),
            translate::Stream::new(hints, call.upstream_model, &id),
        )));
    }
    let path = model_path(call.upstream_model, "converse");
    let resp = post(&call, auth, &path, body, "application/json").await?;
    let bytes = upstream::body(resp).await?;
    let completion = translate::response(&bytes, &hints, call.upstream_model, &id)?;
    Ok(Reply::Complete(Bytes::from(completion.render())))
}

fn header_str<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// One decoded event-stream message as `(event, payload)`: `event` is the `:event-type`, or
/// `exception:<type>` for exceptions and errors.
pub fn message_event(m: &Message) -> (String, String) {
    let payload = String::from_utf8_lossy(m.payload()).into_owned();
    match header_str(m, ":message-type") {
        Some("exception") => (
            format!(
                "exception:{}",
                header_str(m, ":exception-type").unwrap_or("InternalServerException")
            ),
            payload,
        ),
        Some("error") => (
            format!(
                "exception:{}",
                header_str(m, ":error-code").unwrap_or("InternalServerException")
            ),
            serde_json::json!({"message": header_str(m, ":error-message").unwrap_or("")})
                .to_string(),
        ),
        _ => (
            header_str(m, ":event-type").unwrap_or("").to_string(),
            payload,
        ),
    }
}

/// Decodes an `application/vnd.amazon.eventstream` body into events.
fn event_stream(
    resp: reqwest::Response,
) -> impl Stream<Item = Result<(String, String), AttemptError>> + Send {
    struct St {
        body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
        buf: BytesMut,
        decoder: MessageFrameDecoder,
        failed: bool,
    }
    let st = St {
        body: Box::pin(resp.bytes_stream()),
        buf: BytesMut::new(),
        decoder: MessageFrameDecoder::new(),
        failed: false,
    };
    stream::unfold(st, |mut st| async move {
        loop {
            if st.failed {
                return None;
            }
            match st.decoder.decode_frame(&mut st.buf) {
                Ok(DecodedFrame::Complete(m)) => return Some((Ok(message_event(&m)), st)),
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => {
                    st.failed = true;
                    return Some((
                        Err(AttemptError::Protocol(format!(
                            "bad event-stream frame: {e}"
                        ))),
                        st,
                    ));
                }
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    st.failed = true;
                    return Some((
                        Err(AttemptError::Protocol(format!("stream broke: {e}"))),
                        st,
                    ));
                }
                None => return None,
            }
        }
    })
}

/// An embeddings attempt: Titan models one `InvokeModel` per input, Cohere models one for all.
pub async fn embeddings(call: Call<'_>, auth: &Auth) -> Result<Bytes, AttemptError> {
    let inputs = embedding_inputs(call.request)?;
    let dimensions = call
        .request
        .get("dimensions")
        .and_then(|d| d.get().parse::<u64>().ok());
    let path = model_path(call.upstream_model, "invoke");
    let mut vectors = Vec::new();
    let mut tokens = 0;
    if call.upstream_model.starts_with("cohere.") {
        let body = wire::CohereEmbeddingRequest {
            texts: &inputs,
            input_type: "search_document",
        };
        let resp = post(&call, auth, &path, to_json(&body), "application/json").await?;
        let c: wire::CohereEmbeddingResponse = serde_json::from_slice(&upstream::body(resp).await?)
            .map_err(|e| AttemptError::Protocol(format!("unexpected Cohere embeddings: {e}")))?;
        vectors = c.embeddings;
        tokens = inputs
            .iter()
            .map(|t| crate::pricing::estimate_tokens(t).max(1))
            .sum();
    } else {
        for text in &inputs {
            let body = to_json(&translate::titan_request(text, dimensions));
            let resp = post(&call, auth, &path, body, "application/json").await?;
            let (v, n) = translate::titan_response(&upstream::body(resp).await?)?;
            vectors.push(v);
            tokens = tokens.saturating_add(n);
        }
    }
    Ok(Bytes::from(embeddings_body(
        call.request,
        &vectors,
        call.upstream_model,
        tokens,
    )))
}

/// A wire body as JSON bytes.
fn to_json(body: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("wire types serialize")
}
