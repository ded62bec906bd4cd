//! W3C span identities without the OpenTelemetry SDK, for services that export no spans.
//!
//! Trace context must reach outbox rows, Kafka headers and outgoing calls whether or not spans
//! are exported. With OTLP export on, the `tracing-opentelemetry` layer gives every span its ids.
//! With export off, that layer would still build an SDK span for every request only to throw
//! it away — about a tenth of routing's CPU per OpenCase in the benchmark (docs/benchmarks.md).
//! [`SpanIdLayer`] is what is left when nothing is exported: each span gets a span id, inherits
//! its parent's trace id, flags and trace state, or adopts a remote parent's
//! ([`adopt_remote_parent`]). [`crate::trace_context`] reads whichever of the two is installed.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::{Subscriber, span};
use tracing_subscriber::{
    Registry,
    layer::Context,
    registry::{LookupSpan, SpanRef},
};

/// The W3C identity of one span, kept in the span's extensions by [`SpanIdLayer`].
#[derive(Debug, Clone)]
struct SpanIdentity(SpanContext);

/// Gives every span a W3C span context: a new span id, and the trace of its parent span, or a
/// new sampled trace for a root span.
#[derive(Debug, Default)]
pub struct SpanIdLayer {
    ids: RandomIdGenerator,
}

impl<S> tracing_subscriber::Layer<S> for SpanIdLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, _attributes: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span
            .parent()
            .and_then(|parent| parent.extensions().get::<SpanIdentity>().cloned());
        let identity = match parent {
            Some(SpanIdentity(parent)) => in_trace_of(&parent, self.ids.new_span_id()),
            None => SpanContext::new(
                self.ids.new_trace_id(),
                self.ids.new_span_id(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
        };
        span.extensions_mut().insert(SpanIdentity(identity));
    }
}

/// Runs `action` on the identity [`SpanIdLayer`] gave `span`; `None` when that layer is not
/// installed (OpenTelemetry export is on, or no subscriber) or the span is disabled.
fn with_identity<R>(
    span: &tracing::Span,
    action: impl FnOnce(&mut SpanIdentity) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions.get_mut::<SpanIdentity>().map(action)
    })
    .flatten()
}

/// The span context [`SpanIdLayer`] gave the span behind `span`, for code that already holds
/// the registry's view of it (a log formatter).
pub(crate) fn identity_of<R>(span: &SpanRef<'_, R>) -> Option<SpanContext>
where
    R: for<'lookup> LookupSpan<'lookup>,
{
    span.extensions()
        .get::<SpanIdentity>()
        .map(|identity| identity.0.clone())
}

/// The span context [`SpanIdLayer`] gave `span`, if that layer is installed.
pub(crate) fn span_context_of(span: &tracing::Span) -> Option<SpanContext> {
    with_identity(span, |identity| identity.0.clone())
}

/// Makes `span` part of the remote trace `remote`: it keeps its own span id and takes the
/// remote trace id, flags and trace state. Returns `false` when [`SpanIdLayer`] does not track
/// `span`, so the caller can hand the parent to OpenTelemetry instead. Spans already created
/// under `span` keep the trace they started with; call this right after creating `span`.
pub(crate) fn adopt_remote_parent(span: &tracing::Span, remote: &SpanContext) -> bool {
    with_identity(span, |identity| {
        identity.0 = in_trace_of(remote, identity.0.span_id());
    })
    .is_some()
}

/// The local span `span_id` in the trace of `trace`: its trace id, flags and trace state.
fn in_trace_of(trace: &SpanContext, span_id: SpanId) -> SpanContext {
    SpanContext::new(
        trace.trace_id(),
        span_id,
        trace.trace_flags(),
        false,
        trace.trace_state().clone(),
    )
}
