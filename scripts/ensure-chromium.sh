#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed, as the evaluation report's browser test
# expects (services/evaluation/src/report: it renders the HTML report with
# `chromium --headless=new --dump-dom`). In order:
#   1. $EKB_CHROMIUM names an executable, or /usr/bin/chromium exists → done, silently;
#   2. we are root and have apt-get → install Debian's `chromium` package non-interactively;
#   3. otherwise say what to do and fail.
set -euo pipefail

log() { echo "ensure-chromium: $*" >&2; }

if [ -n "${EKB_CHROMIUM:-}" ]; then
  if [ -x "$EKB_CHROMIUM" ]; then
    exit 0
  fi
  log "EKB_CHROMIUM=$EKB_CHROMIUM is not an executable"
  exit 1
fi

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing Debian's chromium package"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  [ -x /usr/bin/chromium ] || { log "apt-get finished but /usr/bin/chromium is missing"; exit 1; }
  exit 0
fi

log "no Chromium found; install Debian's chromium package (apt-get install chromium) as root," \
  "or set EKB_CHROMIUM to a Chromium binary"
exit 1
