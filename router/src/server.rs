//! Binding and serving both ports, with graceful shutdown: on shutdown the listeners close, requests
//! in flight (streams included) run to completion, bounded by the drain timeout.
//!
//! Each connection speaks HTTP/1.1, or HTTP/2 when it opens with the HTTP/2 preface (h2c with prior
//! knowledge). The preface is peeked from the socket, not read: hyper-util's version detection
//! (what `axum::serve` uses) reads it into a small buffer and replays it, and that first short
//! read makes hyper grow every HTTP/1.1 connection's read buffer from 8 KB to 16 KB for as long as
//! the connection lives: about 4 KB more resident memory per open stream, measured with 2,000.

use std::{net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use anyhow::Context;
use futures_util::FutureExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use crate::{
    app::{admin_app, app},
    state::AppState,
};

/// A router serving on two sockets.
pub struct RunningServer {
    /// Address of the client API.
    pub api_addr: SocketAddr,
    /// Address of the admin API.
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    drain_timeout: Duration,
}

/// Binds both listeners and starts serving `state`.
pub async fn start(
    state: Arc<AppState>,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    drain_timeout: Duration,
) -> anyhow::Result<RunningServer> {
    let api = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen} (admin)"))?;
    let api_addr = api.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(serve(api, app(state.clone()), rx.clone())),
        tokio::spawn(serve(admin, admin_app(state), rx)),
    ];
    tracing::info!(%api_addr, %admin_addr, "listening");
    Ok(RunningServer {
        api_addr,
        admin_addr,
        shutdown,
        tasks,
        drain_timeout,
    })
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish within the drain timeout, then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let drain = async {
            for t in self.tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(self.drain_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?self.drain_timeout,
                "drain timeout reached; closing the remaining connections"
            );
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true; then stops accepting, asks each open
/// connection to finish what it is serving (streams included), and returns once all have.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Every connection task holds a receiver; `closed` resolves when the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut stopping = pin!(stopped(stop.clone()));
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        // TCP_NODELAY: streamed responses are many small writes (an SSE event each), which
        // Nagle's algorithm would hold back until the client acknowledges the previous one.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a client connection: {e}");
        }
        // A clone of the router is a reference count: the route table is shared.
        let service = TowerToHyperService::new(router.clone());
        let (stop, open) = (stop.clone(), open_rx.clone());
        tokio::spawn(async move {
            let _open = open;
            let mut stopping = pin!(stopped(stop).fuse());
            let http2 = tokio::select! {
                http2 = opens_with_http2_preface(&tcp) => http2,
                // No request has been read yet, so there is nothing to finish: close.
                () = &mut stopping => return,
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let builder = if http2 {
                builder.http2_only()
            } else {
                builder.http1_only()
            };
            let mut conn = pin!(builder.serve_connection(TokioIo::new(tcp), service));
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!("connection ended with an error: {e}");
                        }
                        break;
                    }
                    () = &mut stopping => conn.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a new connection starts with the HTTP/2 preface, peeked without consuming it. A client
/// that sends part of the preface and stalls is given up on after a few seconds and treated as
/// HTTP/1.1, whose parser then answers it.
async fn opens_with_http2_preface(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; HTTP2_PREFACE.len()];
    for _ in 0..5000 {
        match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf[..n] != HTTP2_PREFACE[..n] => return false,
            Ok(n) if n == HTTP2_PREFACE.len() => return true,
            // A prefix of the preface so far: wait for the rest.
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    false
}

/// After a failed accept: errors of the one connection are skipped; others (out of file
/// descriptors, say) pause accepting for a second rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("accepting a connection failed: {e}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
