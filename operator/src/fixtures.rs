//! Test fixtures: a kube `Client` whose every request is checked by the test (kube-rs
//! controller-rs `ApiServerVerifier` pattern), and small object builders.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

/// The API server side of a mock client: the test takes each request in order and answers it.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Full<Bytes>>>);

/// One request the client made.
#[derive(Debug)]
pub struct Call {
    /// HTTP method.
    pub method: http::Method,
    /// Path without the query.
    pub path: String,
    /// Query string (may be empty).
    pub query: String,
    /// `Content-Type` header.
    pub content_type: String,
    /// JSON body (`Null` when empty).
    pub body: Value,
}

/// A client wired to a verifier.
pub fn client() -> (Client, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Full<Bytes>>>();
    (Client::new(service, "default"), ApiServerVerifier(handle))
}

impl ApiServerVerifier {
    /// The next request, and the handle to answer it.
    pub async fn next(&mut self) -> (Call, SendResponse<Response<Full<Bytes>>>) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the client made a request");
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON request body")
        };
        (
            Call {
                method,
                path,
                query,
                content_type,
                body,
            },
            send,
        )
    }

    /// The next request, which must be `method path`; answered with `status` and `body`.
    pub async fn expect(&mut self, method: &str, path: &str, status: u16, body: Value) -> Call {
        let (call, send) = self.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            (method, path),
            "unexpected call {call:?}"
        );
        respond(send, status, body);
        call
    }

    /// Asserts the client makes no further request within a short while.
    pub async fn expect_no_more(&mut self) {
        let next =
            tokio::time::timeout(std::time::Duration::from_millis(200), self.0.next_request());
        if let Ok(Some((request, _))) = next.await {
            panic!("unexpected call {} {}", request.method(), request.uri());
        }
    }
}

/// Answers a request.
pub fn respond(send: SendResponse<Response<Full<Bytes>>>, status: u16, body: Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
            .unwrap(),
    );
}

/// A Kubernetes `Status` error body.
pub fn status_error(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
           "reason": reason, "message": format!("mock: {reason}")})
}
