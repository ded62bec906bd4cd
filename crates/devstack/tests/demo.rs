//! Smoke tests of `make run`: the launcher brings the whole system up — broker, databases,
//! every catalog service as a process, the fixture — routes its sample cases, sets budget's
//! appropriation and reports its usage, and shuts down cleanly; and a second run over the data a
//! first run left behind (an agreement a developer registered by hand, an appropriation they
//! changed) reports what changed instead of refusing to start.
//!
//! Needs PostgreSQL (scripts/ensure-postgres.sh) and the service binaries
//! (`cargo build --workspace --bins`). Each test runs beside a developer's `make run` without
//! touching it: free ports for every service (`--port NAME=PORT`), its own databases
//! (`ekbtest_…`, dropped afterwards and by `make test`), its own topic prefix, its own log
//! directory.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ekb_devstack::{
    budget_demo::{budget_year_now, fixture_request},
    fixture::{COUNTY, PROBE_DATE, UNCOVERED_AREA, area_name},
};
use ekb_proto::v1::{
    self, budget_service_client::BudgetServiceClient,
    expert_registry_service_client::ExpertRegistryServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::{
    catalog::SERVICES,
    fixtures::{GJOVIK, case_facts, register_agreement},
    postgres::{TEST_DATABASE_PREFIX, drop_database},
    services::free_local_addr,
};

/// Upper bound for a whole run, or for a long-lived run to come up (a few seconds on an idle
/// machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// What `ekb-dev` prints once it serves.
const SERVING_LINE: &str = "Press Ctrl-C to stop.";
/// The words of a note on a sample case that earlier data changed.
const DIFFERS: &str = "differs from the fixture alone";
/// The appropriation a developer sets by hand in the first of two runs: 60 MNOK, in øre.
const CHANGED_ORE: i64 = 6_000_000_000;

/// Where one test's stack lives: database and topic prefixes and a log directory of its own,
/// the same for every run of the test, so a later run finds what an earlier one left.
struct Sandbox {
    db_prefix: String,
    topic_prefix: String,
    log_dir: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        Sandbox {
            db_prefix: format!("{TEST_DATABASE_PREFIX}dev{}_", &run_id[..8]),
            topic_prefix: format!("ekbtest.dev{run_id}"),
            log_dir: std::env::temp_dir().join(format!("ekb-dev-smoke-{run_id}")),
        }
    }

    /// Starts `ekb-dev` with `flags`, every catalog service on free ports.
    fn launch(&self, flags: &[&str]) -> anyhow::Result<Launcher> {
        let mut ports = Vec::new();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ekb-dev"));
        command.args(flags);
        for service in SERVICES {
            let grpc = free_local_addr()?.port();
            let metrics = free_local_addr()?.port();
            command
                .arg("--port")
                .arg(format!("{}={grpc}", service.name))
                .arg("--metrics-port")
                .arg(format!("{}={metrics}", service.name));
            ports.push((service.name, grpc));
        }
        let mut child = command
            .args(["--db-prefix", &self.db_prefix])
            .args(["--topic-prefix", &self.topic_prefix])
            .arg("--log-dir")
            .arg(&self.log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ekb-dev")?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let lines = {
            let stdout = stdout.clone();
            let pipe = child.stdout.take().context("stdout is piped")?;
            // Line by line, so a test can wait for one while the launcher keeps running.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut text) = stdout.lock() {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
            })
        };
        let stderr = drain(child.stderr.take().context("stderr is piped")?);
        Ok(Launcher {
            child,
            ports,
            stdout,
            lines: Some(lines),
            stderr: Some(stderr),
        })
    }

    /// Drops the databases the runs created and the logs.
    async fn clean_up(&self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.log_dir);
        for service in SERVICES {
            drop_database(&service.database_name(&self.db_prefix)).await?;
        }
        Ok(())
    }
}

/// A running `ekb-dev`.
struct Launcher {
    child: Child,
    /// gRPC port of each service.
    ports: Vec<(&'static str, u16)>,
    stdout: Arc<Mutex<String>>,
    lines: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// What a finished run printed, and how it ended.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// Fails unless the run exited 0, quoting its output.
    fn ensure_success(&self) -> anyhow::Result<()> {
        if !self.status.success() {
            bail!("ekb-dev exited with {}\n{self}", self.status);
        }
        Ok(())
    }

    /// Fails unless the first line of stdout containing `needle` also contains every one of
    /// `parts`, quoting the output.
    fn ensure_line(&self, needle: &str, parts: &[&str]) -> anyhow::Result<()> {
        let line = self
            .stdout
            .lines()
            .find(|line| line.contains(needle))
            .with_context(|| format!("stdout has no line with {needle:?}\n{self}"))?;
        for part in parts {
            anyhow::ensure!(line.contains(part), "{line:?} lacks {part:?}\n{self}");
        }
        Ok(())
    }

    /// The sample-case table's rows (case ids are shortened to `…` and their last digits;
    /// budget's usage table has REGULAR and PILOT rows too).
    fn table_rows(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| line.starts_with("  …"))
            .filter(|line| line.contains("  REGULAR  ") || line.contains("  PILOT  "))
            .collect()
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

impl Launcher {
    fn url(&self, service: &str) -> anyhow::Result<String> {
        let (_, port) = self
            .ports
            .iter()
            .find(|(name, _)| *name == service)
            .with_context(|| format!("{service} is not in the catalog"))?;
        Ok(format!("http://127.0.0.1:{port}"))
    }

    fn stdout(&self) -> String {
        self.stdout
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Waits until stdout has a line containing `needle`; fails if the launcher exits first
    /// or `timeout` passes.
    async fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "ekb-dev exited ({status}) before printing {needle:?}\n{}",
                    self.finish().await?
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "ekb-dev did not print {needle:?} within {timeout:?}\n{}",
                    self.stdout()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM, as a developer's Ctrl-C would (`ekb-dev` treats both alike).
    fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        Ok(())
    }

    /// Waits for the launcher to exit (at most [`RUN_TIMEOUT`]; killed after that) and
    /// returns what it printed.
    async fn finish(&mut self) -> anyhow::Result<Finished> {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                // SIGKILL ends ekb-dev, whose broker then exits on stdin EOF; the services are
                // killed by nothing — acceptable only because this path is already a failure.
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "ekb-dev did not finish within {RUN_TIMEOUT:?}\nstdout:\n{}",
                    self.stdout()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Some(lines) = self.lines.take() {
            let _ = lines.join();
        }
        let stderr = match self.stderr.take() {
            Some(stderr) => stderr.join().unwrap_or_default(),
            None => String::new(),
        };
        Ok(Finished {
            status,
            stdout: self.stdout(),
            stderr,
        })
    }
}

impl Drop for Launcher {
    /// A test that failed half-way still stops its launcher the way Ctrl-C would, so the
    /// services (in process groups of their own) do not outlive it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.terminate().is_ok() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a child's pipe to the end on a thread, so a full pipe never blocks the child.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        // A read error only truncates the captured text, which the assertions then report.
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Runs `ekb-dev --exit-after-demo` with `flags` to the end.
async fn run_once(sandbox: &Sandbox, flags: &[&str]) -> anyhow::Result<Finished> {
    let mut flags = flags.to_vec();
    flags.push("--exit-after-demo");
    sandbox.launch(&flags)?.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_after_demo_routes_every_sample_and_stops_cleanly() -> anyhow::Result<()> {
    let sandbox = Sandbox::new();
    let outcome = run_once(&sandbox, &["--fresh"]).await;
    let cleanup = sandbox.clean_up().await;
    let run = outcome?;
    run.ensure_success()?;

    for expected in [
        "PILOT",
        "PILOT_ELIGIBLE",
        "REGULAR",
        "EMPLOYER_CHOSE_OWN_EXPERT",
        "NO_AGREEMENT_FOR_AREA",
        "OUTSIDE_PILOT_COUNTY",
        "OUTSIDE_PILOT_PERIOD",
        "auth.mode=disabled",
        "Routing's read model agrees with the registry",
    ] {
        assert!(
            run.stdout.contains(expected),
            "stdout lacks {expected:?}\n{run}"
        );
    }
    // Every catalog service ran, on the port it was given, and stopped.
    for service in SERVICES {
        let serving = run
            .stdout
            .lines()
            .any(|line| line.trim_start().starts_with(service.name) && line.contains("SERVING"));
        assert!(serving, "{} did not report SERVING\n{run}", service.name);
        let database = service.database_name(&sandbox.db_prefix);
        assert!(
            run.stdout.contains(&database),
            "{database} not named\n{run}"
        );
    }
    assert!(run.stdout.contains("Stopped "), "{run}");
    // Budget got this year's appropriation from the fixture, and has nothing to report yet.
    let year = budget_year_now(&ekb_platform::clock::SystemClock);
    run.ensure_line(&format!("Budget {year}, account 2650.76"), &[])?;
    run.ensure_line(
        "Appropriation set now",
        &[
            "appropriated 50 000 000,00 kr, committed 0,00 kr,",
            "available 50 000 000,00 kr, used 0,00 %",
        ],
    )?;
    run.ensure_line(
        &format!("Usage {year} (GetUsage"),
        &["appropriated 50 000 000,00 kr, used 0,00 kr = 0,00 %"],
    )?;
    // The usage report comes before the walks through both flows, which then reach payment.
    run.ensure_line(
        "No reservations yet:",
        &["applications", "neither has asked yet"],
    )?;
    for needle in ["(PaymentCompleted)", "(InvoicePaymentRecorded)"] {
        assert!(
            run.stdout.contains(needle),
            "stdout lacks {needle:?}\n{run}"
        );
    }
    assert!(!run.stdout.contains("walk stopped"), "{run}");
    // A fresh run is the fixture alone: nothing differs, nothing is noted.
    assert_eq!(
        run.table_rows().len(),
        6,
        "one table row per sample case\n{run}"
    );
    assert!(!run.stdout.contains(DIFFERS), "{run}");
    assert!(!run.stdout.contains("Warning"), "{run}");
    cleanup.context("dropping the smoke test's databases")
}

/// `make run` works on every day of the pilot: with every service's clock (and the walks') set
/// to a day in the middle of the pilot and to its last day, both walks reach payment, the pilot
/// walk is not skipped for want of an agreement, and budget works in that day's year.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walks_reach_payment_on_a_day_mid_pilot_and_on_its_last_day() -> anyhow::Result<()> {
    for (day, year) in [("2027-06-01", 2027), ("2028-12-31", 2028)] {
        let sandbox = Sandbox::new();
        let outcome = run_once(&sandbox, &["--fresh", "--clock-start", day]).await;
        let cleanup = sandbox.clean_up().await;
        let run = outcome?;
        run.ensure_success()?;
        assert!(run.stdout.contains("Clock       SIMULATED"), "{run}");
        run.ensure_line(&format!("Budget {year}, account 2650.76"), &[])?;
        for needle in ["(PaymentCompleted)", "(InvoicePaymentRecorded)", day] {
            assert!(
                run.stdout.contains(needle),
                "{day}: stdout lacks {needle:?}\n{run}"
            );
        }
        assert!(!run.stdout.contains("No agreement covers"), "{day}\n{run}");
        assert!(!run.stdout.contains("walk stopped"), "{day}\n{run}");
        cleanup.context("dropping the smoke test's databases")?;
    }
    Ok(())
}

/// The scenario of a developer who follows the hints: on one `make run` they register an
/// agreement for the area the fixture leaves uncovered and raise this year's appropriation to
/// 60 MNOK, stop it, and run again over the same databases. The second run must serve (exit 0
/// here), say why the sample case that the fixture alone routes NO_AGREEMENT_FOR_AREA now goes
/// to the pilot, and report the appropriation as the developer left it, without setting it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_earlier_data_notes_what_differs_and_serves() -> anyhow::Result<()> {
    let sandbox = Sandbox::new();
    let outcome = two_runs(&sandbox).await;
    let cleanup = sandbox.clean_up().await;
    let (reference, second) = outcome?;
    second.ensure_success()?;

    let stdout = &second.stdout;
    assert!(stdout.contains("data kept from earlier runs"), "{second}");
    assert!(
        stdout.contains("Agreements: 0 new, 3 already registered"),
        "the fixture was kept\n{second}"
    );
    // The extra agreement is reported with the fixture…
    let also = stdout
        .lines()
        .skip_while(|line| !line.contains("Also active in county"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        also.contains(&reference) && also.contains(area_name(UNCOVERED_AREA)),
        "the other agreement is not listed\n{second}"
    );
    // …the sample case it affects shows what routing did, pointing to a note…
    let rows = second.table_rows();
    assert_eq!(rows.len(), 6, "one table row per sample case\n{second}");
    let uncovered = rows
        .iter()
        .find(|row| row.contains(area_name(UNCOVERED_AREA)))
        .with_context(|| format!("no sample case for the uncovered area\n{second}"))?;
    assert!(
        uncovered.contains("  PILOT  ") && uncovered.contains("PILOT_ELIGIBLE (note 1)"),
        "{uncovered}\n{second}"
    );
    // …which says what differs and why, naming the agreement and how to start empty.
    let note = stdout
        .lines()
        .find(|line| line.contains("Note 1:"))
        .with_context(|| format!("no note\n{second}"))?;
    for needle in [
        DIFFERS,
        "NO_AGREEMENT_FOR_AREA",
        &reference,
        "earlier run",
        "--fresh",
    ] {
        assert!(note.contains(needle), "note lacks {needle:?}: {note}");
    }
    // Only that case differs.
    assert_eq!(stdout.matches("(note ").count(), 1, "{second}");
    assert!(!stdout.contains("Note 2:"), "{second}");
    assert!(!stdout.contains("Warning"), "{second}");
    // The appropriation is the developer's, kept and reported, with what differs.
    second.ensure_line(
        "Appropriation kept from an earlier run",
        &["(version 2): appropriated 60 000 000,00 kr"],
    )?;
    second.ensure_line(
        "It differs from the fixture's 50 000 000,00 kr",
        &["left as it is", "--fresh"],
    )?;
    assert!(!stdout.contains("Appropriation set now"), "{second}");
    // The first run's walks used 18 000 − 3 000 kr (regular) and 21 500 − 1 500 kr (pilot).
    second.ensure_line(
        "(GetUsage",
        &["appropriated 60 000 000,00 kr, used 35 000,00 kr = 0,05 %"],
    )?;
    cleanup.context("dropping the smoke test's databases")
}

/// The first run (fresh, serving) gets an agreement for the uncovered area in county 34 through
/// the registry's gRPC API and a 60 MNOK appropriation through budget's, and is stopped once
/// routing routes that area to the pilot; the second runs over the same databases. Returns the
/// agreement's reference and the second run.
async fn two_runs(sandbox: &Sandbox) -> anyhow::Result<(String, Finished)> {
    let mut first = sandbox.launch(&["--fresh"])?;
    first.wait_for(SERVING_LINE, RUN_TIMEOUT).await?;
    let mut registry = ExpertRegistryServiceClient::connect(first.url("expert-registry")?).await?;
    let request = register_agreement(COUNTY, &[UNCOVERED_AREA]);
    let reference = request.agreement_reference.clone();
    registry
        .register_agreement(request)
        .await
        .context("RegisterAgreement")?;
    let mut budget = BudgetServiceClient::connect(first.url("budget")?).await?;
    budget
        .set_appropriation(v1::SetAppropriationRequest {
            appropriated_ore: CHANGED_ORE,
            note: "changed by hand".to_owned(),
            ..fixture_request(budget_year_now(&ekb_platform::clock::SystemClock))
        })
        .await
        .context("SetAppropriation")?;

    // Stopped only once routing has the agreement in its read model (its database): the
    // embedded broker keeps events in memory, so one still in flight would be lost with it.
    let mut routing = RoutingServiceClient::connect(first.url("routing")?).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let flow = routing
            .evaluate_route(v1::EvaluateRouteRequest {
                facts: Some(case_facts(GJOVIK, Some(UNCOVERED_AREA), PROBE_DATE)),
            })
            .await?
            .into_inner()
            .decision
            .unwrap_or_default()
            .flow();
        if flow == v1::Flow::Pilot {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "routing never saw agreement {reference}\n{}",
                first.stdout()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.terminate()?;
    let first = first.finish().await?;
    first.ensure_success()?;

    let second = run_once(sandbox, &[]).await?;
    Ok((reference, second))
}
