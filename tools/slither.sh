#!/usr/bin/env bash
# Static analysis of the vault: Slither (PyPI slither-analyzer) through the
# project's solc wrapper, offline. Fails on any High finding, and on any Medium finding that
# SLITHER_TRIAGE.md does not triage (a `| check | element |` row); prints every finding either way.
# Usage: tools/slither.sh [--json out.json]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${2:-$ROOT/.tools/slither.json}"
SLITHER="$ROOT/.venv/bin/slither"
[[ -x "$SLITHER" ]] || { echo "slither: not installed. Fix: make setup (slither-analyzer is a dev dependency)" >&2; exit 2; }
[[ -x "$ROOT/.tools/solcx/solc-v0.8.37" ]] || { echo "slither: solc wrapper missing. Fix: make setup" >&2; exit 2; }
rm -f "$OUT"
# Slither exits non-zero whenever it finds anything; the gate below decides.
"$SLITHER" contracts --config-file slither.config.json --json "$OUT" >/dev/null 2>"$OUT.log" || true
[[ -s "$OUT" ]] || { echo "slither: no report; its log follows" >&2; tail -20 "$OUT.log" >&2; exit 2; }
"$ROOT/.venv/bin/python" - "$OUT" SLITHER_TRIAGE.md <<'PY'
import json, re, sys
report, triage_path = sys.argv[1], sys.argv[2]
data = json.load(open(report))
if not data.get("success"):
    sys.exit(f"slither failed: {data.get('error')}")
triaged = set()
for line in open(triage_path):
    m = re.match(r"^\|\s*`?([a-z0-9-]+)`?\s*\|\s*`([^`]+)`\s*\|", line)
    if m:
        triaged.add((m.group(1), m.group(2)))

def element(d):
    e = d["elements"][0] if d["elements"] else {}
    tsf = e.get("type_specific_fields", {})
    parent = tsf.get("parent", {}).get("name", "")
    name = tsf.get("signature") or e.get("name", "?")
    return f"{parent}.{name}" if parent else name

counts, untriaged = {}, []
for d in data["results"].get("detectors", []):
    impact = d["impact"]
    counts[impact] = counts.get(impact, 0) + 1
    key = (d["check"], element(d))
    mark = "triaged" if key in triaged else "UNTRIAGED"
    print(f"{impact:7} {mark:9} {d['check']:24} {key[1]}")
    if impact == "High" or (impact == "Medium" and key not in triaged):
        untriaged.append(key)
print("slither:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no findings")
if untriaged:
    print(f"slither: {len(untriaged)} High finding(s) or Medium finding(s) not in {triage_path}:",
          file=sys.stderr)
    for check, elem in untriaged:
        print(f"  | {check} | `{elem}` |", file=sys.stderr)
    sys.exit(1)
print("slither: no High finding; every Medium finding is triaged")
PY
echo "slither: inline suppressions in contracts/ (each has its reason on the lines above it):"
grep -rn "slither-disable" contracts || echo "  none"
