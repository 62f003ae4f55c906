//! Sending one upstream request, shared by every HTTP adapter: the Provider's extra headers and
//! timeouts, error statuses with their body and `Retry-After`, and streams of translated chunks.

use std::{collections::VecDeque, time::Duration};

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt, stream};
use http::header;

use super::{AttemptError, Call, ChunkStream};

/// Sends `req` for `call`: adds the Provider's headers and the total timeout, waits for the
/// response headers at most the first-token timeout, and turns an error status into
/// [`AttemptError::Status`] after `map_status` (which may rewrite a vendor-specific status, such
/// as Anthropic's 529, from the status and body).
pub async fn send(
    call: &Call<'_>,
    mut req: reqwest::RequestBuilder,
    map_status: fn(u16, &str) -> u16,
) -> Result<reqwest::Response, AttemptError> {
    let p = call.provider;
    req = req.timeout(Duration::from_millis(p.config.timeouts.total_ms));
    for (k, v) in &p.config.headers {
        req = req.header(k, v);
    }
    // W3C trace context of the attempt span this request runs in.
    for (k, v) in crate::observability::traces::outgoing_headers() {
        req = req.header(k, v);
    }
    let resp = tokio::time::timeout(call.first_token_timeout, req.send())
        .await
        .map_err(|_| AttemptError::Timeout("first_token"))?
        .map_err(AttemptError::from_reqwest)?;
    let status = resp.status();
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let body = read_error_body(resp).await;
        return Err(AttemptError::Status {
            status: map_status(status.as_u16(), &body),
            body,
            retry_after,
        });
    }
    Ok(resp)
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Keeps the upstream's status.
pub fn same_status(status: u16, _body: &str) -> u16 {
    status
}

/// Reads at most 64 KiB of an error body.
pub async fn read_error_body(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= 64 * 1024 {
            buf.truncate(64 * 1024);
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The whole body of a successful response.
pub async fn body(resp: reqwest::Response) -> Result<Bytes, AttemptError> {
    resp.bytes().await.map_err(AttemptError::from_reqwest)
}

/// A translator from a provider's stream events to OpenAI chunk payloads. Pure.
pub trait StreamTranslate: Send + 'static {
    /// One upstream event (`event` is the SSE event name or the event-stream `:event-type`,
    /// empty when there is none). Returns the OpenAI payloads to emit, `[DONE]` last when the
    /// answer is complete; an error event is an `Err`.
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<String>, AttemptError>;

    /// The upstream closed the stream. Returns what is still owed (usage, `[DONE]`) when the
    /// answer had finished; nothing otherwise, so the relay reports the truncation.
    fn on_end(&mut self) -> Vec<String>;
}

/// The SSE events of a response as `(event name, data)`.
pub fn sse_events(
    resp: reqwest::Response,
) -> impl Stream<Item = Result<(String, String), AttemptError>> + Send {
    resp.bytes_stream().eventsource().map(|ev| match ev {
        Ok(ev) => Ok((ev.event, ev.data)),
        Err(e) => Err(AttemptError::Protocol(format!("stream broke: {e}"))),
    })
}

/// Runs `events` through `translator` into a [`ChunkStream`] that ends after `[DONE]`.
pub fn translate<S, T>(events: S, translator: T) -> ChunkStream
where
    S: Stream<Item = Result<(String, String), AttemptError>> + Send + 'static,
    T: StreamTranslate,
{
    struct St<S, T> {
        events: std::pin::Pin<Box<S>>,
        tr: T,
        pending: VecDeque<String>,
        done: bool,
    }
    let st = St {
        events: Box::pin(events),
        tr: translator,
        pending: VecDeque::new(),
        done: false,
    };
    Box::pin(stream::unfold(st, |mut st| async move {
        loop {
            if let Some(p) = st.pending.pop_front() {
                if p == "[DONE]" {
                    st.done = true;
                    st.pending.clear();
                }
                return Some((Ok(p), st));
            }
            if st.done {
                return None;
            }
            match st.events.next().await {
                Some(Ok((event, data))) => match st.tr.on_event(&event, &data) {
                    Ok(out) => st.pending.extend(out),
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                },
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    let out = st.tr.on_end();
                    if out.is_empty() {
                        return None;
                    }
                    st.pending.extend(out);
                    if !st.pending.iter().any(|p| p == "[DONE]") {
                        st.pending.push_back("[DONE]".into());
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(
            parse_retry_after(
                "Wed, 21 Oct 2015 07:28:00 GMT",
                httpdate::parse_http_date("Wed, 21 Oct 2015 07:27:30 GMT").unwrap()
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("12", std::time::SystemTime::now()),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after("soon", std::time::SystemTime::now()),
            None
        );
    }
}
