//! The Prometheus endpoint on the metrics port counts RPCs by method and status code and
//! reports the outbox backlog.

use std::time::Duration;

use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    broker::TestBroker,
    postgres::fresh_database,
    services::{TestSettings, start_in_process},
};
use ekb_tests::{HAMAR, case_facts, eventually, open_case, unique_topic_prefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

#[tokio::test]
async fn rpc_counts_and_outbox_gauges_are_exported() -> anyhow::Result<()> {
    let broker = TestBroker::start()?;
    let database = fresh_database("metrics").await?;
    let settings = TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    );
    let routing = start_in_process::<ekb_routing::Routing>(&settings).await?;
    let mut client =
        v1::routing_service_client::RoutingServiceClient::connect(routing.url()).await?;
    client
        .open_case(open_case(case_facts(
            HAMAR,
            Some(CompetenceArea::ConflictHandling),
            "2025-03-01",
        )))
        .await?;
    let mut bad = open_case(case_facts(HAMAR, None, "2025-03-01"));
    bad.request_id = "nope".into();
    assert!(client.open_case(bad).await.is_err());

    let body = eventually(
        "metrics to include both calls and the outbox gauges",
        Duration::from_secs(15),
        || async {
            let body = scrape(routing.metrics_addr).await?;
            let ready =
                body.contains("ekb_outbox_backlog") && body.contains("code=\"InvalidArgument\"");
            Ok(ready.then_some(body))
        },
    )
    .await?;
    let line = |needle: &[&str]| {
        body.lines()
            .find(|line| needle.iter().all(|n| line.contains(n)))
            .map(str::to_owned)
    };
    let ok = line(&[
        "ekb_grpc_requests_total{",
        "method=\"OpenCase\"",
        "code=\"Ok\"",
    ])
    .expect("OpenCase Ok counted");
    assert!(ok.ends_with(" 1"), "{ok}");
    let invalid = line(&[
        "ekb_grpc_requests_total{",
        "method=\"OpenCase\"",
        "code=\"InvalidArgument\"",
    ])
    .expect("invalid counted");
    assert!(invalid.ends_with(" 1"), "{invalid}");
    assert!(
        line(&[
            "ekb_grpc_request_duration_seconds_bucket{",
            "method=\"OpenCase\""
        ])
        .is_some()
    );
    assert!(line(&["ekb_outbox_oldest_age_seconds"]).is_some());
    routing.stop().await
}
