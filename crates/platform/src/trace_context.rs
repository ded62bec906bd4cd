//! W3C trace context across process boundaries: extracted from incoming gRPC metadata before
//! the handler span is entered, injected into outgoing gRPC metadata, and carried in Kafka
//! headers (`traceparent`, `tracestate`) from the outbox to the consumer.

use std::collections::HashMap;

use opentelemetry::{Context, global, propagation::Extractor, propagation::Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads trace context from HTTP/2 headers (gRPC metadata).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The remote parent context carried by incoming request headers (empty if none).
pub fn extract_from_http(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// The current span's context as `traceparent`/`tracestate` key-value pairs, for storing in an
/// outbox row or sending as Kafka headers or gRPC metadata.
pub fn current_context_fields() -> HashMap<String, String> {
    let context = tracing::Span::current().context();
    let mut fields = HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut fields));
    fields
}

/// A parent context rebuilt from stored or received `traceparent`/`tracestate` fields.
pub fn context_from_fields(fields: &HashMap<String, String>) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(fields))
}

/// Makes `span` a child of the remote context in `fields`, if they carry one.
pub fn set_remote_parent(span: &tracing::Span, fields: &HashMap<String, String>) {
    let parent = context_from_fields(fields);
    // An invalid or absent parent leaves the span as a new root; nothing to report.
    let _ = span.set_parent(parent);
}

/// Makes `span` a child of the context carried by HTTP headers, if any.
pub fn set_remote_parent_from_http(span: &tracing::Span, headers: &http::HeaderMap) {
    let _ = span.set_parent(extract_from_http(headers));
}

/// Injects the current span's context into outgoing gRPC metadata.
pub fn inject_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);
    impl Injector for MetadataInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_str()),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// A tonic client interceptor that forwards the caller's trace context.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracePropagatingInterceptor;

impl tonic::service::Interceptor for TracePropagatingInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_into_metadata(request.metadata_mut());
        Ok(request)
    }
}
