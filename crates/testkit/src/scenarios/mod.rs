//! The scenarios `make run` walks and the end-to-end tests assert, written once: the people who
//! call the flow services ([`personas`]), the requests they send ([`requests`]), how a caller
//! waits for what happens through events ([`waits`]), the clients of a running system
//! ([`clients`]), and the two happy-path walks ([`regular`]: case → application → four-eyes
//! decision → grant → refund claim → four-eyes approval → payment; [`pilot`]: case → order →
//! the supplier accepts → started → completed → invoice → attested and approved by two people →
//! payment).
//!
//! Why one library: the launcher's walks and the tests' flows were the same scenarios written
//! twice, each with its own personas, builders and waits, and they drifted. A walk reports each
//! step to a [`Narrator`]: the launcher's prints it, a test's records it and checks what the
//! contract promises at that point (a refusal of the same person deciding twice, say). So the
//! walk a developer watches under `make run` is the one the tests assert on.

pub mod both_flows;
pub mod clients;
pub mod narrator;
pub mod personas;
pub mod pilot;
pub mod regular;
pub mod requests;
pub mod waits;

pub use clients::Clients;
pub use narrator::{Narrator, Step};
pub use personas::People;
