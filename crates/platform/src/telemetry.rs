//! Logging and tracing for every service: `tracing-subscriber` with an `EnvFilter`, text or
//! JSON on stdout, and OpenTelemetry spans.
//!
//! Spans always get W3C trace ids (so trace context can be carried to Kafka headers and
//! outgoing gRPC calls even when nothing is exported); OTLP export is switched on by setting
//! `telemetry.otlp_endpoint`.

use std::sync::OnceLock;

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryConfig};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

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

/// Installs the global subscriber and propagator. A second call in the same process (tests
/// that run several services in one process) keeps the first subscriber and returns a guard
/// that owns nothing.
pub fn init(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    if PROVIDER.get().is_some() {
        return Ok(TelemetryGuard {
            owns_provider: false,
        });
    }

    let resource = Resource::builder().with_service_name(service_name).build();
    let mut provider_builder = SdkTracerProvider::builder().with_resource(resource);
    if !config.otlp_endpoint.trim().is_empty() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .build()?;
        provider_builder = provider_builder.with_batch_exporter(exporter);
    }
    let provider = provider_builder.build();
    let tracer = provider.tracer(service_name);
    global::set_tracer_provider(provider.clone());

    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log_filter))?;
    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().compact().boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .is_ok();
    let owns_provider = installed && PROVIDER.set(provider).is_ok();
    Ok(TelemetryGuard { owns_provider })
}
