//! Connections cannot be held open for free (issue 16, finding 4a): an idle connection, a
//! half-sent head and a body that never arrives are closed within their timeouts, on both ports;
//! a listener past its connection cap answers 503; and what hyper refuses before the router sees
//! a request (431 for oversized or too many headers, 400 for a NUL in a header or a negative
//! `Content-Length`) carries an OpenAI-shaped JSON body.

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::*;
use switchboard_router::{server::connection::ConnectionLimits, state::Settings};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn limits() -> Settings {
    Settings {
        connections: ConnectionLimits {
            header_timeout: Duration::from_millis(600),
            idle_timeout: Duration::from_millis(1200),
            min_body_rate: 1024,
            max_connections: 8,
        },
        ..Settings::default()
    }
}

async fn router() -> TestRouter {
    TestRouter::start_with(&manifests(&[]), limits()).await
}

/// Reads until the peer closes (or 20 s pass): what it sent, and how long until it closed.
async fn until_closed(tcp: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, started.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after 20 s"),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 response.
fn parse(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {text}")),
    )
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_sends_nothing_is_closed_within_the_idle_timeout_on_both_ports() {
    let router = router().await;
    for addr in [router.server.api_addr, router.server.admin_addr] {
        let mut tcp = connect(addr).await;
        let (sent, after) = until_closed(&mut tcp).await;
        assert!(sent.is_empty());
        assert!(
            after >= Duration::from_millis(1000) && after < Duration::from_secs(4),
            "{after:?}"
        );
    }
    let metrics = router.metrics().await;
    for listener in ["api", "admin"] {
        assert!(
            metrics.contains(&format!(
                r#"switchboard_connections_closed_total{{listener="{listener}",reason="idle_timeout"}} 1"#
            )),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_head_is_closed_within_the_header_timeout() {
    let router = router().await;
    let mut tcp = connect(router.server.api_addr).await;
    tcp.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (sent, after) = until_closed(&mut tcp).await;
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    // The header timeout (0.6 s) from the first byte, twice at most (the preface check, then
    // hyper's head), well before the idle timeout would have.
    assert!(after < Duration::from_millis(1800), "{after:?}");
    assert!(router.metrics().await.contains(
        r#"switchboard_connections_closed_total{listener="api",reason="header_timeout"} 1"#
    ));
}

/// With the defaults (10 s): the finding was a half-sent head held for more than 95 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_head_is_closed_within_the_default_header_timeout() {
    let router = TestRouter::start(&manifests(&[])).await;
    let mut tcp = connect(router.server.api_addr).await;
    tcp.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, after) = until_closed(&mut tcp).await;
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(10) + Duration::from_secs(3),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let router = router().await;
    let mut tcp = connect(router.server.api_addr).await;
    tcp.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 401"));
    // Idle now: closed after the idle timeout (1.2 s), not the header timeout (0.6 s).
    let (_, after) = until_closed(&mut tcp).await;
    assert!(
        after >= Duration::from_millis(1000) && after < Duration::from_secs(4),
        "{after:?}"
    );
    assert!(router.metrics().await.contains(
        r#"switchboard_connections_closed_total{listener="api",reason="idle_timeout"} 1"#
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_arrives_fails_with_408() {
    let router = router().await;
    let mut tcp = connect(router.server.api_addr).await;
    tcp.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (sent, after) = until_closed(&mut tcp).await;
    assert!(after < Duration::from_secs(4), "{after:?}");
    let (status, body) = parse(&sent);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], 408);
    assert_eq!(body["error"]["metadata"]["error_code"], "request_timeout");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_a_client_gets_503_and_a_metric_counts_it() {
    let router = router().await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut tcp = connect(router.server.api_addr).await;
        // Opened a request, so the connection is not closed before the test ends.
        tcp.write_all(b"GET").await.unwrap();
        held.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ninth = connect(router.server.api_addr).await;
    let (sent, _) = until_closed(&mut ninth).await;
    let (status, body) = parse(&sent);
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(
        body["error"]["metadata"]["error_code"],
        "too_many_connections"
    );
    let metrics = router.metrics().await;
    assert!(
        metrics.contains(r#"switchboard_connections_rejected_total{listener="api"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_connections_open{listener="api"} 8"#),
        "{metrics}"
    );
    drop(held);
    // Once they are gone, connections are served again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = router
        .http
        .get(router.url("/v1/models"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// #16.5: hyper-level rejections had empty bodies.
#[tokio::test(flavor = "multi_thread")]
async fn requests_hyper_refuses_get_openai_shaped_errors() {
    let router = router().await;
    let many: String = (0..5_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "a".repeat(1 << 20));
    for (head, status, code) in [
        (many.as_str(), 431, "request_header_fields_too_large"),
        (huge.as_str(), 431, "request_header_fields_too_large"),
        ("X-Nul: a\0b\r\n", 400, "invalid_request"),
        ("Content-Length: -1\r\n", 400, "invalid_request"),
    ] {
        let mut tcp = connect(router.server.api_addr).await;
        let request = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{head}\r\n");
        // The router may close before reading everything; what it answered is what counts.
        let _ = tcp.write_all(request.as_bytes()).await;
        let (sent, _) = until_closed(&mut tcp).await;
        let (got, body) = parse(&sent);
        assert_eq!(got, status, "{}", &head[..head.len().min(40)]);
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["metadata"]["error_code"], code);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].is_string());
    }
    // A request the router answers itself after that is untouched.
    let mut tcp = connect(router.server.api_addr).await;
    tcp.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (sent, _) = until_closed(&mut tcp).await;
    let (status, body) = parse(&sent);
    assert_eq!(
        (status, body["error"]["metadata"]["error_code"].as_str()),
        (401, Some("missing_api_key"))
    );
}
