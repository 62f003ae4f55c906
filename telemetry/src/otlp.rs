//! OpenTelemetry trace export over OTLP (HTTP/protobuf or gRPC), configured by the standard
//! environment variables (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `..._PROTOCOL`, `..._HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`) or
//! `--otlp-endpoint`, and the W3C trace-context propagator. Which spans exist (and that prompts
//! and completions are never recorded by default) is up to each process.

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    runtime::Tokio,
    trace::{SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
};

static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported. Request and attempt spans are only built then: on the hot path a
/// span nobody reads is pure cost.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where and how to export spans.
#[derive(Clone, Debug, Default)]
pub struct OtlpOptions {
    /// Endpoint given on the command line; otherwise the `OTEL_EXPORTER_OTLP_*` variables decide.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`; otherwise `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, default
    /// `http/protobuf`.
    pub protocol: Option<String>,
    /// Service name when `OTEL_SERVICE_NAME` is unset.
    pub service_name: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether an OTLP endpoint is configured.
pub fn enabled(options: &OtlpOptions) -> bool {
    options.endpoint.is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
}

/// Builds the tracer provider exporting over OTLP, and installs the W3C trace-context propagator.
/// Must run inside the Tokio runtime.
pub fn tracer_provider(options: &OtlpOptions) -> anyhow::Result<SdkTracerProvider> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    let protocol = options
        .protocol
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    let exporter = match protocol.as_str() {
        "grpc" => {
            let mut b = SpanExporter::builder().with_tonic();
            if let Some(e) = &options.endpoint {
                b = b.with_endpoint(e);
            }
            b.build()?
        }
        "http/protobuf" => {
            let mut b = SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary);
            if let Some(e) = &options.endpoint {
                b = b.with_endpoint(format!("{}/v1/traces", e.trim_end_matches('/')));
            }
            b.build()?
        }
        other => anyhow::bail!("unsupported OTLP protocol {other:?} (use grpc or http/protobuf)"),
    };
    let mut resource = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(options.service_name.clone());
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
        .with_resource(resource.build())
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("switchboard-router"))
}
