//! Request intake shared by every endpoint: the request's record and generation id, the
//! caller's key, and the JSON body within the size limit.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    auth::Caller,
    error::{ApiError, BodyTooSlow},
    json::RawObject,
    observability::access::{Access, Identity},
    state::AppState,
    usage::attribution::Attribution,
};
use axum::{body::Body, http::HeaderMap};
use rand::{Rng, distr::Alphanumeric};

/// Header carrying the generation id on every generation response.
pub const GENERATION_ID_HEADER: &str = "x-generation-id";

/// Starts the record of a generation request (chat, embeddings, messages, and any endpoint
/// added later): a fresh generation id, the client's trace context continued, the tags and app
/// its headers name. Once its caller is known, the request is kept in the generation and usage
/// stores whatever happens to it.
pub fn begin(state: &Arc<AppState>, endpoint: &'static str, headers: &HeaderMap) -> Access {
    let mut access = Access::new(state.clone(), endpoint, new_generation_id());
    access.of_record = true;
    access.attribution = Attribution::from_headers(headers);
    access.cache_directives = crate::cache::Directives::from_headers(headers);
    access.continue_trace(headers);
    access
}

/// Adds `X-Generation-Id: <id>` to a response.
pub fn tag_generation(response: &mut axum::response::Response, id: &str) {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        response.headers_mut().insert(GENERATION_ID_HEADER, v);
    }
}

/// A fresh generation id in OpenRouter's form: `gen-`, the Unix time in seconds, `-` and 20 random
/// alphanumerics. Ids made close in time sort close together, so the usage store's index on them
/// grows at one end instead of at random places (half the cost of writing a record, measured).
pub fn new_generation_id() -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("gen-{}-{suffix}", now_unix())
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Authenticates the request against the current config, and records who is calling.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    access: &mut Access,
) -> Result<Caller, ApiError> {
    let runtime = state.runtime().ok_or_else(|| {
        ApiError::NoEligibleProvider("The router has no configuration yet".into())
    })?;
    let caller = Caller::authenticate(runtime, &state.tokens, headers, now_unix(), |key, token| {
        access.key = Some(key.name.clone());
        access.key_id = Some(key.id());
        access.team = key.team.clone();
        access.identity = token.map(|t| Identity {
            issuer: t.issuer.clone(),
            subject: t.subject.clone(),
            pod: t.kubernetes.as_ref().and_then(|k| k.pod.clone()),
        });
    })
    .await;
    if let Some(outcome) = token_outcome(&caller) {
        state
            .metrics
            .token_authentications
            .with_label_values(&[outcome])
            .inc();
    }
    caller
}

/// The outcome a token caller is counted under, or `None` for a static key.
fn token_outcome(caller: &Result<Caller, ApiError>) -> Option<&'static str> {
    match caller {
        Ok(c) => c.token.as_ref().map(|_| "ok"),
        Err(ApiError::InvalidToken { reason, .. }) => Some(reason),
        Err(ApiError::IdentityNotGranted { .. }) => Some("not_granted"),
        Err(ApiError::AmbiguousIdentity { .. }) => Some("ambiguous"),
        Err(_) => None,
    }
}

/// Intake of a generation request: the caller and its JSON body. The body is read before the key
/// is checked, though a bad key is still the error reported first: a response sent over an unread
/// body makes the server close the connection, and a client whose body arrives after the 401
/// could see a reset instead of it.
pub async fn authenticated_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    access: &mut Access,
) -> Result<(Caller, RawObject), ApiError> {
    let body = read_json(state, headers, body).await;
    let caller = authenticate(state, headers, access).await?;
    let body = body?;
    access.attribution.add_body(&body);
    Ok((caller, body))
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
        let source = std::error::Error::source(&e);
        let too_large = source.is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        let slow = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |c| {
            c.source()
        })
        .find_map(|c| c.downcast_ref::<BodyTooSlow>());
        if let Some(slow) = slow {
            ApiError::RequestTimeout(format!("Could not read the request body: {slow}"))
        } else if too_large {
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

/// Records the error on the access record (status, outcome) and renders it in the OpenAI shape.
pub fn error_response(e: ApiError, mut access: Access) -> axum::response::Response {
    use axum::response::IntoResponse;
    access.status = e.status().as_u16();
    access.outcome = Some(e.code().to_string());
    e.into_response()
}
