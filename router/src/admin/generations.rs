//! `GET /admin/v1/generations` (every key's records, newest first, a page at a time with an
//! opaque `cursor`; filters by key, team, model, provider, app, tag, user, endpoint, status and
//! time) and `GET /admin/v1/generations/{id}`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    error::ApiError,
    state::AppState,
    usage::{query::GenerationsQuery, query_params, unavailable},
};

/// `GET /admin/v1/generations`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let result = async {
        let q =
            GenerationsQuery::parse(&query_params(query)?).map_err(|m| ApiError::BadRequest {
                message: m,
                param: None,
            })?;
        state
            .usage_store()?
            .generations(&q)
            .await
            .map_err(unavailable)
    }
    .await;
    match result {
        Ok(page) => Json(json!({
            "data": page.records.iter().map(|r| r.render(true)).collect::<Vec<_>>(),
            "next_cursor": page.next.map(|c| c.render()),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /admin/v1/generations/{id}`: from this replica's recent records (which include requests
/// not yet written to the store), else the store.
pub async fn get(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let result = async {
        if let Some(r) = state.generations.get(&id) {
            return Ok(r.render(true));
        }
        let store = state.usage_store()?;
        match store.generation(&id).await.map_err(unavailable)? {
            Some(r) => Ok(r.render(true)),
            None => Err(ApiError::GenerationNotFound(id.clone())),
        }
    }
    .await;
    match result {
        Ok(data) => Json(json!({ "data": data })).into_response(),
        Err(e) => e.into_response(),
    }
}
