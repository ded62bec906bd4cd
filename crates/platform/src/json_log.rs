//! The JSON log line of every service (`telemetry.log_format = "json"`): one object per event,
//! carrying the W3C trace and span ids of the span it happened in.
//!
//! An operator who finds a log line wants its trace, and the reverse; log platforms join the
//! two on `trace_id` and `span_id` at the top level of the line. tracing-subscriber's JSON
//! format has no ids. It also parses the current span's stored fields back into a
//! `serde_json::Value` for every line, which made OpenCase's one log line cost about 5 % of
//! routing's CPU (docs/benchmarks.md). This format writes the same shape (`timestamp`,
//! `level`, `fields`, `target`, `span`) and splices the span's fields in as they were stored,
//! already JSON, then adds the ids when there is a span.

use std::fmt;

use opentelemetry::trace::SpanContext;
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::{LookupSpan, SpanRef},
};

use crate::{span_ids::identity_of, trace_context::span_context_of_current};

/// Formats events as JSON lines with trace ids; use with
/// [`tracing_subscriber::fmt::format::JsonFields`] as the field formatter, so a span's stored
/// fields are a JSON object.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\",\"fields\":", metadata.level())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_str(",\"target\":")?;
        write_json_string(&mut writer, metadata.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            write_span::<S, N>(&mut writer, &span)?;
            // Looked up only once write_span has let go of the span's extensions: with
            // OpenTelemetry export, the lookup may have to write them. That fallback reads the
            // current span, which is this one unless the event named another parent.
            let ids = identity_of(&span).or_else(span_context_of_current);
            if let Some(ids) = ids.filter(SpanContext::is_valid) {
                write!(
                    writer,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                    ids.trace_id(),
                    ids.span_id()
                )?;
            }
        }
        writer.write_str("}\n")
    }
}

/// `,"span":{"name":…,<its fields>}`, the fields copied as stored.
fn write_span<S, N>(writer: &mut Writer<'_>, span: &SpanRef<'_, S>) -> fmt::Result
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    writer.write_str(",\"span\":{")?;
    let extensions = span.extensions();
    let stored = extensions
        .get::<FormattedFields<N>>()
        .map(|fields| fields.fields.as_str())
        .unwrap_or_default();
    // JsonFields stores `{"key":value,…}`; anything else is not spliced, so the line stays JSON.
    let inner = stored
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_default();
    if !inner.is_empty() {
        writer.write_str(inner)?;
        writer.write_char(',')?;
    }
    writer.write_str("\"name\":")?;
    write_json_string(writer, span.name())?;
    writer.write_char('}')
}

fn write_json_string(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    let quoted = serde_json::to_string(text).map_err(|_| fmt::Error)?;
    writer.write_str(&quoted)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt::format::JsonFields, layer::SubscriberExt};

    use super::*;
    use crate::span_ids::SpanIdLayer;

    /// Log lines written by a subscriber like a service's, one JSON value per line.
    fn log_lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .expect("not poisoned")
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines)
                    .with_writer(move || sink.clone()),
            )
            .with(SpanIdLayer::default());
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(captured.0.lock().expect("not poisoned").clone())
            .expect("log lines are UTF-8");
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn a_line_outside_any_span_has_fields_and_target_and_no_ids() {
        let lines = log_lines(|| tracing::warn!(count = 3, "disk \"almost\" full"));
        let [line] = lines.as_slice() else {
            panic!("{lines:?}")
        };
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["fields"]["message"], "disk \"almost\" full");
        assert_eq!(line["fields"]["count"], 3);
        assert_eq!(line["target"], module_path!());
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(
            line.get("span").is_none() && line.get("trace_id").is_none(),
            "{line}"
        );
    }

    #[test]
    fn a_line_inside_a_span_has_its_fields_and_its_trace_and_span_ids() {
        let (lines, trace_id, span_id) = {
            let mut ids = None;
            let lines = log_lines(|| {
                let span = tracing::info_span!("grpc", rpc.method = "/x.v1.S/Call");
                let _entered = span.enter();
                let identity = crate::span_ids::span_context_of(&span).expect("an identity");
                ids = Some((identity.trace_id(), identity.span_id()));
                tracing::info!(case = "c-1", "case opened");
            });
            let (trace_id, span_id) = ids.expect("the span was entered");
            (lines, trace_id.to_string(), span_id.to_string())
        };
        let [line] = lines.as_slice() else {
            panic!("{lines:?}")
        };
        assert_eq!(line["span"]["name"], "grpc");
        assert_eq!(line["span"]["rpc.method"], "/x.v1.S/Call");
        assert_eq!(line["fields"]["case"], "c-1");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"], span_id.as_str());
        assert_eq!(trace_id.len(), 32);
        assert_eq!(span_id.len(), 16);
    }

    #[test]
    fn a_span_without_fields_still_gives_valid_json() {
        let lines = log_lines(|| {
            let span = tracing::info_span!("relay");
            let _entered = span.enter();
            tracing::info!("round");
        });
        let [line] = lines.as_slice() else {
            panic!("{lines:?}")
        };
        assert_eq!(line["span"], serde_json::json!({ "name": "relay" }));
        assert!(line["trace_id"].is_string(), "{line}");
    }
}
