//! Every way a request can fail, and the one place failures become HTTP responses in the
//! OpenRouter error envelope, which the OpenAI SDKs read too:
//! `{"error": {"message", "type", "code", "param", "metadata"}}`.
//!
//! `code` is the HTTP status as an integer, as OpenRouter sends it: the OpenRouter SDK parses
//! every error body into a model whose `code` is an `int` (a string fails validation and the
//! caller gets a `ResponseValidationError` instead of the typed error). The OpenAI SDKs read
//! `message`, `type`, `param` and `code` without validating them (the Python SDK turns `code` into
//! the string `"402"`), so an OpenAI client keeps its typed exception, `type` and `param`.
//! Switchboard's own machine-readable reason (`budget_exceeded`, `model_not_found`, ...) is in
//! `metadata.error_code`, beside the details of the failure.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

/// One upstream attempt, as reported in `error.metadata.attempts` and by `/api/v1/generation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AttemptReport {
    /// Provider name.
    pub provider: String,
    /// Upstream model id.
    pub model: String,
    /// Whether this attempt served the request.
    pub ok: bool,
    /// What went wrong (`connect`, `timeout_first_token`, `status_429`, `capacity`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// HTTP status from the upstream, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Milliseconds the attempt took.
    pub latency_ms: u64,
}

/// A client-facing error. Each variant knows its status, OpenAI `type`, `code` and metric label.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key in `Authorization` or `x-api-key`.
    #[error("Missing API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    MissingKey,
    /// The key is not known.
    #[error("Invalid API key")]
    InvalidKey,
    /// The key is disabled.
    #[error("API key {0} is disabled")]
    DisabledKey(String),
    /// The key expired.
    #[error("API key {0} has expired")]
    ExpiredKey(String),
    /// The token (a JWT) is refused.
    #[error("Invalid token: {message}")]
    InvalidToken {
        /// Metric and log label of why.
        reason: &'static str,
        /// What is wrong with it (never the token).
        message: String,
    },
    /// The token is valid, but no ApiKey lists a subject it fits.
    #[error("No ApiKey grants {subject} from issuer {issuer}")]
    IdentityNotGranted {
        /// The token's issuer.
        issuer: String,
        /// The token's subject.
        subject: String,
    },
    /// The token fits subjects of several ApiKeys: which one it is cannot be told.
    #[error("{subject} fits the subjects of several ApiKeys ({}); a caller must match exactly one", keys.join(", "))]
    AmbiguousIdentity {
        /// The token's subject.
        subject: String,
        /// The ApiKeys (`namespace/name`).
        keys: Vec<String>,
    },
    /// The key may not call this model.
    #[error("API key {key} is not allowed to use model {model}")]
    ModelNotAllowed {
        /// Key name.
        key: String,
        /// Public model name.
        model: String,
    },
    /// No route for the model.
    #[error("Model {0} does not exist or is not served by this gateway")]
    UnknownModel(String),
    /// No generation record with that id for this key.
    #[error("Generation {0} not found")]
    GenerationNotFound(String),
    /// An admin endpoint was called without a credential.
    #[error("This admin endpoint requires the admin token: send `Authorization: Bearer <token>`")]
    AdminCredentialRequired,
    /// An admin endpoint was called with a wrong token.
    #[error("Invalid admin token")]
    InvalidAdminToken,
    /// No admin token is configured and the caller is not on the loopback interface.
    #[error(
        "No admin token is configured (--admin-token-file), so this admin endpoint answers only \
         on the loopback interface"
    )]
    AdminLoopbackOnly,
    /// No admin token is configured and a loopback caller addressed the router by a name that is
    /// not a loopback one (what a page using DNS rebinding does).
    #[error(
        "No admin token is configured (--admin-token-file), so this admin endpoint answers only \
         requests addressed to localhost, 127.0.0.1 or [::1]; this one's Host header named \
         something else"
    )]
    AdminHostNotLoopback,
    /// The usage store is off (`--usage-store off`).
    #[error("The usage store is off on this router (--usage-store off)")]
    UsageStoreOff,
    /// The usage store did not answer a read.
    #[error("The usage store is unavailable; try again shortly")]
    UsageStoreUnavailable(String),
    /// No stored response with that id for this key.
    #[error("Response with id '{0}' not found")]
    ResponseNotFound(String),
    /// The response store cannot be reached.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The request body is malformed or invalid.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The offending parameter, if one.
        param: Option<String>,
    },
    /// The request body exceeds the limit.
    #[error("Request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The route exists but no provider can take the request.
    #[error("{0}")]
    NoEligibleProvider(String),
    /// The provider type has no adapter yet.
    #[error("Provider {provider} has type {provider_type}, which this router does not speak yet")]
    NotImplemented {
        /// Provider name.
        provider: String,
        /// Provider type.
        provider_type: String,
    },
    /// The upstream refused the request as invalid; passed on with its status.
    #[error("{message}")]
    UpstreamRejected {
        /// Upstream status (4xx).
        status: StatusCode,
        /// Upstream message.
        message: String,
        /// Provider name.
        provider: String,
        /// Upstream body, scrubbed of credentials.
        raw: String,
    },
    /// A Budget in scope cannot cover the request's worst case.
    #[error(
        "Budget {budget} has ${remaining} left{window}; this request could cost up to ${cost}. \
         It requires more credits, or fewer max_tokens."
    )]
    BudgetExceeded {
        /// Budget id.
        budget: String,
        /// USD left in the window.
        remaining: rust_decimal::Decimal,
        /// Worst-case USD of the request.
        cost: rust_decimal::Decimal,
        /// ` in this window (resets at ...)` or empty.
        window: String,
    },
    /// The key's own rate limit is reached.
    #[error("Rate limit of {max} {what} reached for API key {key}; retry after {}s", retry_after.as_secs().max(1))]
    KeyRateLimited {
        /// Key name.
        key: String,
        /// `requests per minute`, `tokens per minute`, `concurrent requests`.
        what: &'static str,
        /// The limit.
        max: u64,
        /// Header family (`requests`, `tokens`) for `X-RateLimit-*`, if any.
        header: Option<&'static str>,
        /// When to retry.
        retry_after: std::time::Duration,
    },
    /// The spend ledger cannot be reached and a budget in scope fails closed.
    #[error("The spend ledger is unavailable and budget {0} does not admit uncounted requests")]
    LedgerUnavailable(String),
    /// Every eligible upstream is rate limited; retry after the given time.
    #[error("{message}")]
    RateLimited {
        /// What happened.
        message: String,
        /// When to retry.
        retry_after: std::time::Duration,
        /// Attempts made, if any.
        attempts: Vec<AttemptReport>,
    },
    /// Every attempt failed.
    #[error("{message}")]
    AllAttemptsFailed {
        /// Summary.
        message: String,
        /// True when the last failure was a timeout (504 instead of 502).
        timed_out: bool,
        /// The last upstream body, scrubbed.
        raw: Option<String>,
        /// Every attempt made.
        attempts: Vec<AttemptReport>,
    },
    /// The request body arrived too slowly.
    #[error("{0}")]
    RequestTimeout(String),
    /// A bug or an impossible state; details are logged, not sent.
    #[error("Internal error")]
    Internal(String),
}

/// A request body that fell below the minimum rate (`--min-body-rate`).
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {min_rate} bytes per second")]
pub struct BodyTooSlow {
    /// The minimum rate, bytes per second.
    pub min_rate: u64,
}

impl ApiError {
    /// A 400 with a parameter name.
    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey
            | ApiError::InvalidKey
            | ApiError::DisabledKey(_)
            | ApiError::ExpiredKey(_)
            | ApiError::AdminCredentialRequired
            | ApiError::InvalidAdminToken
            | ApiError::InvalidToken { .. }
            | ApiError::IdentityNotGranted { .. }
            | ApiError::AmbiguousIdentity { .. } => StatusCode::UNAUTHORIZED,
            ApiError::ModelNotAllowed { .. }
            | ApiError::AdminLoopbackOnly
            | ApiError::AdminHostNotLoopback => StatusCode::FORBIDDEN,
            ApiError::UnknownModel(_)
            | ApiError::GenerationNotFound(_)
            | ApiError::UsageStoreOff
            | ApiError::ResponseNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UsageStoreUnavailable(_) | ApiError::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NoEligibleProvider(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            ApiError::UpstreamRejected { status, .. } => *status,
            ApiError::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::KeyRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LedgerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AllAttemptsFailed { timed_out, .. } => {
                if *timed_out {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::MissingKey
            | ApiError::InvalidKey
            | ApiError::DisabledKey(_)
            | ApiError::ExpiredKey(_)
            | ApiError::AdminCredentialRequired
            | ApiError::InvalidAdminToken
            | ApiError::InvalidToken { .. }
            | ApiError::IdentityNotGranted { .. }
            | ApiError::AmbiguousIdentity { .. } => "authentication_error",
            ApiError::ModelNotAllowed { .. }
            | ApiError::AdminLoopbackOnly
            | ApiError::AdminHostNotLoopback => "permission_error",
            ApiError::UnknownModel(_)
            | ApiError::GenerationNotFound(_)
            | ApiError::UsageStoreOff
            | ApiError::ResponseNotFound(_) => "not_found_error",
            ApiError::UsageStoreUnavailable(_) | ApiError::StoreUnavailable(_) => "api_error",
            ApiError::BadRequest { .. }
            | ApiError::BodyTooLarge { .. }
            | ApiError::RequestTimeout(_)
            | ApiError::UpstreamRejected { .. } => "invalid_request_error",
            ApiError::NoEligibleProvider(_)
            | ApiError::NotImplemented { .. }
            | ApiError::AllAttemptsFailed { .. } => "upstream_error",
            ApiError::RateLimited { .. } | ApiError::KeyRateLimited { .. } => "rate_limit_error",
            ApiError::BudgetExceeded { .. } => "insufficient_quota",
            ApiError::LedgerUnavailable(_) => "api_error",
            ApiError::Internal(_) => "api_error",
        }
    }

    /// Machine-readable `code`, also the metric label for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingKey => "missing_api_key",
            ApiError::InvalidKey => "invalid_api_key",
            ApiError::DisabledKey(_) => "api_key_disabled",
            ApiError::ExpiredKey(_) => "api_key_expired",
            ApiError::InvalidToken { .. } => "invalid_token",
            ApiError::IdentityNotGranted { .. } => "identity_not_granted",
            ApiError::AmbiguousIdentity { .. } => "ambiguous_identity",
            ApiError::ModelNotAllowed { .. } => "model_not_allowed",
            ApiError::UnknownModel(_) => "model_not_found",
            ApiError::GenerationNotFound(_) => "generation_not_found",
            ApiError::AdminCredentialRequired => "admin_token_required",
            ApiError::InvalidAdminToken => "invalid_admin_token",
            ApiError::AdminLoopbackOnly => "admin_loopback_only",
            ApiError::AdminHostNotLoopback => "admin_host_not_loopback",
            ApiError::UsageStoreOff => "usage_store_off",
            ApiError::UsageStoreUnavailable(_) => "usage_store_unavailable",
            ApiError::ResponseNotFound(_) => "response_not_found",
            ApiError::StoreUnavailable(_) => "response_store_unavailable",
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::BodyTooLarge { .. } => "request_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::NoEligibleProvider(_) => "no_eligible_provider",
            ApiError::NotImplemented { .. } => "provider_not_implemented",
            ApiError::UpstreamRejected { .. } => "upstream_rejected",
            ApiError::RateLimited { .. } => "upstream_rate_limited",
            ApiError::BudgetExceeded { .. } => "budget_exceeded",
            ApiError::KeyRateLimited { .. } => "rate_limit_exceeded",
            ApiError::LedgerUnavailable(_) => "ledger_unavailable",
            ApiError::AllAttemptsFailed {
                timed_out: true, ..
            } => "upstream_timeout",
            ApiError::AllAttemptsFailed { .. } => "upstream_failed",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The error object (the value under `"error"`), shared by JSON bodies and stream error chunks.
    pub fn body(&self) -> serde_json::Value {
        let param = match self {
            ApiError::BadRequest { param, .. } => param.clone(),
            _ => None,
        };
        let metadata = match self {
            ApiError::UpstreamRejected { provider, raw, .. } => Some(json!({
                "provider_name": provider,
                "raw": raw,
                "error_type": "upstream_rejected",
            })),
            ApiError::AllAttemptsFailed { attempts, raw, .. } => Some(json!({
                "provider_name": attempts.last().map(|a| a.provider.clone()),
                "raw": raw,
                "error_type": attempts.last().and_then(|a| a.error_type.clone()),
                "attempts": attempts,
            })),
            ApiError::BudgetExceeded {
                budget,
                remaining,
                cost,
                ..
            } => Some(json!({
                "budget": budget,
                "remaining_usd": remaining.to_string(),
                "request_cost_usd": cost.to_string(),
            })),
            ApiError::RateLimited { attempts, .. } => Some(json!({
                "provider_name": attempts.last().map(|a| a.provider.clone()),
                "error_type": "rate_limited",
                "attempts": attempts,
            })),
            ApiError::NotImplemented {
                provider,
                provider_type,
            } => Some(json!({"provider_name": provider, "provider_type": provider_type})),
            ApiError::InvalidToken { reason, .. } => Some(json!({"reason": reason})),
            _ => None,
        };
        let mut metadata = metadata.unwrap_or_else(|| json!({}));
        metadata["error_code"] = json!(self.code());
        json!({
            "message": self.to_string(),
            "type": self.error_type(),
            "code": self.status().as_u16(),
            "param": param,
            "metadata": metadata,
        })
    }
}

/// The error object of a stream that fails after its first byte (carried by the format's own
/// error event: a chat chunk's `error`, a Responses `response.failed`): HTTP status 502 in
/// `code`, OpenRouter's canonical `metadata.error_type` (`server`), and Switchboard's reason
/// (`stream_interrupted`, `stream_truncated`) in `metadata.error_code`.
pub fn stream_error(message: String, error_code: &str) -> serde_json::Value {
    json!({
        "message": message,
        "type": "upstream_error",
        "code": 502,
        "param": null,
        "metadata": {"error_type": "server", "error_code": error_code},
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::UsageStoreUnavailable(detail) => {
                tracing::warn!(%detail, "usage store read failed");
            }
            _ => {}
        }
        let status = self.status();
        let mut resp = (status, axum::Json(json!({ "error": self.body() }))).into_response();
        if let ApiError::RateLimited { retry_after, .. }
        | ApiError::KeyRateLimited { retry_after, .. } = &self
        {
            let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            if let ApiError::KeyRateLimited {
                max,
                header: Some(family),
                ..
            } = &self
            {
                for (name, value) in [
                    (format!("x-ratelimit-limit-{family}"), max.to_string()),
                    (format!("x-ratelimit-remaining-{family}"), "0".to_string()),
                    (format!("x-ratelimit-reset-{family}"), format!("{secs}s")),
                ] {
                    if let (Ok(n), Ok(v)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        h.insert(n, v);
                    }
                }
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Replaces every occurrence of a secret, and anything shaped like a well-known API key, with
/// `[REDACTED]`, so upstream bodies can be shown to clients and logs.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[REDACTED]");
    }
    // Key-shaped tokens: sk-..., sk-ant-..., AIza..., with at least 12 key characters after the
    // marker. Upstreams echo partial keys in auth errors.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(pos) = ["sk-", "AIza"]
        .iter()
        .filter_map(|m| rest.find(m).map(|p| (p, m.len())))
        .min()
    {
        let (start, marker_len) = pos;
        let tail = &rest[start + marker_len..];
        let run = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*'))
            .unwrap_or(tail.len());
        result.push_str(&rest[..start]);
        if run >= 12 {
            result.push_str("[REDACTED]");
        } else {
            result.push_str(&rest[start..start + marker_len + run]);
        }
        rest = &tail[run..];
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_known_secrets_and_key_shaped_tokens() {
        let s = scrub(
            "Incorrect API key provided: sk-proj-abcdefghijklmnop. my-secret-value here; sk-short ok",
            &["my-secret-value"],
        );
        assert_eq!(
            s,
            "Incorrect API key provided: [REDACTED]. [REDACTED] here; sk-short ok"
        );
    }

    #[test]
    fn every_error_has_the_openai_envelope_fields() {
        let e = ApiError::bad_param("messages", "messages must be an array");
        let body = e.body();
        assert_eq!(body["type"], "invalid_request_error");
        assert_eq!(body["code"], 400, "the HTTP status, as OpenRouter sends it");
        assert_eq!(body["metadata"]["error_code"], "invalid_request");
        assert_eq!(body["param"], "messages");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
