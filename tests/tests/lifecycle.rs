//! Lifecycle of a service process as Kubernetes sees it: health is NOT_SERVING until its
//! database is reachable and SERVING after; on SIGTERM it turns NOT_SERVING while it drains,
//! then the process exits 0 within the grace period.

use std::time::{Duration, Instant};

use ekb_platform::service::ServiceDescription;
use ekb_testkit::{
    broker::TestBroker,
    postgres::{create_database, unique_name, url_for},
    services::{ServiceProcess, TestSettings, health_status, health_status_of},
};
use ekb_tests::{test_log_dir, unique_topic_prefix};
use tonic_health::pb::health_check_response::ServingStatus;

async fn wait_for_status(
    process: &ServiceProcess,
    wanted: ServingStatus,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = health_status(process.grpc_addr).await;
        if status == Some(wanted) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "{} not {wanted:?} within {timeout:?} (last {status:?})\n{}",
                process.name,
                process.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_follows_the_database_and_sigterm_drains_then_exits() -> anyhow::Result<()> {
    let broker = TestBroker::start()?;
    // The database does not exist yet, and the service may not create it.
    let name = unique_name("lifecycle");
    let settings = TestSettings::new(
        &url_for(&name),
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    )
    .with("database.create_if_missing", "false")
    .with("shutdown.drain", "2s");
    let mut routing = ServiceProcess::spawn("routing", &settings, &test_log_dir())?;

    wait_for_status(&routing, ServingStatus::NotServing, Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        health_status(routing.grpc_addr).await,
        Some(ServingStatus::NotServing),
        "stays NOT_SERVING while its database is missing"
    );
    assert_eq!(
        health_status_of(routing.grpc_addr, "liveness").await,
        Some(ServingStatus::Serving),
        "alive all the same: a dependency outage must not get the pod restarted"
    );

    create_database(&name).await?;
    wait_for_status(&routing, ServingStatus::Serving, Duration::from_secs(30)).await?;

    routing.terminate()?;
    wait_for_status(&routing, ServingStatus::NotServing, Duration::from_secs(2)).await?;
    assert!(
        routing.is_running(),
        "still running (draining) right after SIGTERM"
    );
    let status = routing.wait_exit(Duration::from_secs(20)).await?;
    assert!(status.success(), "exit status {status}\n{}", routing.log());
    let log = routing.log();
    assert!(log.contains("health set to NOT_SERVING"), "{log}");
    assert!(log.contains("outbox relay stopped"), "{log}");
    assert!(
        !log.contains("connections still open"),
        "clients closed after GOAWAY: {log}"
    );
    Ok(())
}

/// Starts the routing binary with `key=value` in its environment and asserts it refuses to start,
/// naming `dotted` and `key`.
fn routing_refuses(key: &str, value: &str, dotted: &str) -> anyhow::Result<()> {
    let binary = ekb_testkit::binaries::workspace_binary("routing")?;
    let output = std::process::Command::new(binary)
        .env("EKB__AUTH__MODE", "disabled")
        .env(key, value)
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(dotted), "{stderr}");
    assert!(stderr.contains(key), "{stderr}");
    Ok(())
}

#[test]
fn a_misspelt_configuration_key_stops_the_process_naming_it() -> anyhow::Result<()> {
    routing_refuses("EKB__PILOT__COUNTYS", "34,03", "pilot.countys")
}

#[test]
fn a_bad_configuration_value_stops_the_process_naming_the_key() -> anyhow::Result<()> {
    routing_refuses(
        "EKB__PILOT__PERIODS",
        "2022-01-01/2021-01-01",
        "pilot.periods",
    )
}

/// A gRPC server the contract does not describe, so it gives none of its RPCs a role.
struct NotInTheContract;

impl tonic::server::NamedService for NotInTheContract {
    const NAME: &'static str = "ekspertbistand.v1.NotInTheContract";
}

/// Routing, described as serving a gRPC service the contract does not describe.
struct RoutingWithoutAContract;

impl ServiceDescription for RoutingWithoutAContract {
    const NAME: &'static str = "routing";
    const DEFAULTS: &'static str = ekb_routing::config::DEFAULTS;
    const LIST_KEYS: &'static [&'static str] = ekb_routing::Routing::LIST_KEYS;
    type Server = NotInTheContract;
    type Settings = ekb_routing::RoutingSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        ekb_routing::Routing::migrator()
    }

    fn build(
        db: ekb_platform::messaging::Db,
        settings: ekb_routing::RoutingSettings,
    ) -> anyhow::Result<ekb_platform::service::Assembly> {
        ekb_routing::Routing::build(db, settings)
    }
}

#[tokio::test]
async fn a_service_whose_rpcs_have_no_roles_in_the_contract_stops_at_start() -> anyhow::Result<()> {
    let broker = TestBroker::start()?;
    let database = ekb_testkit::postgres::fresh_database("wrong_roles").await?;
    let settings = TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    );
    let started = ekb_platform::service::load_config::<RoutingWithoutAContract>(&settings.apply(
        ekb_platform::service::config_loader::<RoutingWithoutAContract>(),
    ))?;
    let listeners = ekb_platform::grpc::Listeners {
        grpc: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        metrics: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let refused = ekb_platform::service::run::<RoutingWithoutAContract>(
        started,
        listeners,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect_err("refused at start");
    assert!(
        format!("{refused:#}")
            .contains("ekspertbistand.v1.NotInTheContract is not in the contract"),
        "{refused:#}"
    );
    Ok(())
}

#[tokio::test]
async fn a_worker_that_dies_stops_the_service_with_an_error() -> anyhow::Result<()> {
    use ekb_platform::grpc::{Listeners, ServiceHost, ServiceIdentity};

    let broker = TestBroker::start()?;
    let database = ekb_testkit::postgres::fresh_database("worker_dies").await?;
    let settings = TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    );
    let config = settings
        .apply(ekb_platform::config::ConfigLoader::new())
        .load::<ekb_platform::config::NoSettings>()?
        .platform;
    let host = ServiceHost::new(
        ServiceIdentity::new(
            "probe",
            "ekspertbistand.v1.Probe",
            ekb_platform::auth::RpcRoles::default(),
        ),
        config,
    )?
    .worker("fragile", |_stop, _grace| async {
        anyhow::bail!("lost its connection")
    });
    let listeners = Listeners {
        grpc: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        metrics: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let never = tokio_util::sync::CancellationToken::new();
    let served = tokio::time::timeout(
        Duration::from_secs(30),
        host.serve(
            listeners,
            tonic::service::Routes::builder().routes(),
            <ekb_routing::Routing as ServiceDescription>::migrator(),
            never,
        ),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the service kept running without its worker"))?;
    let error = served.expect_err("a dead worker must fail the service");
    assert!(
        format!("{error:#}").contains("lost its connection"),
        "{error:#}"
    );
    Ok(())
}
