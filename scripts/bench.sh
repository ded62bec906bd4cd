#!/usr/bin/env bash
# `make bench`: the OpenCase benchmark (docs/benchmarks.md).
#
#   1. makes sure PostgreSQL answers (scripts/ensure-postgres.sh);
#   2. builds every binary in release mode — the services and the mock broker must be release
#      builds for the figures to mean anything, and ekb-bench finds them next to itself;
#   3. runs target/release/ekb-bench, passing on any arguments (see `--help`), e.g.
#        scripts/bench.sh --concurrency 8 --seconds 30
#
# The run takes about three minutes after the build (with --seconds 15), loads only 127.0.0.1,
# and ends by itself. It prints a summary and writes target/bench/open_case.json; it exits
# non-zero if a request failed or a setup step did, never because a target was missed.
#
# Environment: EKB_TEST_DATABASE_URL (PostgreSQL admin URL, default
# postgres://postgres@127.0.0.1:5432/postgres), EKB__KAFKA__BROKERS (use a real Kafka instead
# of the mock broker), CARGO_TARGET_DIR (honoured).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [ -z "${EKB_TEST_DATABASE_URL:-}" ]; then
  scripts/ensure-postgres.sh
fi

cargo build --release --workspace --bins

target="${CARGO_TARGET_DIR:-$root/target}"
exec "$target/release/ekb-bench" "$@"
