//! `GET /v1/models`: the public models the caller's key may use, with OpenRouter-style fields
//! (`context_length`, `pricing` as USD-per-token strings, `supported_parameters`, `top_provider`).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use switchboard_api::snapshot::{Capability, RouteConfig};

use super::intake::{authenticate, new_generation_id};
use crate::{config::runtime::Runtime, observability::access::Access, state::AppState};

/// Handles a model listing.
pub async fn handle(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut access = Access::new(state.clone(), "models", new_generation_id());
    let caller = match authenticate(&state, &headers, &mut access).await {
        Ok(c) => c,
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            return e.into_response();
        }
    };
    let key = caller.key();
    let data: Vec<Value> = caller
        .runtime
        .config
        .routes
        .values()
        .filter(|r| key.may_use(&r.model))
        .filter_map(|r| model_entry(&caller.runtime, r))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

fn per_token(per_million: Decimal) -> String {
    (per_million / Decimal::from(1_000_000u32))
        .normalize()
        .to_string()
}

/// One listing entry, described by the route's first target (the primary provider model).
fn model_entry(runtime: &Runtime, route: &RouteConfig) -> Option<Value> {
    let primary = route
        .targets
        .iter()
        .min_by_key(|t| t.priority)
        .and_then(|t| {
            runtime
                .config
                .providers
                .get(&t.provider)?
                .models
                .get(&t.model)
        })?;
    let p = &primary.pricing;
    let mut params = vec![
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "response_format",
    ];
    if primary.capabilities.contains(&Capability::Tools) {
        params.extend(["tools", "tool_choice"]);
    }
    if primary.capabilities.contains(&Capability::JsonSchema) {
        params.push("structured_outputs");
    }
    if primary.capabilities.contains(&Capability::Reasoning) {
        params.extend(["reasoning", "include_reasoning"]);
    }
    let input_modalities = if primary.capabilities.contains(&Capability::Vision) {
        json!(["text", "image"])
    } else {
        json!(["text"])
    };
    Some(json!({
        "id": route.model,
        "object": "model",
        "created": 0,
        "owned_by": route.namespace,
        "name": route.model,
        "context_length": primary.context_length,
        "architecture": {"input_modalities": input_modalities, "output_modalities": ["text"]},
        "pricing": {
            "prompt": per_token(p.input_per_million),
            "completion": per_token(p.output_per_million),
            "input_cache_read": per_token(p.cached_input_per_million),
            "input_cache_write": per_token(p.cache_write_per_million),
            "internal_reasoning": per_token(p.reasoning_per_million),
            "request": p.per_request.normalize().to_string(),
            "image": p.per_image.normalize().to_string(),
        },
        "top_provider": {
            "context_length": primary.context_length,
            "max_completion_tokens": primary.max_output_tokens,
            "is_moderated": false
        },
        "supported_parameters": params,
    }))
}
