//! `GET /api/v1/activity`: OpenRouter's activity API — daily rows per model and provider (`date`,
//! `model`, `provider_name`, `usage` in USD, `requests`, `prompt_tokens`, `completion_tokens`,
//! `reasoning_tokens`) over the last 30 UTC days (today, as far as it has gone, included), or the
//! one `?date=YYYY-MM-DD`. A client key sees its own activity; the admin token sees every key's.
//! Read from the usage store's daily rollups.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use switchboard_api::money::from_nanos;

use super::intake::{authenticate, new_generation_id};
use crate::{
    error::ApiError,
    observability::access::Access,
    state::AppState,
    usage::{
        query::{ActivityQuery, date_of, today},
        query_params,
        store::read::ActivityRow,
        unavailable,
    },
};

/// Handles an activity request.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let mut access = Access::new(state.clone(), "activity", new_generation_id());
    let result = async {
        let key_id = if state.settings.admin.bearer_is_admin(&headers) {
            None
        } else {
            Some(
                authenticate(&state, &headers, &mut access)
                    .await?
                    .key()
                    .id(),
            )
        };
        let q = ActivityQuery::parse(&query_params(query)?, today(), key_id)
            .map_err(|m| ApiError::bad_param("date", m))?;
        state.usage_store()?.activity(&q).await.map_err(unavailable)
    }
    .await;
    match result {
        Ok(rows) => {
            Json(json!({ "data": rows.iter().map(render).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            e.into_response()
        }
    }
}

/// One row in OpenRouter's `ActivityItem` shape.
fn render(r: &ActivityRow) -> serde_json::Value {
    let t = &r.totals;
    let provider = (!r.provider.is_empty()).then_some(r.provider.as_str());
    json!({
        "date": date_of(r.day).to_string(),
        "model": r.model,
        "model_permaslug": r.model,
        "endpoint_id": format!("{}:{}", r.provider, r.model),
        "provider_name": provider,
        "usage": from_nanos(t.cost_nanos).to_f64().unwrap_or(0.0),
        "byok_usage_inference": 0.0,
        "requests": t.requests,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "reasoning_tokens": t.reasoning_tokens,
    })
}
