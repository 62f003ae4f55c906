//! Upstreams over TLS (rustls) with HTTP/2 negotiated by ALPN: the router verifies the upstream's
//! certificate against the system roots — here a test CA handed to the router process through the
//! standard `SSL_CERT_FILE` variable — and speaks HTTP/2 when the upstream offers it.

mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Body, extract::Request, routing::post};
use futures_util::StreamExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use support::{
    CLIENT_KEY, RouterProcess, UPSTREAM_COMPLETION, http, manifests, upstream_stream_frames,
};
use tokio::sync::watch;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

/// A test CA (PEM) and a TLS upstream with a leaf certificate for 127.0.0.1 signed by it, which
/// records the HTTP version of every request.
async fn tls_upstream() -> (String, SocketAddr, Arc<Mutex<Vec<http::Version>>>) {
    tls_upstream_with(None, None).await
}

/// [`tls_upstream`], allowing at most `max_streams` concurrent HTTP/2 streams per connection and,
/// with `hold`, holding every stream open after its first content until `hold` turns true.
async fn tls_upstream_with(
    max_streams: Option<u32>,
    hold: Option<watch::Receiver<bool>>,
) -> (String, SocketAddr, Arc<Mutex<Vec<http::Version>>>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();

    switchboard_router::providers::clients::install_crypto_provider();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let versions: Arc<Mutex<Vec<http::Version>>> = Arc::default();
    let seen = versions.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |req: Request| {
            let seen = seen.clone();
            let hold = hold.clone();
            async move {
                seen.lock().unwrap().push(req.version());
                let body: Value = serde_json::from_slice(
                    &axum::body::to_bytes(req.into_body(), 1 << 20)
                        .await
                        .unwrap(),
                )
                .unwrap();
                if body["stream"] == true {
                    let frames = upstream_stream_frames(true);
                    let (first, rest) = (frames[..2].concat(), frames[2..].concat());
                    let hold = hold.clone();
                    let sse = futures_util::stream::once(async move { Ok::<_, Infallible>(first) })
                        .chain(futures_util::stream::once(async move {
                            if let Some(mut hold) = hold {
                                let _ = hold.wait_for(|released| *released).await;
                            }
                            Ok(rest)
                        }));
                    (
                        [("content-type", "text/event-stream")],
                        Body::from_stream(sse),
                    )
                } else {
                    (
                        [("content-type", "application/json")],
                        Body::from(UPSTREAM_COMPLETION),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut builder = auto::Builder::new(TokioExecutor::new());
                if let Some(n) = max_streams {
                    builder.http2().max_concurrent_streams(n);
                }
                let _ = builder
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (ca_cert.pem(), addr, versions)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_upstreams_are_verified_and_spoken_to_over_http2() {
    let (ca_pem, addr, versions) = tls_upstream().await;
    let ca_file = support::temp_manifest(&ca_pem);
    let manifest = manifests(&[format!("https://127.0.0.1:{}/v1", addr.port())]);
    let router =
        RouterProcess::spawn_with_env(&manifest, &[("SSL_CERT_FILE", ca_file.to_str().unwrap())])
            .await;
    let client = http();
    let post = |body: Value| {
        client
            .post(format!("{}/v1/chat/completions", router.api))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
    };
    let messages = json!([{"role": "user", "content": "hi"}]);
    for _ in 0..3 {
        let resp = post(json!({"model": "test/model", "messages": messages}))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["provider"], "up0");
    }
    let streamed = post(json!({"model": "test/model", "messages": messages, "stream": true}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(streamed.ends_with("data: [DONE]\n\n"), "{streamed}");
    let versions = versions.lock().unwrap().clone();
    assert_eq!(versions.len(), 4);
    assert!(
        versions.iter().all(|v| *v == http::Version::HTTP_2),
        "{versions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_upstream_certificate_is_refused() {
    let (_ca_pem, addr, versions) = tls_upstream().await;
    // No SSL_CERT_FILE: the test CA is not trusted, so the connection must fail, not fall open.
    let manifest = manifests(&[format!("https://127.0.0.1:{}/v1", addr.port())]);
    let router = RouterProcess::spawn_with_env(&manifest, &[]).await;
    let resp = http()
        .post(format!("{}/v1/chat/completions", router.api))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"]["metadata"]["attempts"][0]["error_type"],
        "connect"
    );
    assert!(versions.lock().unwrap().is_empty());
}

/// An HTTP/2 upstream queues streams beyond its `SETTINGS_MAX_CONCURRENT_STREAMS`, and hyper
/// keeps to one connection per client: without more clients, long streams past the limit would
/// wait for earlier ones to end. Here the upstream allows 2 streams per connection and holds each
/// open after its first content; the router is told so and must serve 5 streams at once.
#[tokio::test(flavor = "multi_thread")]
async fn streams_beyond_an_http2_upstreams_stream_limit_are_not_held_back() {
    let (release, hold) = watch::channel(false);
    let (ca_pem, addr, versions) = tls_upstream_with(Some(2), Some(hold)).await;
    let ca_file = support::temp_manifest(&ca_pem);
    let manifest = manifests(&[format!("https://127.0.0.1:{}/v1", addr.port())]);
    let router = RouterProcess::spawn(
        &manifest,
        &["--upstream-requests-per-connection", "2"],
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
        None,
    )
    .await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        let resp = http()
            .post(format!("{}/v1/chat/completions", router.api))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": "test/model", "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send();
        streams.push(tokio::spawn(async move {
            let mut body = resp.await.unwrap().bytes_stream();
            let mut seen = String::new();
            while !seen.contains("Hel") {
                let chunk = body.next().await.expect("the stream ends before content");
                seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            }
            (seen, body)
        }));
    }
    // Every stream gets its first content while all of them are held open upstream.
    let mut open = Vec::new();
    for s in streams {
        let first = tokio::time::timeout(Duration::from_secs(10), s)
            .await
            .expect("a stream past the upstream's stream limit was held back")
            .unwrap();
        open.push(first);
    }
    release.send(true).unwrap();
    for (mut seen, mut body) in open {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        assert!(seen.ends_with("data: [DONE]\n\n"), "{seen}");
    }
    let versions = versions.lock().unwrap().clone();
    assert_eq!(versions.len(), 5);
    assert!(
        versions.iter().all(|v| *v == http::Version::HTTP_2),
        "{versions:?}"
    );
}
