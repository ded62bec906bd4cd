//! Logging and tracing for every service: `tracing-subscriber` with an `EnvFilter`, text or
//! JSON on stdout (JSON lines carry the trace and span ids, [`crate::json_log`]), and
//! OpenTelemetry spans.
//!
//! Spans always get W3C trace ids (so trace context can be carried to Kafka headers and
//! outgoing gRPC calls even when nothing is exported); OTLP export is switched on by setting
//! `telemetry.otlp_endpoint`. Only then is the OpenTelemetry SDK in the path of every request:
//! without export, [`SpanIdLayer`] assigns the ids at a fraction of the cost (ADR 0012).

use std::sync::OnceLock;

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer, fmt::format::JsonFields, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::{
    config::{LogFormat, TelemetryConfig},
    json_log::JsonLines,
    span_ids::SpanIdLayer,
};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static INSTALLED: OnceLock<()> = OnceLock::new();

/// Flushes and stops span export when dropped; keep it alive for the life of `main`.
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    owns_provider: bool,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.owns_provider
            && let Some(provider) = PROVIDER.get()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("span exporter did not shut down cleanly: {error}");
        }
    }
}

/// Installs the global subscriber and propagator. With `telemetry.otlp_endpoint` set, spans
/// go through the OpenTelemetry SDK and are exported; without it, [`SpanIdLayer`] only gives
/// them W3C ids for propagation. A second call in the same process (tests that run several
/// services in one process) keeps the first subscriber and returns a guard that owns nothing.
pub fn init(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    if INSTALLED.get().is_some() {
        return Ok(TelemetryGuard {
            owns_provider: false,
        });
    }

    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log_filter))?;
    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().compact().boxed(),
    };
    let exporting_provider = if config.otlp_endpoint.trim().is_empty() {
        None
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .build()?;
        let resource = Resource::builder().with_service_name(service_name).build();
        Some(
            SdkTracerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(exporter)
                .build(),
        )
    };
    let otel_layer = exporting_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name)));
    let span_id_layer = exporting_provider.is_none().then(SpanIdLayer::default);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .with(span_id_layer)
        .try_init()
        .is_ok();
    let _ = INSTALLED.set(());
    let owns_provider = match exporting_provider {
        Some(provider) if installed => {
            global::set_tracer_provider(provider.clone());
            PROVIDER.set(provider).is_ok()
        }
        Some(provider) => {
            let _ = provider.shutdown();
            false
        }
        None => false,
    };
    Ok(TelemetryGuard { owns_provider })
}
