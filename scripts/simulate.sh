#!/usr/bin/env bash
# `make simulate`: a synthetic year of cases through the whole system on shared simulated time
# (crates/simulator). Starts PostgreSQL if needed, builds the binaries, and runs ekb-simulate,
# passing on any arguments, e.g.
#   scripts/simulate.sh                                  # the national year, seed 1
#   scripts/simulate.sh --seed 7 --cases 500 --faults 3  # a small year with a fault schedule
#   scripts/simulate.sh --campaign 200 --cases 150       # 200 fault seeds, small years
# The services run on fresh databases ekb_sim_<service> and topics of their own, so a
# simulation never touches `make run`'s data. Logs and the clock file: target/simulate/.
# Set EKB__KAFKA__BROKERS to run against a real Kafka instead of the embedded mock broker.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [ -z "${EKB_TEST_DATABASE_URL:-}" ]; then
  scripts/ensure-postgres.sh
fi

echo "simulate: building the workspace (cargo build --workspace --bins)"
cargo build --quiet --workspace --bins

target="${CARGO_TARGET_DIR:-$root/target}"
exec "$target/debug/ekb-simulate" --out-dir "$target/simulate" "$@"
