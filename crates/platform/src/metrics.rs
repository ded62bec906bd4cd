//! Prometheus metrics on a separate port (`GET /metrics`), and the names of the metrics every
//! service records, so dashboards and alerts have one vocabulary.

use std::{net::SocketAddr, sync::OnceLock};

use http_body_util::Full;
use hyper::{Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Counter: gRPC calls, labels `service`, `method`, `code`.
pub const GRPC_REQUESTS: &str = "ekb_grpc_requests_total";
/// Histogram (seconds): gRPC call latency, labels `service`, `method`, `code`.
pub const GRPC_LATENCY: &str = "ekb_grpc_request_duration_seconds";
/// Gauge: outbox rows not yet published.
pub const OUTBOX_BACKLOG: &str = "ekb_outbox_backlog";
/// Gauge (seconds): age of the oldest unpublished outbox row.
pub const OUTBOX_OLDEST_AGE: &str = "ekb_outbox_oldest_age_seconds";
/// Gauge: 1 while this process's outbox relay holds the publisher's lease, else 0 (one replica
/// per service shows 1).
pub const OUTBOX_LEASE_HELD: &str = "ekb_outbox_lease_held";
/// Counter: events published by the relay, label `topic`.
pub const OUTBOX_PUBLISHED: &str = "ekb_outbox_published_total";
/// Counter: relay rounds that failed, label `reason`.
pub const OUTBOX_FAILURES: &str = "ekb_outbox_failures_total";
/// Counter: consumed events by outcome, labels `topic`, `outcome`
/// (applied, duplicate, skipped_unknown_type, dead_lettered).
pub const CONSUMER_EVENTS: &str = "ekb_consumer_events_total";
/// Counter: handler retries, label `topic`.
pub const CONSUMER_RETRIES: &str = "ekb_consumer_retries_total";
/// Counter: infrastructure failures (database lost, too many clients, …) while applying an
/// event, retried without limit, label `topic`. Rising for minutes: the database is down.
pub const CONSUMER_TRANSIENT_FAILURES: &str = "ekb_consumer_transient_failures_total";
/// Counter: messages sent to the dead-letter topic, label `topic`.
pub const CONSUMER_DEAD_LETTERED: &str = "ekb_consumer_dead_lettered_total";
/// Gauge: consumer lag in messages (high watermark − position), labels `topic`, `partition`.
pub const CONSUMER_LAG: &str = "ekb_consumer_lag";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed on first use; later calls share it).
pub fn recorder() -> anyhow::Result<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_owned()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )?
        .install_recorder()
        .or_else(|error| {
            HANDLE
                .get()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("could not install the metrics recorder: {error}"))
        })?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Serves `GET /metrics` on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, stop: CancellationToken) -> anyhow::Result<()> {
    let handle = recorder()?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = stop.cancelled() => return Ok(()),
        };
        let service = service_fn(
            move |request: hyper::Request<hyper::body::Incoming>| async move {
                if request.uri().path() == "/metrics" {
                    handle.run_upkeep();
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(handle.render())))
                } else {
                    Response::builder()
                        .status(404)
                        .body(Full::new(Bytes::from_static(b"not found\n")))
                }
            },
        );
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    Ok(TcpListener::bind(addr).await?)
}
