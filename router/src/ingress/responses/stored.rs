//! `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
//! `DELETE /v1/responses/{id}`: stored responses, for the key that created them only (any other
//! key gets the same 404 as for an id that never existed).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::ApiError,
    ingress::intake::{authenticate, new_generation_id},
    observability::access::Access,
    response_store::StoredResponse,
    state::AppState,
};

/// The record of `id` for the calling key.
async fn lookup(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
    access: &mut Access,
) -> Result<StoredResponse, ApiError> {
    let caller = authenticate(state, headers, access)?;
    state
        .responses
        .get(id, &caller.key().id())
        .await
        .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?
        .ok_or_else(|| ApiError::ResponseNotFound(id.to_string()))
}

fn respond(result: Result<Response, ApiError>, mut access: Access) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            e.into_response()
        }
    }
}

fn record(state: &Arc<AppState>) -> Access {
    Access::new(state.clone(), "responses_store", new_generation_id())
}

/// `GET /v1/responses/{id}`: the stored `response` object.
pub async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut access = record(&state);
    let result = lookup(&state, &headers, &id, &mut access).await.map(|r| {
        (
            [(http::header::CONTENT_TYPE, "application/json")],
            r.response.get().to_string(),
        )
            .into_response()
    });
    respond(result, access)
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut access = record(&state);
    let result = async {
        let caller = authenticate(&state, &headers, &mut access)?;
        let deleted = state
            .responses
            .delete(&id, &caller.key().id())
            .await
            .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
        if !deleted {
            return Err(ApiError::ResponseNotFound(id.clone()));
        }
        Ok(Json(json!({"id": id, "object": "response.deleted", "deleted": true})).into_response())
    }
    .await;
    respond(result, access)
}

/// Paging of the input items list.
#[derive(Deserialize)]
pub struct ListQuery {
    /// Items per page, 1 to 100 (default 20).
    limit: Option<usize>,
    /// `asc` or `desc` (default, newest first).
    order: Option<String>,
    /// The id of the item after which the page starts.
    after: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`: the conversation the response answered, as a list.
pub async fn input_items(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut access = record(&state);
    let result = async {
        let limit = q.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_param(
                "limit",
                "`limit` must be between 1 and 100",
            ));
        }
        let stored = lookup(&state, &headers, &id, &mut access).await?;
        let mut items: Vec<Value> =
            serde_json::from_str(stored.input_items.get()).unwrap_or_default();
        match q.order.as_deref() {
            None | Some("desc") => items.reverse(),
            Some("asc") => {}
            Some(_) => return Err(ApiError::bad_param("order", "`order` must be asc or desc")),
        }
        Ok(Json(page(items, q.after.as_deref(), limit)).into_response())
    }
    .await;
    respond(result, access)
}

/// One page of `items` (already in order), after the item `after`.
fn page(items: Vec<Value>, after: Option<&str>, limit: usize) -> Value {
    let start = after
        .and_then(|a| items.iter().position(|i| i["id"] == a).map(|p| p + 1))
        .unwrap_or(0);
    let rest = items.len().saturating_sub(start);
    let data: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    json!({
        "object": "list",
        "first_id": data.first().map(|i| i["id"].clone()),
        "last_id": data.last().map(|i| i["id"].clone()),
        "has_more": rest > limit,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_after_and_limit() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("i{i}")})).collect();
        let p = page(items.clone(), None, 2);
        assert_eq!(p["data"], json!([{"id": "i0"}, {"id": "i1"}]));
        assert_eq!(p["has_more"], true);
        let p = page(items, Some("i2"), 5);
        assert_eq!(
            (p["first_id"].clone(), p["last_id"].clone()),
            (json!("i3"), json!("i4"))
        );
        assert_eq!(p["has_more"], false);
    }
}
