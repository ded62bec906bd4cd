#!/usr/bin/env bash
# The service binaries: one line "<package> <binary>" per [[bin]] of every services/*/Cargo.toml,
# sorted. A service is a crate under services/ whose [[bin]] is named after the service
# (docs/adding-a-service.md); deploy/Dockerfile builds and ships exactly what this prints, so it
# names no service itself, and scripts/helm-check.sh checks the list against cargo metadata.
#
# Usage: deploy/service-binaries.sh [REPOSITORY_ROOT]   (default: the repository of this script)
# Needs only bash and a POSIX awk: it runs in the image's build stage, before any tool is built.
set -euo pipefail

root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
shopt -s nullglob
manifests=("$root"/services/*/Cargo.toml)
if ((${#manifests[@]} == 0)); then
  echo "service-binaries: no services/*/Cargo.toml under $root" >&2
  exit 1
fi

lines=()
for manifest in "${manifests[@]}"; do
  # name = "x" (or 'x') in [package] and in each [[bin]]; comments and blanks ignored.
  if ! found="$(awk '
    function value(line) {
      sub(/^[^=]*=[ \t]*["\047]/, "", line)
      sub(/["\047].*$/, "", line)
      return line
    }
    { sub(/[ \t]*#.*$/, "") }
    /^[ \t]*\[/ { section = $0; gsub(/[ \t]/, "", section); next }
    section == "[package]" && /^[ \t]*name[ \t]*=/ { package = value($0) }
    section == "[[bin]]" && /^[ \t]*name[ \t]*=/ { bins[++n] = value($0) }
    END {
      if (package == "") exit 2
      if (n == 0) exit 3
      for (i = 1; i <= n; i++) print package, bins[i]
    }' "$manifest")"; then
    echo "service-binaries: $manifest has no [package] name or no [[bin]] name" \
      "(a service names its binary: [[bin]] name = \"<service>\")" >&2
    exit 1
  fi
  while IFS= read -r line; do lines+=("$line"); done <<<"$found"
done
printf '%s\n' "${lines[@]}" | sort -u
