#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:${EKB_PG_PORT:-5432} with trust auth for
# user postgres, as the tests and `make run` expect. In order:
#   1. one already answers → done;
#   2. the machine's own cluster (Debian's pg_ctlcluster) can be started → start it;
#   3. otherwise initialise and start a private cluster under target/pgdata, as the `postgres`
#      user when we are root (PostgreSQL refuses to run as root). Installs Debian's postgresql
#      package first if no server binaries exist and we may use apt.
set -euo pipefail

port="${EKB_PG_PORT:-5432}"
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${EKB_PG_DATA:-$root/target/pgdata}"

ready() { pg_isready -q -h 127.0.0.1 -p "$port" >/dev/null 2>&1; }

if command -v pg_isready >/dev/null 2>&1 && ready; then
  exit 0
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && [ "$port" = 5432 ] && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  echo "ensure-postgres: starting the machine's PostgreSQL $version cluster"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: installing Debian's postgresql package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  else
    echo "ensure-postgres: no PostgreSQL server binaries found; install PostgreSQL or set EKB_TEST_DATABASE_URL" >&2
    exit 1
  fi
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

mkdir -p "$data"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$data" --shell /bin/sh postgres
  chown postgres "$data"
  chmod 700 "$data"
fi
if [ ! -f "$data/PG_VERSION" ]; then
  echo "ensure-postgres: initialising a private cluster in $data"
  as_owner "'$bin/initdb' -D '$data' -U postgres -A trust --no-sync >/dev/null"
fi
echo "ensure-postgres: starting the private cluster on 127.0.0.1:$port"
as_owner "'$bin/pg_ctl' -D '$data' -l '$data/server.log' -w -t 60 -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300\" start >/dev/null"
ready || { echo "ensure-postgres: the server did not come up; see $data/server.log" >&2; exit 1; }
