//! `/loglevel`: the live log filter, read with `GET` and replaced with `PUT`.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::state::{AppState, RECORDS_WAIT};

/// `GET /loglevel`: the filter in force.
pub async fn get_log_level(State(state): State<Arc<AppState>>) -> Response {
    match state.log_level.get() {
        Some(l) => (StatusCode::OK, format!("{}\n", l.get())).into_response(),
        None => no_live_filter(),
    }
}

/// `PUT /loglevel` with a tracing filter as the body (`debug`, `info,switchboard=debug`). The new
/// filter applies to requests answered after the change: the records of responses already sent
/// (written right after their response) are written first, at the level they were served under.
pub async fn set_log_level(State(state): State<Arc<AppState>>, body: String) -> Response {
    state.records_written(RECORDS_WAIT).await;
    match state.log_level.get() {
        Some(l) => match l.set(body.trim()) {
            Ok(()) => (StatusCode::OK, format!("{}\n", l.get())).into_response(),
            Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
        None => no_live_filter(),
    }
}

fn no_live_filter() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no live log filter in this process\n",
    )
        .into_response()
}
