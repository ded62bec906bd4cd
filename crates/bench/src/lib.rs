//! The benchmark's pieces other tools measure with too: pgbench, PostgreSQL's own load
//! generator ([`pgbench`]), and what a process costs, read from `/proc` ([`process_stats`]).
//! The year simulator (`ekb-simulate`) compares itself with pgbench and reports each service's
//! peak memory the same way `make bench` does.

pub mod pgbench;
pub mod process_stats;
