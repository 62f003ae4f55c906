//! Binding and serving both ports, with graceful shutdown: on shutdown the listeners close, requests
//! in flight (streams included) run to completion, bounded by the drain timeout.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

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
    let serve = |listener: TcpListener, router: axum::Router, mut rx: watch::Receiver<bool>| {
        tokio::spawn(async move {
            // TCP_NODELAY: streamed responses are many small writes (an SSE event each), which
            // Nagle's algorithm would hold back until the client acknowledges the previous one.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY not set on a client connection: {e}");
                }
            });
            // `into_make_service` shares the router with each connection; serving the `Router`
            // itself would rebuild its route table per connection (about 6 KB each).
            axum::serve(listener, router.into_make_service())
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        })
    };
    let tasks = vec![
        serve(api, app(state.clone()), rx.clone()),
        serve(admin, admin_app(state), rx),
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
