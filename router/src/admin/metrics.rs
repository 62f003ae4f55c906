//! `GET /metrics`: the Prometheus text exposition.

use std::sync::Arc;

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::state::{AppState, RECORDS_WAIT};

/// `GET /metrics`, including the records of responses already sent.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.records_written(RECORDS_WAIT).await;
    (
        [(
            header::CONTENT_TYPE,
            switchboard_telemetry::metrics::CONTENT_TYPE,
        )],
        state.metrics.render(),
    )
        .into_response()
}
