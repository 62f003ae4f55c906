//! Google Vertex AI: Gemini models (`publishers/google`, `generateContent`,
//! `streamGenerateContent?alt=sse`, embeddings through `predict`) and Anthropic models
//! (`publishers/anthropic`, `rawPredict` / `streamRawPredict` with `anthropic_version:
//! vertex-2023-10-16`), chosen by the upstream model id (`claude-*` is Anthropic). The request and
//! answer translation is the Gemini and Anthropic adapters'; an Anthropic Messages request to an
//! Anthropic model is forwarded as the client sent it, in Vertex AI's envelope
//! ([`anthropic::native`]).
//!
//! Auth is an OAuth2 access token, cached until a minute before it expires:
//! - from a service-account JSON key (the Provider's Secret value, as downloaded from Google
//!   Cloud): a JWT signed RS256 with the key's `private_key` (ring), exchanged at the key's
//!   `token_uri` (`urn:ietf:params:oauth:grant-type:jwt-bearer`); tests point `token_uri` at a
//!   mock;
//! - without `credentials`, from the GCE/GKE metadata server (Workload Identity), at
//!   `$GCE_METADATA_HOST` or `metadata.google.internal`.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use bytes::Bytes;
use http::header;
use ring::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use serde::Deserialize;
use serde_json::json;
use switchboard_api::snapshot::SecretValue;

use super::{
    AttemptError, Call, Reply, WireFormat, anthropic, gemini,
    gemini::wire::{EmbeddingInstance, EmbeddingParameters, PredictRequest, PredictResponse},
    openai_wire::{ChatRequest, embedding_inputs, embeddings_body},
    upstream,
};

/// The OAuth2 scope of Vertex AI.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    key_pair: RsaKeyPair,
    token_uri: String,
    project_id: Option<String>,
}

enum Source {
    Key(Box<ServiceAccount>),
    Metadata,
    Invalid(String),
}

struct Inner {
    source: Source,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// A Vertex provider's identity and its cached access token.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.0.source {
            Source::Key(_) => "ServiceAccountKey(<redacted>)",
            Source::Metadata => "MetadataServer",
            Source::Invalid(_) => "Invalid",
        })
    }
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

/// The DER bytes of a PEM `PRIVATE KEY` (PKCS#8).
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("private_key is not PEM: {e}"))
}

impl Auth {
    /// From the Provider's resolved credential.
    pub fn from_credential(credential: &Result<Option<SecretValue>, String>) -> Auth {
        let source = match credential {
            Err(why) => Source::Invalid(why.clone()),
            Ok(None) => Source::Metadata,
            Ok(Some(v)) => match Self::parse_key(v.expose()) {
                Ok(sa) => Source::Key(Box::new(sa)),
                Err(why) => Source::Invalid(format!(
                    "the Vertex credential is not a usable service-account JSON key: {why}"
                )),
            },
        };
        Auth(Arc::new(Inner {
            source,
            token: tokio::sync::Mutex::new(None),
        }))
    }

    fn parse_key(text: &str) -> Result<ServiceAccount, String> {
        let k: KeyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let der = pem_to_der(&k.private_key)?;
        let key_pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("private_key is not an RSA PKCS#8 key: {e}"))?;
        Ok(ServiceAccount {
            client_email: k.client_email,
            private_key_id: k.private_key_id,
            key_pair,
            token_uri: k
                .token_uri
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            project_id: k.project_id,
        })
    }

    /// The project of the service-account key, if it names one.
    pub fn key_project(&self) -> Option<&str> {
        match &self.0.source {
            Source::Key(sa) => sa.project_id.as_deref(),
            _ => None,
        }
    }

    /// A valid access token: the cached one, or a fresh one.
    pub async fn token(&self, client: &reqwest::Client) -> Result<String, AttemptError> {
        let mut cached = self.0.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, expires_in) = match &self.0.source {
            Source::Invalid(why) => return Err(AttemptError::Credential(why.clone())),
            Source::Key(sa) => exchange(client, sa).await?,
            Source::Metadata => metadata_token(client).await?,
        };
        let lifetime = Duration::from_secs(expires_in.saturating_sub(60).max(1));
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }
}

/// The signed JWT assertion for `sa` at unix time `now`. Pure (RSA PKCS#1 v1.5 signatures are
/// deterministic).
fn assertion(sa: &ServiceAccount, now: u64) -> Result<String, AttemptError> {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let mut head = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &sa.private_key_id {
        head["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": sa.client_email, "scope": SCOPE, "aud": sa.token_uri,
        "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64(head.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; sa.key_pair.public().modulus_len()];
    sa.key_pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| AttemptError::Credential("signing the Vertex token request failed".into()))?;
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

async fn read_token(resp: reqwest::Response, what: &str) -> Result<(String, u64), AttemptError> {
    let status = resp.status();
    if !status.is_success() {
        let body = upstream::read_error_body(resp).await;
        return Err(AttemptError::Credential(format!(
            "{what} answered HTTP {status}: {}",
            body.chars().take(500).collect::<String>()
        )));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| AttemptError::Credential(format!("{what} broke off: {e}")))?;
    let t: TokenResponse = serde_json::from_slice(&bytes)
        .map_err(|e| AttemptError::Credential(format!("{what} answered no token: {e}")))?;
    Ok((t.access_token, t.expires_in))
}

async fn exchange(
    client: &reqwest::Client,
    sa: &ServiceAccount,
) -> Result<(String, u64), AttemptError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
        assertion(sa, now)?
    );
    let resp = client
        .post(&sa.token_uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .timeout(Duration::from_secs(30))
        .body(body)
        .send()
        .await
        .map_err(|e| AttemptError::Credential(format!("the Google token endpoint failed: {e}")))?;
    read_token(resp, "the Google token endpoint").await
}

async fn metadata_token(client: &reqwest::Client) -> Result<(String, u64), AttemptError> {
    let host =
        std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let resp = client
        .get(format!(
            "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
        ))
        .header("Metadata-Flavor", "Google")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            AttemptError::Credential(format!(
                "the Vertex provider has no credentials and the metadata server is not \
                 reachable ({e}); set credentials.secretRef to a service-account JSON key"
            ))
        })?;
    read_token(resp, "the metadata server").await
}

/// Whether an upstream model id is an Anthropic model on Vertex.
pub fn is_anthropic(model: &str) -> bool {
    model.starts_with("claude")
}

fn model_url(call: &Call<'_>, auth: &Auth, operation: &str) -> Result<String, AttemptError> {
    let publisher = if is_anthropic(call.upstream_model) {
        "anthropic"
    } else {
        "google"
    };
    let model = format!("{publisher}/models/{}", call.upstream_model);
    publisher_url(call, auth, &model, operation)
}

/// `{base}/projects/{project}/locations/{location}/publishers/{path}:{operation}`.
fn publisher_url(
    call: &Call<'_>,
    auth: &Auth,
    path: &str,
    operation: &str,
) -> Result<String, AttemptError> {
    let p = call.provider;
    let base = p.config.base_url.as_deref().unwrap_or_default();
    let settings = p.config.vertex.as_ref();
    let location = settings.map_or("us-central1", |v| v.location.as_str());
    let project = settings
        .and_then(|v| v.project.as_deref())
        .or(auth.key_project())
        .ok_or_else(|| {
            AttemptError::Credential(
                "the Vertex provider names no project: set spec.vertex.project".into(),
            )
        })?;
    Ok(format!(
        "{base}/projects/{project}/locations/{location}/publishers/{path}:{operation}"
    ))
}

/// Counts the input tokens of the client's Anthropic `count_tokens` request at Vertex AI's
/// `count-tokens:rawPredict` (the model named in the body, with Vertex's `anthropic_version`).
pub async fn count_tokens(call: Call<'_>, auth: &Auth) -> Result<Bytes, AttemptError> {
    let original = call
        .native
        .ok_or_else(|| AttemptError::Protocol("no Messages request to forward".into()))?;
    let body = anthropic::native::body(
        original,
        anthropic::native::Envelope::Api(call.upstream_model),
    );
    let mut body: crate::json::RawObject = serde_json::from_slice(&body)
        .map_err(|e| AttemptError::Protocol(format!("count_tokens body: {e}")))?;
    body.set("anthropic_version", &anthropic::native::VERTEX_VERSION);
    let url = publisher_url(&call, auth, "anthropic/models/count-tokens", "rawPredict")?;
    let resp = post(
        &call,
        auth,
        url,
        body.to_vec(),
        anthropic::translate::map_status,
    )
    .await?;
    upstream::body(resp).await
}

async fn post(
    call: &Call<'_>,
    auth: &Auth,
    url: String,
    body: impl Into<reqwest::Body>,
    map_status: fn(u16, &str) -> u16,
) -> Result<reqwest::Response, AttemptError> {
    let token = auth.token(call.client).await?;
    let mut req = call
        .client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .bearer_auth(token)
        .body(body);
    if let Some(original) = call
        .native
        .filter(|n| n.format == WireFormat::AnthropicMessages && is_anthropic(call.upstream_model))
    {
        for (name, value) in
            anthropic::native::headers(original, anthropic::native::Envelope::Vertex)
        {
            req = req.header(name, value);
        }
    }
    if call.stream {
        req = req.header(header::ACCEPT, "text/event-stream");
    }
    upstream::send(call, req, map_status).await
}

/// The operation of an Anthropic model's answer, streamed or not.
fn raw_predict(stream: bool) -> &'static str {
    if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    }
}

/// A chat completion attempt.
pub async fn chat(call: Call<'_>, auth: &Auth) -> Result<Reply, AttemptError> {
    if is_anthropic(call.upstream_model)
        && let Some(original) = call
            .native
            .filter(|n| n.format == WireFormat::AnthropicMessages)
    {
        let body = anthropic::native::body(original, anthropic::native::Envelope::Vertex);
        let url = model_url(&call, auth, raw_predict(call.stream))?;
        let resp = post(&call, auth, url, body, anthropic::translate::map_status).await?;
        return anthropic::native_reply(call.stream, resp).await;
    }
    let req = ChatRequest::for_model(&call)?;
    if is_anthropic(call.upstream_model) {
        let (body, hints) = anthropic::translate::request(
            &req,
            anthropic::translate::Dialect::Vertex,
            anthropic::model_max_output(&call),
            call.stream,
        )?;
        let url = model_url(&call, auth, raw_predict(call.stream))?;
        let resp = post(
            &call,
            auth,
            url,
            body.to_string(),
            anthropic::translate::map_status,
        )
        .await?;
        return anthropic::reply(call.stream, resp, hints).await;
    }
    let (body, hints) = gemini::translate::request(&req)?;
    let url = if call.stream {
        format!(
            "{}?alt=sse",
            model_url(&call, auth, "streamGenerateContent")?
        )
    } else {
        model_url(&call, auth, "generateContent")?
    };
    let resp = post(
        &call,
        auth,
        url,
        body.to_string(),
        gemini::translate::map_status,
    )
    .await?;
    gemini::reply(call.stream, resp, hints, call.upstream_model).await
}

/// An embeddings attempt through `predict` (text-embedding and gemini-embedding models).
pub async fn embeddings(call: Call<'_>, auth: &Auth) -> Result<Bytes, AttemptError> {
    let inputs = embedding_inputs(call.request)?;
    let body = PredictRequest {
        instances: inputs
            .iter()
            .map(|t| EmbeddingInstance { content: t })
            .collect(),
        parameters: call
            .request
            .get("dimensions")
            .and_then(|d| d.get().parse::<u64>().ok())
            .map(|output_dimensionality| EmbeddingParameters {
                output_dimensionality,
            }),
    };
    let url = model_url(&call, auth, "predict")?;
    let resp = post(
        &call,
        auth,
        url,
        serde_json::to_string(&body).expect("wire types serialize"),
        gemini::translate::map_status,
    )
    .await?;
    let p: PredictResponse = serde_json::from_slice(&upstream::body(resp).await?)
        .map_err(|e| AttemptError::Protocol(format!("unexpected Vertex embeddings: {e}")))?;
    let tokens = p
        .predictions
        .iter()
        .map(|p| {
            p.embeddings
                .statistics
                .as_ref()
                .map_or(0.0, |s| s.token_count) as u64
        })
        .fold(0u64, u64::saturating_add);
    let vectors: Vec<Vec<f64>> = p
        .predictions
        .into_iter()
        .map(|p| p.embeddings.values)
        .collect();
    Ok(Bytes::from(embeddings_body(
        call.request,
        &vectors,
        call.upstream_model,
        tokens,
    )))
}
