#!/usr/bin/env bash
# Regenerates the values table in helm/ekspertbistand/README.md from values.yaml: one row per
# value, its default, and the text of the `# --` comment above it.
#
#   scripts/helm-docs.sh           rewrite the table between the README's values markers
#   scripts/helm-docs.sh --check   exit 1 if the README's table differs (scripts/helm-check.sh)
set -euo pipefail

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
chart="$root/helm/ekspertbistand"
bindir="$("$root/scripts/install-helm-tools.sh" | tail -n1)"
py="$(dirname "$bindir")/venv/bin/python"

"$py" - "$chart/values.yaml" "$chart/README.md" "${1:-}" <<'PY'
import json, re, sys, yaml

values_path, readme_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(values_path, encoding="utf-8").read()
values = yaml.safe_load(text)

# Descriptions: a "# -- " comment (with "#    " continuation lines) describes the next key.
descriptions, stack, pending = {}, [], None
for line in text.splitlines():
    stripped = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    if stripped.startswith("# -- "):
        pending = stripped[5:]
        continue
    if stripped.startswith("#") and pending is not None and re.match(r"#\s{2,}", stripped):
        pending += " " + stripped.lstrip("#").strip()
        continue
    if stripped.startswith("#") or not stripped:
        continue
    m = re.match(r"^(\s*)([A-Za-z0-9_.-]+):", line)
    if not m or stripped.startswith("- "):
        continue
    while stack and stack[-1][0] >= indent:
        stack.pop()
    stack.append((indent, m.group(2)))
    if pending is not None:
        descriptions[".".join(k for _, k in stack)] = pending
        pending = None

def leaves(d, prefix=""):
    """Rows: every scalar or list, every empty map, and a map whose own comment describes it."""
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and prefix != "services" and key not in descriptions:
            yield from leaves(v, key)
        else:
            yield key, v

def cell(s):
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
undocumented = []
for key, v in leaves(values):
    desc = descriptions.get(key, "")
    if key.startswith("services."):
        desc = desc or f"Block of the `{key.split('.', 1)[1]}` service; any key of `serviceDefaults` may be set here."
    if not desc:
        undocumented.append(key)
    rows.append(f"| `{key}` | `{cell(json.dumps(v, separators=(',', ':')))}` | {cell(desc)} |")
table = "\n".join(rows)

start, end = "<!-- values:start -->", "<!-- values:end -->"
readme = open(readme_path, encoding="utf-8").read()
if start not in readme or end not in readme:
    sys.exit(f"{readme_path}: markers {start} / {end} missing")
head, rest = readme.split(start, 1)
_, tail = rest.split(end, 1)
updated = f"{head}{start}\n{table}\n{end}{tail}"
if undocumented:
    sys.exit("values.yaml: no `# --` description for: " + ", ".join(undocumented))
if mode == "--check":
    if updated != readme:
        sys.exit("helm/ekspertbistand/README.md: values table is stale; run scripts/helm-docs.sh")
else:
    open(readme_path, "w", encoding="utf-8").write(updated)
PY
