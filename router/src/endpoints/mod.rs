//! The client-facing API (`/v1/...` and `/api/v1/...`): request intake shared by every endpoint
//! (auth, body limits, JSON parsing) and the attempt loop shared by chat and embeddings.

pub mod chat;
pub mod embeddings;
pub mod models;

use std::{
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, http::HeaderMap};
use rand::{Rng, distr::Alphanumeric};
use serde::de::DeserializeOwned;
use switchboard_api::snapshot::ApiKeyConfig;

use crate::{
    access::Access,
    auth,
    error::{ApiError, AttemptReport, scrub},
    providers::AttemptError,
    raw_json::RawObject,
    routing::Candidate,
    runtime::Runtime,
    state::AppState,
};

/// A fresh generation id, `gen-` and 24 random alphanumerics.
pub fn new_generation_id() -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("gen-{suffix}")
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The config in force and the authenticated caller's key.
pub struct Caller {
    /// The config this request is served with, start to end.
    pub runtime: Arc<Runtime>,
    key_hash: String,
}

impl Caller {
    /// The caller's ApiKey.
    pub fn key(&self) -> &ApiKeyConfig {
        &self.runtime.config.api_keys[&self.key_hash]
    }
}

/// Authenticates the request against the current config.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    access: &mut Access,
) -> Result<Caller, ApiError> {
    let runtime = state.runtime().ok_or_else(|| {
        ApiError::NoEligibleProvider("The router has no configuration yet".into())
    })?;
    let key = auth::authenticate(&runtime.config, headers, now_unix())?;
    access.key = Some(key.name.clone());
    let key_hash = key.key_hash.clone();
    Ok(Caller { runtime, key_hash })
}

/// Reads the body within the size limit and parses it as a JSON object.
pub async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<RawObject, ApiError> {
    let limit = state.settings.max_request_bytes;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::BodyTooLarge { limit }
        } else {
            ApiError::BadRequest {
                message: format!("Could not read the request body: {e}"),
                param: None,
            }
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            message: "The request body is empty; expected a JSON object".into(),
            param: None,
        });
    }
    RawObject::parse(&bytes).map_err(|e| ApiError::BadRequest {
        message: format!("Invalid JSON in request body: {e}"),
        param: None,
    })
}

/// Decodes one field, with a 400 naming the field when it has the wrong type.
pub fn field<T: DeserializeOwned>(
    body: &RawObject,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| ApiError::bad_param(name, format!("`{name}` must be {expected}"))),
    }
}

/// The model names a request asks for: `model`, then `models` (OpenRouter's fallback list).
pub fn requested_models(body: &RawObject) -> Result<Vec<String>, ApiError> {
    let model: Option<String> = field(body, "model", "a string")?;
    let models: Option<Vec<String>> = field(body, "models", "an array of strings")?;
    let mut all = Vec::new();
    all.extend(model);
    all.extend(models.unwrap_or_default());
    all.retain(|m| !m.is_empty());
    if all.is_empty() {
        return Err(ApiError::bad_param("model", "`model` is required"));
    }
    Ok(all)
}

/// Checks the primary model exists and the key may use it: 404, then 403.
pub fn check_primary_model(
    caller: &Caller,
    model: &str,
    access: &mut Access,
) -> Result<(), ApiError> {
    if !caller.runtime.config.routes.contains_key(model) {
        return Err(ApiError::UnknownModel(model.to_string()));
    }
    access.model = model.to_string();
    if !caller.key().may_use(model) {
        return Err(ApiError::ModelNotAllowed {
            key: caller.key().name.clone(),
            model: model.to_string(),
        });
    }
    Ok(())
}

/// The message of an upstream error body (`error.message`, or the text itself).
fn upstream_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(500).collect())
}

/// Bookkeeping for the attempt loop: callers try candidates in order; retryable failures move to
/// the next candidate, a client error from an upstream is returned at once. Every attempt is
/// counted in metrics and reported in the error's metadata if all fail. (A loop in each handler
/// rather than a higher-order function, so handler futures stay `Send`.)
pub struct Attempts<'s> {
    state: &'s AppState,
    reports: Vec<AttemptReport>,
    last: Option<(AttemptError, String)>,
    started: Instant,
}

impl<'s> Attempts<'s> {
    /// No attempts yet.
    pub fn new(state: &'s AppState) -> Self {
        Attempts {
            state,
            reports: Vec::new(),
            last: None,
            started: Instant::now(),
        }
    }

    /// Marks the start of an attempt.
    pub fn begin(&mut self, access: &mut Access) {
        access.attempts += 1;
        self.started = Instant::now();
    }

    /// Records the attempt on `cand` as the one that served.
    pub fn succeeded(&mut self, access: &mut Access, cand: &Candidate<'_>) {
        let provider = &cand.provider.config.name;
        self.state
            .metrics
            .upstream_attempts
            .with_label_values(&[provider, "ok"])
            .inc();
        access.provider = Some(provider.clone());
    }

    /// Records a failed attempt. `Err` when the failure must go to the client as is (the upstream
    /// rejected the request itself); `Ok` when the next candidate should be tried.
    pub fn failed(
        &mut self,
        access: &Access,
        cand: &Candidate<'_>,
        e: AttemptError,
    ) -> Result<(), ApiError> {
        let provider_name = cand.provider.config.name.clone();
        let label = e.label();
        self.state
            .metrics
            .upstream_attempts
            .with_label_values(&[&provider_name, &label])
            .inc();
        let secrets: Vec<&str> = cand.provider.credential_str().into_iter().collect();
        tracing::warn!(
            generation_id = %access.generation_id,
            provider = %provider_name,
            model = cand.upstream_model,
            error = %scrub(&e.to_string(), &secrets),
            "upstream attempt failed"
        );
        self.reports.push(AttemptReport {
            provider: provider_name.clone(),
            model: cand.upstream_model.to_string(),
            error_type: label,
            status: match &e {
                AttemptError::Status { status, .. } => Some(*status),
                _ => None,
            },
            latency_ms: self.started.elapsed().as_millis() as u64,
        });
        if let AttemptError::Status { status, body } = &e
            && !e.is_retryable()
        {
            let raw = scrub(body, &secrets);
            return Err(ApiError::UpstreamRejected {
                status: http::StatusCode::from_u16(*status)
                    .unwrap_or(http::StatusCode::BAD_REQUEST),
                message: upstream_message(&raw),
                provider: provider_name,
                raw,
            });
        }
        let raw = match &e {
            AttemptError::Status { body, .. } => scrub(body, &secrets),
            other => scrub(&other.to_string(), &secrets),
        };
        self.last = Some((e, raw));
        Ok(())
    }

    /// The error for the client once every candidate failed.
    pub fn exhausted(self) -> ApiError {
        let Some((e, raw)) = self.last else {
            return ApiError::NoEligibleProvider("No provider is available for this model".into());
        };
        ApiError::AllAttemptsFailed {
            message: format!(
                "All {} upstream attempt(s) failed; the last one: {}",
                self.reports.len(),
                upstream_message(&raw)
            ),
            timed_out: matches!(e, AttemptError::Timeout(_)),
            raw: Some(raw),
            attempts: self.reports,
        }
    }
}
