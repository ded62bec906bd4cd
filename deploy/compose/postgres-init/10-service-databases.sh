#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory.
# One database per service, each owned by a login role of the same name (password = name,
# laptop only). The owner may run DDL, which the migrations at start need
# (docs/adr/0011-migrations-at-start-under-advisory-lock.md).
set -euo pipefail

for db in routing expert_registry applications refunds pilot_ordering budget; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE $db LOGIN PASSWORD '$db';
CREATE DATABASE $db OWNER $db;
REVOKE ALL ON DATABASE $db FROM PUBLIC;
SQL
done
