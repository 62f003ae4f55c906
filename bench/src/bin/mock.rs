//! A fast mock OpenAI upstream for `make bench`: `POST /v1/chat/completions` answers a fixed
//! Chat Completions JSON with fixed usage, or, when the body asks for `"stream": true`, an SSE
//! stream of content chunks (one every 5 ms by default), a usage chunk and `data: [DONE]`.
//!
//! Bench-only knobs read from the request body (the router passes unknown fields through):
//! `"mock_chunks": N` (content chunks, default 20) and `"mock_interval_ms": N` (default 5).
//!
//! Usage: `bench-mock [ADDR] [WORKER_THREADS] [CA_PEM_OUT]` (default `127.0.0.1:18000`, 1
//! worker). With `CA_PEM_OUT` it serves HTTPS instead, as hosted providers do: a fresh test CA
//! (written to that path, for the client's `SSL_CERT_FILE`) signs a certificate for 127.0.0.1,
//! and ALPN offers HTTP/2 and HTTP/1.1.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench mock upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":8,"total_tokens":258}}"#;
const CHUNK: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n";
const FINISH: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
const USAGE: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":250,\"completion_tokens\":20,\"total_tokens\":270}}\n\ndata: [DONE]\n\n";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The unsigned integer right after `"key":` (optional spaces), if present.
fn number_field(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(body, key)? + key.len();
    let rest = &body[at..];
    let digits: Vec<u8> = rest
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b':')
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn is_stream(body: &[u8]) -> bool {
    find(body, b"\"stream\":true").is_some() || find(body, b"\"stream\": true").is_some()
}

async fn chat(body: Bytes) -> Response {
    if !is_stream(&body) {
        let mut resp = Response::new(Body::from(COMPLETION));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    let chunks = number_field(&body, b"\"mock_chunks\"").unwrap_or(20);
    let interval = Duration::from_millis(number_field(&body, b"\"mock_interval_ms\"").unwrap_or(5));
    let stream = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent > chunks {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(interval).await;
        }
        let data = if sent < chunks {
            Bytes::from_static(CHUNK.as_bytes())
        } else {
            Bytes::from(format!("{FINISH}{USAGE}"))
        };
        Some((Ok::<_, std::convert::Infallible>(data), sent + 1))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}

/// A TLS acceptor for 127.0.0.1 offering HTTP/2 and HTTP/1.1, with the PEM of the test CA that
/// signed its certificate.
fn tls_acceptor() -> Result<(TlsAcceptor, String), Box<dyn std::error::Error>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&leaf_key, &issuer)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), ca_pem))
}

/// Serves `app` over TLS: HTTP/2 or HTTP/1.1, whichever the client picks by ALPN.
async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18000".to_owned());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let ca_out = args.next();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async move {
            let app = Router::new()
                .route("/v1/chat/completions", post(chat))
                .route("/chat/completions", post(chat));
            let listener = TcpListener::bind(&addr).await?;
            if let Some(ca_out) = ca_out {
                let (acceptor, ca_pem) = tls_acceptor()?;
                std::fs::write(&ca_out, ca_pem)?;
                eprintln!("bench-mock listening on https://{addr} (CA in {ca_out})");
                serve_tls(listener, acceptor, app).await;
                return Ok(());
            }
            // TCP_NODELAY, as a real provider's edge: SSE chunks are small writes.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            eprintln!("bench-mock listening on {addr}");
            axum::serve(listener, app).await?;
            Ok(())
        })
}
