#!/usr/bin/env bash
# `make run`, the README's first command: the whole system on this machine.
#
#   1. makes sure PostgreSQL answers on 127.0.0.1:5432 (scripts/ensure-postgres.sh), unless
#      EKB_TEST_DATABASE_URL names another server;
#   2. builds every binary (the services, the mock broker and the launcher itself);
#   3. runs target/debug/ekb-dev, passing on any arguments, e.g.
#        scripts/run.sh --fresh                # start with empty databases
#        scripts/run.sh --exit-after-demo      # stop after the sample cases
#        scripts/run.sh --port routing=6001    # move a service's gRPC port
#        scripts/run.sh --set routing.pilot.counties=34,46   # a configuration key for one service
#        scripts/run.sh --help                 # every flag, every service and its ports
#
# ekb-dev uses the Kafka named by EKB__KAFKA__BROKERS, or else starts the embedded mock broker;
# starts every service of the catalog (crates/testkit/src/catalog.rs: routing on gRPC
# 127.0.0.1:50051, expert-registry 50052, applications 50053, refunds 50054, pilot-ordering
# 50055, budget 50056, evaluation 50057) with authentication OFF except for the four-eyes flow services
# (applications, refunds, pilot-ordering: a local token issuer, a developer token printed),
# sets the year's appropriation if none is set, loads Innlandet framework agreements, routes
# sample cases, walks one regular and one pilot case to payment, prints where everything
# listens and serves until Ctrl-C. Data is kept between runs; where it changes what a sample case shows,
# the demo says so in a note. Service logs: target/run-logs/<service>.log.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [ -z "${EKB_TEST_DATABASE_URL:-}" ]; then
  scripts/ensure-postgres.sh
fi

echo "run: building the workspace (cargo build --workspace --bins)"
cargo build --quiet --workspace --bins

target="${CARGO_TARGET_DIR:-$root/target}"
exec "$target/debug/ekb-dev" "$@"
