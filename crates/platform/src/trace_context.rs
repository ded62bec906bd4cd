//! W3C trace context across process boundaries: extracted from incoming gRPC metadata before
//! the handler span is entered, injected into outgoing gRPC metadata, and carried in Kafka
//! headers (`traceparent`, `tracestate`) from the outbox to the consumer.
//!
//! A span's ids come from the `tracing-opentelemetry` layer when spans are exported, and from
//! [`crate::span_ids::SpanIdLayer`] when they are not; these functions work with either.

use std::collections::HashMap;

use opentelemetry::{
    Context, global,
    propagation::{Extractor, Injector},
    trace::{SpanContext, TraceContextExt},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::span_ids::{adopt_remote_parent, span_context_of};

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
    context_fields_of(&tracing::Span::current())
}

/// `span`'s context as `traceparent`/`tracestate` key-value pairs.
pub fn context_fields_of(span: &tracing::Span) -> HashMap<String, String> {
    let context = context_of(span);
    let mut fields = HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut fields));
    fields
}

/// The current span's W3C identity, from whichever layer gave it its ids (`None` outside any
/// span). With OpenTelemetry export on, asking may start the span's export record early.
pub(crate) fn span_context_of_current() -> Option<SpanContext> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    Some(context_of(&span).span().span_context().clone())
}

/// A parent context rebuilt from stored or received `traceparent`/`tracestate` fields.
pub fn context_from_fields(fields: &HashMap<String, String>) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(fields))
}

/// Makes `span` a child of the remote context in `fields`, if they carry one.
pub fn set_remote_parent(span: &tracing::Span, fields: &HashMap<String, String>) {
    set_parent(span, context_from_fields(fields));
}

/// Makes `span` a child of the context carried by HTTP headers, if any.
pub fn set_remote_parent_from_http(span: &tracing::Span, headers: &http::HeaderMap) {
    set_parent(span, extract_from_http(headers));
}

/// An invalid or absent parent leaves the span as a new root; nothing to report.
fn set_parent(span: &tracing::Span, parent: Context) {
    let remote = parent.span().span_context().clone();
    if !remote.is_valid() || adopt_remote_parent(span, &remote) {
        return;
    }
    let _ = span.set_parent(parent);
}

/// The OpenTelemetry context of `span`, from whichever layer gave it its ids.
fn context_of(span: &tracing::Span) -> Context {
    match span_context_of(span) {
        Some(span_context) => Context::new().with_remote_span_context(span_context),
        None => span.context(),
    }
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
    let context = context_of(&tracing::Span::current());
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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::span_ids::SpanIdLayer;

    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";

    fn caller_headers(traceparent: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(traceparent) = traceparent {
            headers.insert("traceparent", traceparent.parse().expect("header value"));
            headers.insert("tracestate", "nav=1".parse().expect("header value"));
        }
        headers
    }

    /// The fields a handler running under the server's `grpc` span records in an outbox row.
    fn recorded_by_handler(headers: &http::HeaderMap) -> HashMap<String, String> {
        let server = tracing::info_span!("grpc");
        set_remote_parent_from_http(&server, headers);
        server.in_scope(|| tracing::info_span!("handler").in_scope(current_context_fields))
    }

    /// `traceparent` split into trace id, span id and flags.
    fn traceparent_parts(fields: &HashMap<String, String>) -> (String, String, String) {
        let traceparent = fields.get("traceparent").expect("a traceparent field");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "traceparent {traceparent}");
        assert_eq!(parts[0], "00");
        (
            parts[1].to_owned(),
            parts[2].to_owned(),
            parts[3].to_owned(),
        )
    }

    /// Runs `check` once with each way spans get their ids: exported (OpenTelemetry SDK) and
    /// not exported ([`SpanIdLayer`]). Both must propagate the same way.
    fn with_each_id_source(check: impl Fn()) {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let without_export = tracing_subscriber::registry().with(SpanIdLayer::default());
        tracing::subscriber::with_default(without_export, &check);
        let provider = SdkTracerProvider::builder().build();
        let with_sdk = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(with_sdk, &check);
    }

    #[test]
    fn the_caller_s_trace_reaches_what_the_handler_records() {
        with_each_id_source(|| {
            let headers = caller_headers(Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")));
            let fields = recorded_by_handler(&headers);
            let (trace, span, flags) = traceparent_parts(&fields);
            assert_eq!(trace, CALLER_TRACE);
            assert_ne!(span, CALLER_SPAN, "the handler's span has its own id");
            assert_eq!(flags, "01");
            assert_eq!(fields.get("tracestate").map(String::as_str), Some("nav=1"));
        });
    }

    #[test]
    fn each_span_of_a_trace_gets_its_own_id() {
        with_each_id_source(|| {
            let headers = caller_headers(Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")));
            let first = traceparent_parts(&recorded_by_handler(&headers));
            let second = traceparent_parts(&recorded_by_handler(&headers));
            assert_eq!(first.0, second.0);
            assert_ne!(first.1, second.1);
        });
    }

    #[test]
    fn without_a_valid_traceparent_a_new_sampled_trace_starts() {
        with_each_id_source(|| {
            let zero_trace = format!("00-{}-{CALLER_SPAN}-01", "0".repeat(32));
            for traceparent in [None, Some("not a traceparent"), Some(zero_trace.as_str())] {
                let fields = recorded_by_handler(&caller_headers(traceparent));
                let (trace, span, flags) = traceparent_parts(&fields);
                assert_eq!(trace.len(), 32, "{traceparent:?}");
                assert_ne!(trace, "0".repeat(32), "{traceparent:?}");
                assert_ne!(trace, CALLER_TRACE, "{traceparent:?}");
                assert_ne!(span, "0".repeat(16), "{traceparent:?}");
                assert_eq!(flags, "01", "{traceparent:?}");
            }
        });
    }

    #[test]
    fn kafka_header_fields_make_the_consumer_span_part_of_the_producer_s_trace() {
        with_each_id_source(|| {
            let produced = HashMap::from([(
                "traceparent".to_owned(),
                format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
            )]);
            let consume = tracing::info_span!("consume");
            set_remote_parent(&consume, &produced);
            let fields = consume.in_scope(current_context_fields);
            assert_eq!(traceparent_parts(&fields).0, CALLER_TRACE);
        });
    }

    #[test]
    fn outgoing_metadata_carries_the_current_trace() {
        with_each_id_source(|| {
            let headers = caller_headers(Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")));
            let server = tracing::info_span!("grpc");
            set_remote_parent_from_http(&server, &headers);
            let mut metadata = tonic::metadata::MetadataMap::new();
            server.in_scope(|| inject_into_metadata(&mut metadata));
            let traceparent = metadata
                .get("traceparent")
                .and_then(|value| value.to_str().ok())
                .expect("traceparent metadata");
            assert!(traceparent.contains(CALLER_TRACE), "{traceparent}");
        });
    }
}
