//! Every client error gets the right status in the OpenAI error envelope, over real sockets: bad
//! keys, models the key may not use, malformed and oversized bodies, unknown paths and methods;
//! and a refused request keeps its connection.

mod support;

use serde_json::{Value, json};
use support::*;

fn user(content: &str) -> Value {
    json!([{"role": "user", "content": content}])
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_are_401() {
    let router = TestRouter::start(&manifests(&[])).await;
    let url = router.url("/v1/chat/completions");
    let body = json!({"model": "test/mock", "messages": user("hi")});
    let cases = [
        (None, "missing_api_key"),
        (Some("sk-sb-not-a-real-key-000000"), "invalid_api_key"),
        (Some("sk-sb-test-disabled-0123456789"), "api_key_disabled"),
        (Some("sk-sb-test-expired-01234567890"), "api_key_expired"),
    ];
    for (key, code) in cases {
        let mut req = router.http.post(&url).json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (status, v) = error_of(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{code}");
        assert_eq!(v["error"]["metadata"]["error_code"], code);
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    // x-api-key works as well as Authorization.
    let resp = router
        .http
        .post(&url)
        .header("x-api-key", CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn model_errors_are_403_and_404() {
    let router = TestRouter::start(&manifests(&[])).await;
    let (s, v) = error_of(
        router
            .chat(json!({"model": "test/denied", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(
        (s, v["error"]["metadata"]["error_code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let (s, v) = error_of(
        router
            .chat(json!({"model": "nope/nope", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(
        (s, v["error"]["metadata"]["error_code"].as_str()),
        (404, Some("model_not_found"))
    );
    let resp = router
        .http
        .post(router.url("/v1/chat/completions"))
        .bearer_auth("sk-sb-test-other-0123456789")
        .json(&json!({"model": "test/mock", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_400_with_the_position_and_oversized_ones_413() {
    let router = TestRouter::start_with(
        &manifests(&[]),
        switchboard_router::state::Settings {
            max_request_bytes: 4096,
            ..Default::default()
        },
    )
    .await;
    let post = |body: Vec<u8>| {
        router
            .http
            .post(router.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (s, v) = error_of(
        post(b"{\"model\": \"test/mock\",\n \"messages\": [}".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{v}"
    );
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "empty"),
        (b"[1,2]", "expected a JSON object"),
        (b"\xff\xfe garbage", "Invalid JSON"),
        (br#"{"model":"test/mock"}"#, "`messages` is required"),
        (
            br#"{"model":"test/mock","messages":"hi"}"#,
            "`messages` must be an array",
        ),
        (
            br#"{"model":"test/mock","messages":[]}"#,
            "must not be empty",
        ),
        (
            br#"{"model":"test/mock","messages":[{"content":"x"}]}"#,
            "string `role`",
        ),
        (
            br#"{"model":"test/mock","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            "`stream` must be a boolean",
        ),
        (
            br#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
            "`model` must be a string",
        ),
        (
            br#"{"messages":[{"role":"user","content":"x"}]}"#,
            "`model` is required",
        ),
        (
            br#"{"model":"test/mock","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            "max_tokens",
        ),
    ];
    for (body, needle) in cases {
        let (s, v) = error_of(post(body.to_vec()).await.unwrap()).await;
        assert_eq!(s, 400, "{needle}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {v}"
        );
    }
    let big = format!(
        r#"{{"model":"test/mock","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );
    let (s, v) = error_of(post(big.into_bytes()).await.unwrap()).await;
    assert_eq!(
        (s, v["error"]["metadata"]["error_code"].as_str()),
        (413, Some("request_too_large"))
    );
    // Chunked (no Content-Length) bodies are cut off at the limit too.
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1000]))),
    );
    let resp = router
        .http
        .post(router.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_and_methods_get_openai_shaped_errors() {
    let router = TestRouter::start(&manifests(&[])).await;
    let (s, _) = error_of(
        router
            .http
            .get(router.url("/v1/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = error_of(
        router
            .http
            .get(router.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 405);
}

/// A request refused before its body is needed (a bad key) still has its body read: answering
/// over an unread body makes the server close the connection, and a client whose body arrives
/// after the answer sees a reset instead of the 401. Here the body comes 50 ms after the headers
/// and the connection must serve a second request.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_keeps_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let body = r#"{"model":"test/model","messages":[{"role":"user","content":"hi"}]}"#;
    let head = |key: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
    };
    let mut tcp = tokio::net::TcpStream::connect(router.server.api_addr)
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let read_response = async |tcp: &mut tokio::net::TcpStream| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the connection closed: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if buf.len() >= end + 4 + len {
                    return text;
                }
            }
        }
    };
    tcp.write_all(head("sk-sb-not-a-key-000000000000").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    tcp.write_all(body.as_bytes()).await.unwrap();
    let refused = read_response(&mut tcp).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    tcp.write_all(format!("{}{body}", head(CLIENT_KEY)).as_bytes())
        .await
        .unwrap();
    let served = read_response(&mut tcp).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}
