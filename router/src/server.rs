//! Binding and serving both ports, with graceful shutdown: on shutdown the listeners close, requests
//! in flight (streams included) run to completion, bounded by the drain timeout. At the drain
//! timeout, streams still open are cut: each ends with a usage chunk for what was relayed and an
//! error chunk (`server_shutting_down`), and is settled and logged; connections still open a
//! moment later are closed, their requests recorded as cut.
//!
//! Each listener holds at most `max_connections` connections (more are answered 503 and closed)
//! and closes connections that idle or send too slowly ([`connection`]).
//!
//! Each connection speaks HTTP/1.1, or HTTP/2 when it opens with the HTTP/2 preface (h2c with prior
//! knowledge). The preface is peeked from the socket, not read: hyper-util's version detection
//! (what `axum::serve` uses) reads it into a small buffer and replays it, and that first short
//! read makes hyper grow every HTTP/1.1 connection's read buffer from 8 KB to 16 KB for as long as
//! the connection lives: about 4 KB more resident memory per open stream, measured with 2,000.

pub mod connection;

use std::{
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::extract::ConnectInfo;
use futures_util::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use self::connection::{ConnectionLimits, GuardedIo, Tracker, at_capacity_response, watchdog};
use crate::{
    app::{admin_app, app},
    state::AppState,
};

/// How long cut streams get to write their last frames before their connections are closed.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// A router serving on two sockets.
pub struct RunningServer {
    /// Address of the client API.
    pub api_addr: SocketAddr,
    /// Address of the admin API.
    pub admin_addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    close: watch::Sender<bool>,
    served: Shared<BoxFuture<'static, ()>>,
    drain_timeout: Duration,
}

/// Connections the kernel may hold for a listener before it is accepted (capped by
/// `net.core.somaxconn`). Tokio's default of 1,024 overflows when thousands of clients connect at
/// once (a fleet reconnecting after a deploy): the kernel then drops or resets them.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as `TcpListener::bind`).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds both listeners and starts serving `state`.
pub async fn start(
    state: Arc<AppState>,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    drain_timeout: Duration,
) -> anyhow::Result<RunningServer> {
    let api = bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let admin =
        bind(admin_listen).with_context(|| format!("cannot listen on {admin_listen} (admin)"))?;
    let api_addr = api.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let (shutdown, stop) = watch::channel(false);
    let (close, closing) = watch::channel(false);
    let signals = Signals { stop, closing };
    let served = futures_util::future::join(
        tokio::spawn(serve(
            Listener::new(api, "api", app(state.clone()), PeerAddress::Skip),
            state.clone(),
            signals.clone(),
        )),
        tokio::spawn(serve(
            Listener::new(
                admin,
                "admin",
                admin_app(state.clone()),
                PeerAddress::Attach,
            ),
            state.clone(),
            signals,
        )),
    )
    .map(drop)
    .boxed()
    .shared();
    tracing::info!(%api_addr, %admin_addr, "listening");
    Ok(RunningServer {
        api_addr,
        admin_addr,
        state,
        shutdown,
        close,
        served,
        drain_timeout,
    })
}

impl RunningServer {
    /// Stops accepting and lets in-flight requests finish within the drain timeout; then cuts
    /// the streams still open (each ends with an error chunk, is settled and logged), and closes
    /// what is left after a short grace. Returns once every connection is gone.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(self.drain_timeout, self.served.clone())
            .await
            .is_ok()
        {
            return;
        }
        let open = self.state.metrics.open_streams.get();
        tracing::warn!(
            timeout = ?self.drain_timeout,
            open_streams = open,
            "drain timeout reached; cutting the streams still open"
        );
        self.state.cut_streams();
        if tokio::time::timeout(CUT_GRACE, self.served.clone())
            .await
            .is_err()
        {
            tracing::warn!("closing the connections still open");
            let _ = self.close.send(true);
            let _ = tokio::time::timeout(CUT_GRACE, self.served.clone()).await;
        }
    }
}

/// What every connection task watches: the stop (finish what you serve) and the close (stop
/// now).
#[derive(Clone)]
struct Signals {
    stop: watch::Receiver<bool>,
    closing: watch::Receiver<bool>,
}

/// A bound listener, what it serves, and its name in metrics.
struct Listener {
    tcp: TcpListener,
    name: &'static str,
    router: axum::Router,
    peer_address: PeerAddress,
}

impl Listener {
    fn new(
        tcp: TcpListener,
        name: &'static str,
        router: axum::Router,
        peer_address: PeerAddress,
    ) -> Listener {
        Listener {
            tcp,
            name,
            router,
            peer_address,
        }
    }
}

/// Whether requests carry their connection's peer address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PeerAddress {
    /// As `ConnectInfo<SocketAddr>` (the admin listener: without an admin token, only loopback
    /// peers are admitted).
    Attach,
    /// Not at all (the client API: one less allocation per request).
    Skip,
}

/// Serves `listener` until `stop` turns true; then stops accepting, asks each open connection
/// to finish what it is serving (streams included), and returns once all have (or `close`
/// turned true and they were dropped).
async fn serve(listener: Listener, state: Arc<AppState>, signals: Signals) {
    // Every connection task holds a receiver; `closed` resolves when the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut stopping = pin!(stopped(signals.stop.clone()));
    let limits = state.settings.connections.clone();
    let open = Arc::new(AtomicUsize::new(0));
    let m = &state.metrics;
    let gauge = m.connections_open.with_label_values(&[listener.name]);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        if open.load(Ordering::Acquire) >= limits.max_connections {
            m.connections_rejected
                .with_label_values(&[listener.name])
                .inc();
            // Best effort, never waiting: the client learns why, or sees the close.
            let _ = tcp.try_write(&at_capacity_response(limits.max_connections));
            continue;
        }
        // TCP_NODELAY: streamed responses are many small writes (an SSE event each), which
        // Nagle's algorithm would hold back until the client acknowledges the previous one.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a client connection: {e}");
        }
        let slot = OpenSlot::new(open.clone(), gauge.clone());
        let conn = Conn {
            router: listener.router.clone(),
            limits: limits.clone(),
            closed: m.connections_closed.clone(),
            listener: listener.name,
            peer: (listener.peer_address == PeerAddress::Attach).then_some(ConnectInfo(peer)),
        };
        let (signals, open) = (signals.clone(), open_rx.clone());
        tokio::spawn(async move {
            let _open = open;
            let _slot = slot;
            conn.serve(tcp, signals).await;
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// A connection counted as open until dropped.
struct OpenSlot {
    open: Arc<AtomicUsize>,
    gauge: prometheus::IntGauge,
}

impl OpenSlot {
    fn new(open: Arc<AtomicUsize>, gauge: prometheus::IntGauge) -> OpenSlot {
        open.fetch_add(1, Ordering::AcqRel);
        gauge.inc();
        OpenSlot { open, gauge }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// What serving one connection needs.
struct Conn {
    router: axum::Router,
    limits: ConnectionLimits,
    closed: prometheus::IntCounterVec,
    listener: &'static str,
    /// The peer's address, given to every request as an extension (admin listener only).
    peer: Option<ConnectInfo<SocketAddr>>,
}

impl Conn {
    /// Serves one connection until it ends, it expires ([`watchdog`]), or the server closes it.
    async fn serve(self, tcp: TcpStream, signals: Signals) {
        let mut stopping = pin!(stopped(signals.stop).fuse());
        let mut closing = pin!(stopped(signals.closing).fuse());
        let first = tokio::select! {
            first = opens_with_http2_preface(&tcp, &self.limits) => first,
            // No request has been read yet, so there is nothing to finish: close.
            () = &mut stopping => return,
        };
        let Some(http2) = first else {
            // Nothing sent within the idle timeout: no request to answer.
            self.closed
                .with_label_values(&[self.listener, connection::Expired::Idle.label()])
                .inc();
            return;
        };
        let tracker = Tracker::new(!http2);
        let service =
            connection::service(self.router, tracker.clone(), self.limits.clone(), self.peer);
        let builder = auto::Builder::new(TokioExecutor::new());
        let builder = if http2 {
            builder.http2_only()
        } else {
            builder.http1_only()
        };
        let io = TokioIo::new(GuardedIo::new(tcp, tracker.clone()));
        let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(service)));
        let mut expired = pin!(watchdog(tracker, self.limits).fuse());
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!("connection ended with an error: {e}");
                    }
                    return;
                }
                () = &mut stopping => conn.as_mut().graceful_shutdown(),
                () = &mut closing => return,
                why = &mut expired => {
                    self.closed.with_label_values(&[self.listener, why.label()]).inc();
                    tracing::debug!(reason = why.label(), "closing a client connection");
                    return;
                }
            }
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a new connection starts with the HTTP/2 preface, peeked without consuming it; `None`
/// when nothing arrived within the idle timeout (a connection opened ahead of its first request
/// may wait that long), or the client closed first. A client that sends part of the preface and
/// stalls for the header timeout is treated as HTTP/1.1, whose parser then answers it (or whose
/// header timeout closes it).
async fn opens_with_http2_preface(tcp: &TcpStream, limits: &ConnectionLimits) -> Option<bool> {
    let mut buf = [0u8; HTTP2_PREFACE.len()];
    let mut deadline = tokio::time::Instant::now() + limits.idle_timeout;
    let mut seen = 0;
    loop {
        match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Err(_) => return (seen > 0).then_some(false),
            Ok(Ok(0) | Err(_)) => return None,
            Ok(Ok(n)) if buf.get(..n) != HTTP2_PREFACE.get(..n) => return Some(false),
            Ok(Ok(n)) if n == HTTP2_PREFACE.len() => return Some(true),
            // A prefix of the preface so far: wait for the rest, within the header timeout.
            Ok(Ok(n)) => {
                if seen == 0 {
                    deadline = deadline.min(tokio::time::Instant::now() + limits.header_timeout);
                }
                seen = n;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
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
