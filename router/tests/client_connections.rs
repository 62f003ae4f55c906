//! How client connections are served: HTTP/1.1, or HTTP/2 for a client that opens with the HTTP/2
//! preface (h2c with prior knowledge). The router peeks at the first bytes to choose, so a preface
//! or a request line that arrives in pieces must still be recognised.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const CHAT_BODY: &str = r#"{"model":"test/model","messages":[{"role":"user","content":"hi"}]}"#;

async fn router() -> (MockUpstream, TestRouter) {
    let up = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    (up, router)
}

/// A raw connection to the API that sends `first`, pauses 50 ms, then sends `rest`.
async fn send_in_two(router: &TestRouter, first: &[u8], rest: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(router.server.api_addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(rest).await.unwrap();
    tcp
}

/// Reads from `tcp` until `done` says the bytes so far are enough (or the peer closes).
async fn read_until(tcp: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&buf) {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk))
            .await
            .expect("the router answered in time")
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_client_with_prior_knowledge_is_served_over_http2() {
    let (_up, router) = router().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(router.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Café \"quoted\" 1.50"
    );

    // The same client on the same connection: a stream, then the key check.
    let resp = h2
        .post(router.url("/v1/chat/completions"))
        .bearer_auth("sk-sb-not-a-key-000000000000")
        .json(&json!({"model": "test/model", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preface_that_arrives_in_pieces_is_still_http2() {
    let (_up, router) = router().await;
    // The rest of the preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    let mut tcp = send_in_two(
        &router,
        b"PRI * HTTP/2.0\r\n",
        b"\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    )
    .await;
    let reply = read_until(&mut tcp, |b| b.len() >= 9).await;
    assert!(reply.len() >= 9, "no frame came back: {reply:?}");
    assert_eq!(
        reply[3], 0x04,
        "the server's first frame must be SETTINGS (an HTTP/2 server): {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http1_request_whose_first_bytes_look_like_the_preface_is_http1() {
    let (_up, router) = router().await;
    let request = format!(
        "OST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{CHAT_BODY}",
        CHAT_BODY.len()
    );
    // "P" is also how the HTTP/2 preface starts: the router must wait for more before choosing.
    let mut tcp = send_in_two(&router, b"P", request.as_bytes()).await;
    let reply = read_until(&mut tcp, |_| false).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Caf\\u00e9 \\\"quoted\\\" 1.50"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_sends_does_not_hold_up_shutdown() {
    let (_up, router) = router().await;
    // Connected, silent: the router is still waiting for its first bytes to choose a protocol.
    let mut idle = TcpStream::connect(router.server.api_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The drain timeout is 5 s; an idle connection has nothing to drain.
    tokio::time::timeout(Duration::from_secs(3), router.server.shutdown())
        .await
        .expect("shutdown waited on a connection that had sent nothing");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf))
        .await
        .expect("the idle connection was closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "the idle connection got bytes: {:?}", &buf[..n]);
}
