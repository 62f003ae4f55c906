//! Traces on the request path: one server span per request and one client span per upstream
//! attempt, named and attributed after the OpenTelemetry GenAI semantic conventions, built only
//! while spans are exported ([`switchboard_telemetry::exporting`]). W3C `traceparent`/`tracestate`
//! from clients continue their trace and are sent on to providers. Prompts and completions are
//! never recorded unless `--trace-content` is set.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
};
use switchboard_telemetry::exporting;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut Vec<(HeaderName, HeaderValue)>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.push((k, v));
        }
    }
}

/// The client's trace context (`traceparent`, `tracestate`), empty when it sent none.
pub fn extract(headers: &HeaderMap) -> opentelemetry::Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Makes `span` continue `parent`.
pub fn set_parent(span: &tracing::Span, parent: opentelemetry::Context) {
    let _ = span.set_parent(parent);
}

/// The trace-context headers for an upstream request made inside the current span.
pub fn outgoing_headers() -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if !exporting() {
        // No propagator is installed then: nothing to inject.
        return out;
    }
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut out)));
    out
}
