//! `ekb-dev`: the README's first command (`make run`, via `scripts/run.sh`).
//!
//! Why it exists: a newcomer should see the whole system work — Kafka, the databases, every
//! service as the separate process it is in production, framework agreements flowing from the
//! registry to routing over events, cases routed to both flows with every reason, and the year's
//! appropriation and usage in budget — with one command and no setup beyond PostgreSQL. It uses the same building blocks as the end-to-end
//! tests (`ekb-testkit`), so what runs locally is what the tests exercise, and it runs every
//! service of the catalog (`ekb_testkit::catalog`), so a new service runs here without a change
//! to this crate. It starts the embedded mock broker unless `EKB__KAFKA__BROKERS` names a real
//! cluster, keeps data between runs unless `--fresh` (and reports where that data changes what
//! the demo shows), and `--exit-after-demo` turns the whole sequence into a smoke test
//! (`tests/demo.rs`).
//!
//! `ekb-compose` prints the laptop compose file from the same catalog ([`compose_file`]).
//!
//! The modules are public for the smoke test, which uses the fixture's constants.

pub mod budget_demo;
pub mod compose_file;
pub mod databases;
pub mod demo;
pub mod demo_callers;
pub mod evaluation_demo;
pub mod fixture;
pub mod instructions;
pub mod launcher;
pub mod options;
pub mod pilot_flow_demo;
pub mod regular_flow_demo;
pub mod sample_cases;
pub mod table;
