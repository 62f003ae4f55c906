//! What one client connection may hold, and for how long. A connection that sends nothing can
//! no longer keep a socket (and a file descriptor) forever:
//!
//! - **Idle** — no request in flight and nothing arriving for `idle_timeout` (keep-alive between
//!   requests, or a new connection that never sends): closed. HTTP/2 counts a connection with no
//!   open stream as idle.
//! - **Header** — the first bytes of an HTTP/1.1 request arrived, but not the whole head within
//!   `header_timeout`: closed, without a response (there is no request to answer).
//! - **Body** — a request body must keep arriving at `min_body_rate` bytes per second on average
//!   once `header_timeout` has passed since the request started; a slower one fails the request
//!   with 408 (an OpenAI-shaped body) and the connection closes.
//!
//! HTTP/1.1 requests hyper refuses before the router sees them (a head over the size or header
//! count limit: 431; a malformed header such as a NUL byte or `Content-Length: -1`: 400; a URI too
//! long: 414) get hyper's status with an OpenAI-shaped JSON body: hyper writes its own error
//! response with no body and no hook to change it, so the connection's writer recognises that
//! response (a status line written when no request was dispatched for it) and sends the
//! OpenAI-shaped one in its place.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::ConnectInfo};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};

use crate::error::BodyTooSlow;

/// How long connections may idle or dawdle, and how many a listener holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most time for a request head, once its first byte arrived; also the grace before the
    /// body rate applies.
    pub header_timeout: Duration,
    /// Most time a connection may sit with no request in flight.
    pub idle_timeout: Duration,
    /// Least average rate of a request body, bytes per second (0: none).
    pub min_body_rate: u64,
    /// Most connections open on each listener; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            min_body_rate: 1024,
            max_connections: 10_000,
        }
    }
}

/// No head has started arriving.
const NONE: u64 = u64::MAX;

/// The state of one connection, shared by its reader, its service and its watchdog.
#[derive(Debug)]
pub struct Tracker {
    epoch: Instant,
    http1: bool,
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection opened), ms after `epoch`.
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived, ms after `epoch` ([`NONE`]).
    head_started: AtomicU64,
    /// Requests dispatched to the service.
    calls: AtomicU64,
    /// Final (non-1xx) response heads written.
    heads: AtomicU64,
    /// Wakes the watchdog when a head starts or a request starts or ends.
    changed: tokio::sync::Notify,
}

impl Tracker {
    /// The state of a connection opened now.
    pub fn new(http1: bool) -> Arc<Tracker> {
        Arc::new(Tracker {
            epoch: Instant::now(),
            http1,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            calls: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// Bytes arrived: between requests, that is a head starting.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_started
                .compare_exchange(NONE, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// The status of the final (non-1xx) HTTP/1.1 response head `buf` starts with, if it does.
    fn head_status(&self, buf: &[u8]) -> Option<u16> {
        if !self.http1 || !buf.starts_with(b"HTTP/1.") {
            return None;
        }
        let status: u16 = std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()?;
        // `100 Continue` is not a final response.
        (status >= 200).then_some(status)
    }

    /// If `buf` starts a response hyper writes on its own (an error, with no request dispatched
    /// for it), the OpenAI-shaped response to send instead; it then counts as written.
    fn replace(&self, buf: &[u8]) -> Option<Bytes> {
        let status = self.head_status(buf).filter(|s| *s >= 400)?;
        let t = self;
        let undispatched = t.heads.load(Ordering::Acquire) >= t.calls.load(Ordering::Acquire);
        undispatched.then(|| {
            t.heads.fetch_add(1, Ordering::AcqRel);
            openai_error_response(status)
        })
    }

    /// Counts a response head once its first bytes are written (a write that is retried after
    /// `Pending` is counted once).
    fn wrote(&self, buf: &[u8], result: &Poll<io::Result<usize>>) {
        if matches!(result, Poll::Ready(Ok(n)) if *n > 0) && self.head_status(buf).is_some() {
            self.heads.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A request was dispatched; it is in flight until the guard (carried by its response body)
    /// drops.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.calls.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<Tracker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let t = &self.0;
        t.idle_since.store(t.now_ms(), Ordering::Release);
        t.in_flight.fetch_sub(1, Ordering::AcqRel);
        t.changed.notify_one();
    }
}

/// Why a connection was closed early (the `reason` label of
/// `switchboard_connections_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Nothing in flight for the idle timeout.
    Idle,
    /// A request head not complete within the header timeout.
    HeaderTimeout,
}

impl Expired {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Expired::Idle => "idle_timeout",
            Expired::HeaderTimeout => "header_timeout",
        }
    }
}

/// Resolves when the connection has idled or dawdled past its limits.
pub async fn watchdog(tracker: Arc<Tracker>, limits: ConnectionLimits) -> Expired {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE / 2);
    loop {
        let now = tracker.now_ms();
        let (deadline, why) = if tracker.in_flight.load(Ordering::Acquire) > 0 {
            // Serving: look again later.
            (
                now.saturating_add(ms(limits.header_timeout.min(limits.idle_timeout))),
                None,
            )
        } else {
            let head = tracker.head_started.load(Ordering::Acquire);
            if tracker.http1 && head != NONE {
                (
                    head.saturating_add(ms(limits.header_timeout)),
                    Some(Expired::HeaderTimeout),
                )
            } else {
                let idle = tracker.idle_since.load(Ordering::Acquire);
                (
                    idle.saturating_add(ms(limits.idle_timeout)),
                    Some(Expired::Idle),
                )
            }
        };
        match why {
            Some(why) if now >= deadline => return why,
            _ => {
                let wait = Duration::from_millis(deadline.saturating_sub(now).max(1));
                // Until the deadline, or until the state changes (a head starts arriving, a
                // request starts or ends), whichever is first; then look again.
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = tracker.changed.notified() => {}
                }
            }
        }
    }
}

/// The socket as hyper sees it: reads are noted (a head starting), and hyper's own bodiless
/// error responses are replaced by OpenAI-shaped ones.
pub struct GuardedIo {
    tcp: TcpStream,
    tracker: Arc<Tracker>,
    /// An OpenAI-shaped error response being written in place of hyper's, and how much of it
    /// is written.
    replacement: Option<(Bytes, usize)>,
}

impl GuardedIo {
    /// Wraps a connection's socket.
    pub fn new(tcp: TcpStream, tracker: Arc<Tracker>) -> GuardedIo {
        GuardedIo {
            tcp,
            tracker,
            replacement: None,
        }
    }

    /// Writes what is left of the replacement response.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            let Some(rest) = bytes.get(*written..).filter(|r| !r.is_empty()) else {
                self.replacement = None;
                break;
            };
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written = written.saturating_add(n);
        }
        Poll::Ready(Ok(()))
    }
}

/// A complete HTTP/1.1 response for a request hyper refused with `status`.
fn openai_error_response(status: u16) -> Bytes {
    let (reason, code, message) = match status {
        431 => (
            "Request Header Fields Too Large",
            "request_header_fields_too_large",
            "The request's headers are too large or too many",
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            "The request URI is too long",
        ),
        400 => (
            "Bad Request",
            "invalid_request",
            "The request is not valid HTTP/1.1 (a malformed request line or header)",
        ),
        _ => ("Error", "invalid_request", "The request could not be read"),
    };
    let body = serde_json::json!({"error": {
        "message": message, "type": "invalid_request_error", "code": status, "param": null,
        "metadata": {"error_code": code}
    }})
    .to_string();
    Bytes::from(format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.tracker.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if let Some(replacement) = self.tracker.replace(buf) {
            self.replacement = Some((replacement, 0));
            // Written in its place; the rest goes out on the next write or flush.
            let _ = self.poll_replacement(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.tracker.wrote(buf, &result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        if let Some(replacement) = self.tracker.replace(first) {
            self.replacement = Some((replacement, 0));
            let _ = self.poll_replacement(cx)?;
            let total = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
            return Poll::Ready(Ok(total));
        }
        let result = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.tracker.wrote(first, &result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A request body that must keep arriving at the minimum rate once the grace has passed.
pub struct MinRate {
    inner: Incoming,
    started: Instant,
    grace: Duration,
    rate: u64,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl MinRate {
    /// Guards `inner` with `limits`.
    pub fn new(inner: Incoming, limits: &ConnectionLimits) -> MinRate {
        MinRate {
            inner,
            started: Instant::now(),
            grace: limits.header_timeout,
            rate: limits.min_body_rate,
            received: 0,
            timer: None,
        }
    }

    /// When the body falls below the rate unless more arrives: after the grace, one second per
    /// `rate` bytes received.
    fn deadline(&self) -> tokio::time::Instant {
        let per_rate = Duration::from_millis(
            self.received
                .saturating_mul(1000)
                .checked_div(self.rate)
                .unwrap_or(0),
        );
        tokio::time::Instant::from_std(self.started)
            .checked_add(self.grace.saturating_add(per_rate))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400))
    }
}

impl HttpBody for MinRate {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = u64::try_from(data.len()).unwrap_or(u64::MAX);
                    self.received = self.received.saturating_add(n);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(axum::Error::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if self.rate == 0 => Poll::Pending,
            Poll::Pending => {
                let deadline = self.deadline();
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                timer.as_mut().reset(deadline);
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow {
                        min_rate: self.rate,
                    })))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body carrying its request's [`InFlight`] guard until the body is done.
pub struct Held {
    body: Body,
    _in_flight: InFlight,
}

impl Held {
    /// `body`, holding `in_flight` while it is sent.
    pub fn new(body: Body, in_flight: InFlight) -> Held {
        Held {
            body,
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The 503 a listener at its connection limit answers (best effort) before closing.
pub fn at_capacity_response(max: usize) -> Bytes {
    let body = serde_json::json!({"error": {
        "message": format!("The router is at its limit of {max} open connections; retry shortly"),
        "type": "api_error", "code": 503, "param": null,
        "metadata": {"error_code": "too_many_connections"}
    }})
    .to_string();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// A connection's service: the router, with its requests tracked and their bodies rate-guarded,
/// and the peer's address attached to each when given.
pub fn service(
    router: axum::Router,
    tracker: Arc<Tracker>,
    limits: ConnectionLimits,
    peer: Option<ConnectInfo<SocketAddr>>,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send,
> + Clone {
    tower::service_fn(move |req: http::Request<Incoming>| {
        let in_flight = tracker.request_started();
        let mut req = req.map(|b| Body::new(MinRate::new(b, &limits)));
        if let Some(peer) = peer {
            req.extensions_mut().insert(peer);
        }
        let router = router.clone();
        async move {
            let resp = tower::ServiceExt::oneshot(router, req).await?;
            Ok(resp.map(|b| Body::new(Held::new(b, in_flight))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a response hyper writes with no request dispatched for it is replaced, however the
    /// writes of the router's own responses went (a head retried after `Pending` counts once).
    #[test]
    fn only_hypers_own_error_responses_are_replaced() {
        let t = Tracker::new(true);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let payment = b"HTTP/1.1 402 Payment Required\r\ncontent-length: 2\r\n\r\n{}";
        let too_large =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        // A request, whose head is retried after the socket was full.
        let first = t.request_started();
        assert_eq!(t.replace(ok), None);
        t.wrote(ok, &Poll::Pending);
        assert_eq!(t.replace(ok), None);
        t.wrote(ok, &Poll::Ready(Ok(ok.len())));
        drop(first);
        // The next request is refused by the router itself: its own 402 stays.
        let second = t.request_started();
        assert_eq!(t.replace(payment), None);
        t.wrote(payment, &Poll::Ready(Ok(10)));
        drop(second);
        // `100 Continue` is not a final response.
        t.wrote(b"HTTP/1.1 100 Continue\r\n\r\n", &Poll::Ready(Ok(25)));
        // Then hyper refuses a head: no request was dispatched for this response.
        let replaced = t.replace(too_large).unwrap();
        let text = std::str::from_utf8(&replaced).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("request_header_fields_too_large"), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        // HTTP/2 connections are never touched.
        assert_eq!(Tracker::new(false).replace(too_large), None);
    }
}
