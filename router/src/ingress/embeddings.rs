//! `POST /v1/embeddings`.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::Value;

use tracing::Instrument;

use super::intake::{authenticated_json, begin, tag_generation};
use crate::{
    auth::Caller,
    budgets::{admission::admit, bounds::RequestBounds},
    error::ApiError,
    json::RawObject,
    observability::access::Access,
    pricing::reported::{Bill, Expect, UsageBounds, bill, read_openai, usage_json},
    providers::{self, AttemptError, Call},
    routing::{Candidate, attempts::Attempts, request::plan_request},
    state::AppState,
};

/// Handles an embeddings request.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut access = begin(&state, "embeddings", &headers);
    let generation_id = access.generation_id.clone();
    let mut response = match serve(&state, &headers, body, &mut access).await {
        Ok(resp) => resp,
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            e.into_response()
        }
    };
    tag_generation(&mut response, &generation_id);
    access.finish_after_response();
    response
}

fn check_input(body: &RawObject) -> Result<(), ApiError> {
    let input = body
        .get("input")
        .ok_or_else(|| ApiError::bad_param("input", "`input` is required"))?;
    let valid = match serde_json::from_str::<Value>(input.get()) {
        Ok(Value::String(s)) => !s.is_empty(),
        Ok(Value::Array(items)) => {
            !items.is_empty()
                && (items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
                    || items.iter().all(Value::is_u64)
                    || items.iter().all(|i| {
                        i.as_array()
                            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_u64))
                    }))
        }
        _ => false,
    };
    if !valid {
        return Err(ApiError::bad_param(
            "input",
            "`input` must be a non-empty string, array of strings, or array of token arrays",
        ));
    }
    Ok(())
}

async fn serve(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    access: &mut Access,
) -> Result<Response, ApiError> {
    let (caller, body) = authenticated_json(state, headers, body, access).await?;
    let bytes = embed(state, &caller, &body, access).await?;
    let mut resp = (StatusCode::OK, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Embeds the last user turn of a request the semantic cache looks up, as its caller's own
/// embeddings request: planned, admitted, priced and recorded (a record of its own).
pub(super) struct CacheEmbedder<'a> {
    pub state: &'a Arc<AppState>,
    pub caller: &'a Caller,
}

impl crate::cache::request::Embedder for CacheEmbedder<'_> {
    fn embed<'a>(
        &'a self,
        parent: &'a Access,
        model: &'a str,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<f32>, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let mut access = begin(self.state, "embeddings", &HeaderMap::new());
            access.key.clone_from(&parent.key);
            access.key_id.clone_from(&parent.key_id);
            access.team.clone_from(&parent.team);
            access.identity.clone_from(&parent.identity);
            access.attribution.clone_from(&parent.attribution);
            let mut body = RawObject::default();
            body.set("model", &model);
            body.set("input", &text);
            match embed(self.state, self.caller, &body, &mut access).await {
                Ok(bytes) => vector_of(&bytes),
                Err(e) => {
                    access.status = e.status().as_u16();
                    access.outcome = Some(e.code().to_string());
                    Err(e.to_string())
                }
            }
        })
    }
}

/// The first embedding of an embeddings response.
fn vector_of(bytes: &[u8]) -> Result<Vec<f32>, String> {
    #[derive(serde::Deserialize)]
    struct Data {
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Response {
        data: Vec<Data>,
    }
    let r: Response = serde_json::from_slice(bytes)
        .map_err(|e| format!("the embeddings answer has no float embedding: {e}"))?;
    r.data
        .into_iter()
        .next()
        .map(|d| d.embedding)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "the embeddings answer has no embedding".to_string())
}

/// An authenticated embeddings request, through routing, admission and the attempt loop: the
/// priced answer.
async fn embed(
    state: &Arc<AppState>,
    caller: &Caller,
    body: &RawObject,
    access: &mut Access,
) -> Result<Bytes, ApiError> {
    check_input(body)?;
    let plan = plan_request(state, caller, body, access)?;
    let input_bytes = body.get("input").map_or(0, |i| i.get().len() as u64);
    admit(
        state,
        caller,
        &plan,
        RequestBounds::embeddings(input_bytes),
        access,
    )
    .await?;
    let mut attempts = Attempts::new(state, plan);
    while let Some((cand, slot)) = attempts.next(access).await {
        let started = std::time::Instant::now();
        let total = attempts.remaining(Duration::from_millis(
            cand.provider.config.timeouts.total_ms,
        ));
        let first_token = attempts.remaining(Duration::from_millis(
            cand.provider.config.timeouts.first_token_ms,
        ));
        let bounds = access.usage_bounds(cand.model);
        let result = tokio::time::timeout(
            total,
            attempt(&cand, slot.client(), body, first_token, &bounds).instrument(attempts.span()),
        )
        .await
        .unwrap_or(Err(AttemptError::Timeout("total")));
        drop(slot);
        match result {
            Ok((bytes, bill)) => {
                attempts.succeeded(access, &cand, Some(started.elapsed()), None);
                access.usage = Some(bill.usage);
                access.cost = Some(bill.usd());
                access.usage_anomaly = bill.anomaly;
                return Ok(bytes);
            }
            Err(e) => attempts.failed(access, &cand, e)?,
        }
    }
    Err(attempts.exhausted(access))
}

/// One embeddings attempt, priced (its usage checked against `bounds`), with `usage.cost` and
/// `provider` added.
async fn attempt(
    cand: &Candidate<'_>,
    client: &reqwest::Client,
    body: &RawObject,
    first_token: Duration,
    bounds: &UsageBounds,
) -> Result<(Bytes, Bill), AttemptError> {
    let call = Call {
        provider: &cand.provider,
        client,
        upstream_model: cand.upstream_model,
        request: body,
        stream: false,
        first_token_timeout: first_token,
        native: None,
    };
    let bytes = providers::embeddings(call).await?;
    let mut obj = RawObject::parse(&bytes)
        .map_err(|e| AttemptError::Protocol(format!("upstream answered invalid JSON: {e}")))?;
    if obj.get("data").is_none() {
        return Err(AttemptError::Protocol(
            "upstream answered without `data`".into(),
        ));
    }
    let usage_raw = obj.get("usage").filter(|u| u.get() != "null");
    let reported = usage_raw.and_then(|u| serde_json::from_str::<Value>(u.get()).ok());
    let bill = bill(
        read_openai(reported.as_ref(), Expect::Embeddings),
        &cand.model.pricing,
        bounds,
    );
    obj.set_raw("usage", usage_json(&bill, usage_raw));
    obj.set("provider", &cand.provider.config.name);
    Ok((Bytes::from(obj.to_vec()), bill))
}
