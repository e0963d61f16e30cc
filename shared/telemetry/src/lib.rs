//! Logs, traces and metrics, set up the same way by every binary.
//!
//! Logs: JSON or human-readable. Traces: `tracing` spans exported over OTLP
//! when an endpoint is configured, with the W3C trace context carried in NATS
//! headers so that one trace follows a message through gateway, JetStream,
//! worker and the delivering gateway. Metrics: Prometheus text, rendered by
//! each binary at `/metrics`.

use std::{collections::HashMap, time::Duration};

use async_nats::HeaderMap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
    Context,
};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
    Resource,
};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

use chat_config::{LogConfig, LogFormat, Validate};

/// Trace export settings. Off unless `otlp_endpoint` is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TracingConfig {
    /// OTLP/HTTP collector base URL, e.g. `http://otel-collector:4318`.
    pub otlp_endpoint: String,
    /// Share of traces kept (0.0–1.0), decided where a trace starts.
    pub sample_ratio: f64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
        }
    }
}

impl Validate for TracingConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if !self.otlp_endpoint.is_empty() {
            chat_config::check_url(
                "tracing.otlp_endpoint",
                &self.otlp_endpoint,
                &["http", "https"],
                problems,
            );
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push(format!(
                "tracing.sample_ratio must be within 0.0..=1.0, got {}",
                self.sample_ratio
            ));
        }
    }
}

/// Keeps the exporters alive; flushes pending spans when dropped.
pub struct Telemetry {
    pub metrics: PrometheusHandle,
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Latency buckets (seconds) for every `*_seconds` histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The stage histograms (`chat_gateway_stage_seconds`,
/// `chat_worker_stage_seconds`): where a send's milliseconds go, so finer
/// than other latencies below 50 ms.
const STAGE_METRICS: [&str; 2] = ["chat_gateway_stage_seconds", "chat_worker_stage_seconds"];
const STAGE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
    0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets for every `*_size` histogram.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Installs the global log/trace subscriber and metrics recorder. Call once,
/// from `main`. `RUST_LOG`, when set, overrides the log filter.
pub fn init(service: &'static str, log: &LogConfig, tracing: &TracingConfig) -> Telemetry {
    let tracer = (!tracing.otlp_endpoint.is_empty()).then(|| tracer_provider(service, tracing));
    let otel = tracer
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let logs = match log.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => fmt::layer().compact().boxed(),
    };
    // One global filter: spans and events it rejects are never built, for
    // logs and traces alike (a per-layer filter would still build them).
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(logs)
        .try_init();
    if let Err(e) = result {
        eprintln!("tracing subscriber already installed: {e}");
    }
    // A full name is matched before any suffix.
    let stages = STAGE_METRICS
        .iter()
        .try_fold(PrometheusBuilder::new(), |b, name| {
            b.set_buckets_for_metric(Matcher::Full((*name).into()), STAGE_BUCKETS)
        });
    let metrics = stages
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
        .expect("static buckets are valid")
        .install_recorder()
        .expect("metrics recorder installed once");
    Telemetry { metrics, tracer }
}

fn tracer_provider(service: &'static str, config: &TracingConfig) -> SdkTracerProvider {
    use opentelemetry_otlp::WithExportConfig;
    global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!(
            "{}/v1/traces",
            config.otlp_endpoint.trim_end_matches('/')
        ))
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("OTLP exporter");
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(service).build())
        .build()
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Writes the current span's trace context into NATS headers (a no-op when
/// tracing is off).
pub fn inject_trace(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

/// Makes `span` a child of the trace context carried in NATS headers, if any.
pub fn continue_trace(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(headers) = headers {
        let parent: Context =
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        let _ = span.set_parent(parent);
    }
}

/// The current span's trace context as a map (a batched send's own, where
/// the NATS headers belong to the whole batch); empty when tracing is off.
pub fn trace_map() -> HashMap<String, String> {
    let context = tracing::Span::current().context();
    let mut map = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut map));
    map
}

/// Makes `span` a child of the trace context in `map` ([`trace_map`]).
pub fn continue_trace_map(span: &tracing::Span, map: &HashMap<String, String>) {
    let parent: Context = global::get_text_map_propagator(|p| p.extract(map));
    let _ = span.set_parent(parent);
}

/// Whether a trace map carries a trace context worth continuing.
pub fn map_has_trace(map: &HashMap<String, String>) -> bool {
    map.contains_key("traceparent")
}

/// Whether NATS headers carry a trace context worth continuing.
pub fn has_trace(headers: Option<&HeaderMap>) -> bool {
    headers.is_some_and(|h| h.get("traceparent").is_some())
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
