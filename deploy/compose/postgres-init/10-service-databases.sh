#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory.
# One database per service, each owned by a login role of the same name (password = name,
# laptop only): the service name with '-' as '_' (expert-registry -> expert_registry). The
# services come from SERVICES, which docker-compose.yaml sets from its one list
# (x-service-names). The owner may run DDL, which the migrations at start need
# (docs/adr/0011-migrations-at-start-under-advisory-lock.md).
set -euo pipefail

read -ra services <<<"${SERVICES:?SERVICES must list the services (docker-compose.yaml sets it)}"
for service in "${services[@]}"; do
  db="${service//-/_}"
  if [[ ! "$db" =~ ^[a-z][a-z0-9_]*$ ]]; then
    echo "10-service-databases: '$service' is not a service name" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE $db LOGIN PASSWORD '$db';
CREATE DATABASE $db OWNER $db;
REVOKE ALL ON DATABASE $db FROM PUBLIC;
SQL
done
