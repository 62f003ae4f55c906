//! The floors of any proxy in `make bench`, pinned like the router:
//!
//! - `bench-relay LISTEN UPSTREAM` — a TCP relay that does no work at all. Each accepted
//!   connection gets its own connection to the upstream and bytes are copied both ways
//!   (`tokio::io::copy_bidirectional`), with no HTTP parsing. It measures what the extra hop alone
//!   costs on the machine (loopback, wake-ups across cores).
//! - `bench-relay --http LISTEN UPSTREAM` — the zero-work HTTP proxy: hyper's HTTP/1.1 server in
//!   front of hyper-util's pooled client (the client reqwest is built on), forwarding each request
//!   and its response untouched (no routing, no body parsing, no logging). What parsing and
//!   re-sending HTTP costs before any gateway work, with the stack the router runs on.
//!
//! One tokio worker either way.

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let http = args.first().is_some_and(|a| a == "--http");
    if http {
        args.remove(0);
    }
    let mut args = args.into_iter();
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18070".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:18000".into());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(&listen).await?;
            if http {
                eprintln!("bench-relay --http on {listen} -> {upstream}");
                http_relay(listener, upstream).await
            } else {
                eprintln!("bench-relay on {listen} -> {upstream}");
                tcp_relay(listener, upstream).await
            }
        })
}

/// Copies bytes between each client connection and its own upstream connection.
async fn tcp_relay(listener: TcpListener, upstream: String) -> std::io::Result<()> {
    loop {
        let (mut client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

/// Serves HTTP/1.1 and forwards every request, headers and body untouched, to `upstream` through
/// one pooled client; an upstream that cannot be reached is a 502.
async fn http_relay(listener: TcpListener, upstream: String) -> std::io::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let authority: hyper::http::uri::Authority = upstream
        .parse()
        .map_err(|e| std::io::Error::other(format!("upstream {upstream}: {e}")))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let client = client.clone();
                let authority = authority.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let mut uri = parts.uri.into_parts();
                    uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
                    uri.authority = Some(authority);
                    parts.uri = hyper::Uri::from_parts(uri).expect("an absolute URI");
                    match client.request(Request::from_parts(parts, body)).await {
                        Ok(resp) => Ok::<_, Infallible>(resp.map(Either::Upstream)),
                        Err(_) => Ok(Response::builder()
                            .status(StatusCode::BAD_GATEWAY)
                            .body(Either::Empty)
                            .expect("a static response")),
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The response body: the upstream's, or nothing (a 502).
enum Either {
    Upstream(Incoming),
    Empty,
}

impl hyper::body::Body for Either {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Either::Upstream(b) => std::pin::Pin::new(b).poll_frame(cx),
            Either::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Either::Upstream(b) => b.is_end_stream(),
            Either::Empty => true,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Either::Upstream(b) => b.size_hint(),
            Either::Empty => hyper::body::SizeHint::with_exact(0),
        }
    }
}
