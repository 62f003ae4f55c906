//! `GET /api/v1/generation?id=gen-...`: a request's record, readable only by the key that made
//! it: from this replica's recent records, else Redis (with the Redis ledger), else the usage
//! store (older records, and those from before a restart).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::intake::{authenticate, new_generation_id};
use crate::{
    error::ApiError,
    observability::{access::Access, generations::Stored},
    state::{AppState, RECORDS_WAIT},
};

/// Query of the generation endpoint.
#[derive(Deserialize)]
pub struct GenerationQuery {
    id: Option<String>,
}

/// Handles a generation lookup.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<GenerationQuery>,
) -> Response {
    let mut access = Access::new(state.clone(), "generation", new_generation_id());
    let result = async {
        let caller = authenticate(&state, &headers, &mut access).await?;
        let id =
            q.id.filter(|id| !id.is_empty())
                .ok_or_else(|| ApiError::bad_param("id", "`id` is required"))?;
        // This replica's records first (including those of responses just sent), then the
        // ledger's shared store (Redis), where every replica writes its records, then the
        // usage store.
        if state.generations.get(&id).is_none() {
            state.records_written(RECORDS_WAIT).await;
        }
        let found = match state.generations.get(&id) {
            Some(g) => Some(Stored::from(&*g)),
            None => match state.settler.ledger().get_generation(&id).await {
                Ok(Some(json)) => serde_json::from_str::<Stored>(&json).ok(),
                _ => stored(&state, &id).await,
            },
        };
        let g = found
            .filter(|g| g.key_id == caller.key().id())
            .ok_or_else(|| ApiError::GenerationNotFound(id.clone()))?;
        Ok::<_, ApiError>(g)
    }
    .await;
    match result {
        Ok(g) => Json(json!({"data": g.data})).into_response(),
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            e.into_response()
        }
    }
}

/// The record from the usage store, if there is one and it answers (a store that does not is
/// the same, to the client, as a record not found).
async fn stored(state: &AppState, id: &str) -> Option<Stored> {
    let store = state.usage.get()?.store();
    match store.generation(id).await {
        Ok(record) => record.map(|r| Stored::from(&r)),
        Err(e) => {
            tracing::warn!(generation_id = %id, "usage store lookup failed: {e}");
            None
        }
    }
}
