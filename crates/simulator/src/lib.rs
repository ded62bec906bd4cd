//! `ekb-simulate`: a synthetic year of cases through the whole system, on shared simulated time.
//!
//! Why: every case in the other tests lives for minutes. The paths only time drives — refund
//! deadlines and grant expiry, unanswered and unstarted orders, invoice deadlines, the monthly
//! capacity, the budget year — and what a crash does in the middle of a saga are seen only here,
//! with all six services carrying a year of cases through their public contracts.
//!
//! How it is put together:
//! - [`population`] makes the year from a seed: which cases open where and when, on which path
//!   ([`plan`]);
//! - [`system`] starts the services as `make run` does, on the shared clock file;
//! - [`timeline`] moves that clock (`ekb_platform::clock::ClockFile`) a day at a time, when
//!   every case task waits for a later day;
//! - [`regular`] and [`pilot`] carry out each path as employers, caseworkers, deciders,
//!   suppliers and the payment system would;
//! - [`invariants`] checks the money, the events, the personal data and the evaluation's
//!   figures at the end;
//! - [`faults`] derives a fault schedule from `--faults SEED` and injects it;
//! - [`run`] puts one simulation together, [`campaign`] runs many fault seeds, [`summary`]
//!   prints the result with [`commits`] and the [`baseline`] (pgbench) it is measured against.

pub mod baseline;
pub mod campaign;
pub mod commits;
pub mod cpu;
pub mod faults;
pub mod invariants;
pub mod options;
pub mod pilot;
pub mod plan;
pub mod population;
pub mod regular;
pub mod run;
pub mod summary;
pub mod system;
pub mod timeline;
pub mod vacuum;
