//! The playground: one prompt to one to three routed models side by side, streamed, with the
//! tokens, cost and latency of each answer, using a client key the user pastes.
//!
//! The page's script posts each model's request to `POST /console/playground/chat` on the admin
//! listener (same origin: the CSP allows no other, and no CORS is opened on the client API),
//! with the pasted key in `X-Playground-Key`. That handler hands the request, as
//! `POST /v1/chat/completions` with the key as its bearer token, to the client API's own route
//! table in-process: the same authentication, routing, budgets, fallbacks, streaming, pricing
//! and usage record as any client request, and the key's own limits and budgets apply. The
//! answer streams back as it came (`text/event-stream`).

use std::sync::Arc;

use axum::{
    Extension,
    body::Body,
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::html;
use tower::ServiceExt;

use crate::{
    admin::auth::Admin,
    console::{
        csrf,
        layout::{self, Nav},
        login::refuse_forgery,
    },
    state::AppState,
};

/// The client listener's route table (the client app), handed in by the admin listener's:
/// the playground's requests go through it as a client's would.
#[derive(Clone)]
pub struct ClientApi(pub axum::Router);

/// The header the page sends the pasted client key in (`Authorization` belongs to the admin
/// listener's own authentication).
pub const KEY_HEADER: &str = "x-playground-key";

/// Side-by-side columns.
const COLUMNS: usize = 3;

/// `GET /console/playground`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
) -> Response {
    let models: Vec<String> = state
        .runtime()
        .map(|r| r.config.routes.keys().cloned().collect())
        .unwrap_or_default();
    let body = html! {
        h1 { "Playground" }
        p.muted { "Each answer goes through the router's own pipeline with the key you paste: its allowed models, rate limits and budgets apply, and the request is recorded and charged like any other. The key stays in this page; it is never stored." }
        form #playground hx-boost="false" {
            label.wide { "Client key " input #pg-key type="password" name="key" autocomplete="off" required placeholder="sk-…"; }
            div.models {
                @for i in 0..COLUMNS {
                    label { "Model " (i + 1)
                        select name="model" data-column=(i) {
                            @if i > 0 { option value="" { "(none)" } }
                            @for m in &models { option value=(m) { (m) } }
                        }
                    }
                }
            }
            label.wide { "Prompt " textarea #pg-prompt name="prompt" rows="4" required { "Say hello in five words." } }
            label { "Max tokens " input #pg-max type="number" name="max_tokens" min="1" max="32768" value="256"; }
            button #pg-send type="submit" { "Send" }
        }
        div.answers #pg-answers {
            @for i in 0..COLUMNS {
                section.answer data-column=(i) hidden {
                    h2 data-role="model" {}
                    pre data-role="text" {}
                    dl.facts {
                        dt { "Tokens in / out" } dd data-role="tokens" { "–" }
                        dt { "Cost" } dd data-role="cost" { "–" }
                        dt { "First token" } dd data-role="ttft" { "–" }
                        dt { "Total" } dd data-role="latency" { "–" }
                        dt { "Request" } dd data-role="generation" { "–" }
                    }
                    p.error data-role="error" hidden {}
                }
            }
        }
    };
    layout::respond(&headers, |csrf_token| {
        layout::page(Nav::Playground, Some(&admin), csrf_token, body)
    })
}

/// `POST /console/playground/chat`: the body is a chat completion request; it is served by the
/// client API in-process with the key from [`KEY_HEADER`].
pub async fn chat(Extension(ClientApi(api)): Extension<ClientApi>, req: Request) -> Response {
    let headers = req.headers();
    let presented = headers
        .get(csrf::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(refused) = refuse_forgery(headers, presented) {
        return refused;
    }
    let Some(key) = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return (StatusCode::BAD_REQUEST, "Paste a client key first.").into_response();
    };
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {key}")) else {
        return (
            StatusCode::BAD_REQUEST,
            "The key has characters a key cannot have.",
        )
            .into_response();
    };
    let mut forwarded = http::Request::builder()
        .method(http::Method::POST)
        .uri("/v1/chat/completions")
        .header(header::AUTHORIZATION, bearer)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-title", "Switchboard console playground");
    if let Some(ua) = headers.get(header::USER_AGENT) {
        forwarded = forwarded.header(header::USER_AGENT, ua);
    }
    let body = Body::new(req.into_body());
    let Ok(forwarded) = forwarded.body(body) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match api.oneshot(forwarded).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}
