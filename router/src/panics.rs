//! The last line of defence: a panic while serving a request (a bug: none should be reachable
//! from a request or a manifest) answers 500 in the OpenAI error shape instead of dropping the
//! connection, is logged with its message, and the request's access record says status 500 and
//! outcome `panic`. A stream that panics after its headers went out ends with an error chunk.
//!
//! The handler's state (its access record with it) is dropped after the panic is caught, not
//! while unwinding; [`request_panicked`] tells the record's `Drop` that it is being dropped
//! because of a panic.

use std::{
    any::Any,
    cell::Cell,
    convert::Infallible,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{extract::Request, middleware::Next, response::Response};
use bytes::Bytes;
use futures_util::{FutureExt, Stream};

use crate::error::ApiError;

thread_local! {
    /// Set while the state of a request that panicked is being dropped.
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the code running now drops the state of a request that panicked (or unwinds one).
pub fn request_panicked() -> bool {
    std::thread::panicking() || PANICKED.with(Cell::get)
}

/// Drops `state` with [`request_panicked`] true.
fn drop_as_panicked<T>(state: T) {
    PANICKED.with(|p| p.set(true));
    drop(state);
    PANICKED.with(|p| p.set(false));
}

/// A panic's message, when it has one.
fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Middleware: runs the rest of the stack, answering 500 when it panics.
pub async fn catch_panics(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut serving = Box::pin(AssertUnwindSafe(next.run(req)).catch_unwind());
    match serving.as_mut().await {
        Ok(response) => response,
        Err(panic) => {
            tracing::error!(
                path,
                panic = message(panic.as_ref()),
                "a request panicked; answering 500"
            );
            drop_as_panicked(serving);
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "the request panicked".into(),
            ))
        }
    }
}

/// A response body stream that, when the stream panics, ends with the client format's error
/// (see [`crate::streaming::sse`]) instead of cutting the connection.
pub struct CatchPanics<S> {
    inner: Option<S>,
    last_words: Bytes,
}

impl<S> CatchPanics<S> {
    /// Wraps `inner`, which ends with `last_words` if it panics ([`chat_panic_frame`],
    /// [`anthropic_panic_frame`]).
    pub fn new(inner: S, last_words: Bytes) -> Self {
        CatchPanics {
            inner: Some(inner),
            last_words,
        }
    }
}

/// The error chunk an OpenAI chat stream ends with when it panicked.
pub fn chat_panic_frame() -> Bytes {
    let error = ApiError::Internal("the stream panicked".into());
    let chunk = serde_json::json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
        "error": error.body(),
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The `error` event an Anthropic Messages stream ends with when it panicked.
pub fn anthropic_panic_frame() -> Bytes {
    let event = serde_json::json!({
        "type": "error",
        "error": {"type": "api_error", "message": "Internal error: the stream panicked"},
    });
    Bytes::from(format!("event: error\ndata: {event}\n\n"))
}

/// The error chunk a legacy completions stream ends with when it panicked.
pub fn completions_panic_frame() -> Bytes {
    let error = ApiError::Internal("the stream panicked".into());
    let chunk = serde_json::json!({
        "object": "text_completion",
        "choices": [{"index": 0, "text": "", "logprobs": null, "finish_reason": "error"}],
        "error": error.body(),
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The `error` event a Responses stream ends with when it panicked (its place in the stream is
/// unknown here, so it carries no `sequence_number`).
pub fn responses_panic_frame() -> Bytes {
    let event = serde_json::json!({
        "type": "error",
        "code": "server_error",
        "message": "Internal error: the stream panicked",
        "param": null,
    });
    Bytes::from(format!("event: error\ndata: {event}\n\n"))
}

impl<S> Stream for CatchPanics<S>
where
    S: Stream<Item = Result<Bytes, Infallible>> + Unpin,
{
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled =
            std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll_next(cx)));
        match polled {
            Ok(next) => next,
            Err(panic) => {
                tracing::error!(
                    panic = message(panic.as_ref()),
                    "a stream panicked; ending it with an error chunk"
                );
                drop_as_panicked(self.inner.take());
                Poll::Ready(Some(Ok(self.last_words.clone())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{Router, body::Body, extract::State, routing::get};
    use futures_util::StreamExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{observability::access::Access, state::AppState};

    async fn panicking(State(state): State<Arc<AppState>>) -> Response {
        let access = Access::new(state, "chat", "gen-panic".into());
        // Held across an await, like every handler's record.
        tokio::task::yield_now().await;
        let armed = true;
        if armed {
            panic!("a bug");
        }
        drop(access);
        Response::new(Body::empty())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_its_record_says_so() {
        let state = AppState::new(Default::default());
        let app = Router::new()
            .route("/", get(panicking))
            .layer(axum::middleware::from_fn(catch_panics))
            .with_state(state.clone());
        let resp = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], 500);
        assert_eq!(v["error"]["metadata"]["error_code"], "internal_error");
        assert_eq!(v["error"]["type"], "api_error");
        assert!(
            state.metrics.render().contains(
                r#"switchboard_requests_total{endpoint="chat",model="unknown",status="500"} 1"#
            ),
            "{}",
            state.metrics.render()
        );
        assert!(!request_panicked());
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_with_an_error_chunk() {
        let mut n = 0;
        let frames = futures_util::stream::poll_fn(move |_| {
            n += 1;
            assert!(n < 2, "a bug mid-stream");
            Poll::Ready(Some(Ok::<_, Infallible>(Bytes::from_static(
                b"data: {}\n\n",
            ))))
        });
        let out: Vec<Bytes> = CatchPanics::new(Box::pin(frames), chat_panic_frame())
            .map(|f| f.unwrap())
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        let last = std::str::from_utf8(&out[1]).unwrap();
        assert!(last.contains(r#""finish_reason":"error""#), "{last}");
        assert!(last.contains("internal_error"), "{last}");
    }

    /// Responses and completions streams end in their own formats.
    #[tokio::test]
    async fn responses_and_completions_streams_end_in_their_formats() {
        for (last_words, want) in [
            (responses_panic_frame(), "event: error\ndata: "),
            (completions_panic_frame(), "data: "),
        ] {
            let frames =
                futures_util::stream::poll_fn(|_| -> Poll<Option<Result<Bytes, Infallible>>> {
                    panic!("a bug mid-stream")
                });
            let out: Vec<Bytes> = CatchPanics::new(Box::pin(frames), last_words)
                .map(|f| f.unwrap())
                .collect()
                .await;
            let text = std::str::from_utf8(&out[0]).unwrap();
            let data: serde_json::Value =
                serde_json::from_str(text.strip_prefix(want).unwrap().trim()).unwrap();
            if want.starts_with("event") {
                assert_eq!(
                    (data["type"].as_str(), data["code"].as_str()),
                    (Some("error"), Some("server_error"))
                );
            } else {
                assert_eq!(data["object"], "text_completion");
                assert_eq!(data["choices"][0]["finish_reason"], "error");
            }
        }
    }

    /// An Anthropic stream ends with Anthropic's `error` event, which its SDKs raise.
    #[tokio::test]
    async fn a_panicking_anthropic_stream_ends_with_an_error_event() {
        let frames =
            futures_util::stream::poll_fn(|_| -> Poll<Option<Result<Bytes, Infallible>>> {
                panic!("a bug mid-stream")
            });
        let out: Vec<Bytes> = CatchPanics::new(Box::pin(frames), anthropic_panic_frame())
            .map(|f| f.unwrap())
            .collect()
            .await;
        let text = std::str::from_utf8(&out[0]).unwrap();
        let data: serde_json::Value =
            serde_json::from_str(text.strip_prefix("event: error\ndata: ").unwrap().trim())
                .unwrap();
        assert_eq!(data["type"], "error");
        assert_eq!(data["error"]["type"], "api_error");
    }
}
