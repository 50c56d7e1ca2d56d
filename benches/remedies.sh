#!/usr/bin/env bash
# Issue 13's figure: `check` of a 20-package lock with its whole build closure, before and
# after the remedies `check --remedies` verified. Prints wheels identical before, the remedies
# verified (by cause), and wheels identical after, with the remedies as settings.
#
#   benches/remedies.sh [LOCK]          (default benches/lock-20.txt; PYTHON=3.11, BACKEND=local)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
rewheel="${REWHEEL:-$root/target/release/rewheel}"
[ -x "$rewheel" ] || rewheel="$root/target/debug/rewheel"
lock="${1:-$here/lock-20.txt}"
out="${OUT:-$root/target/remedies}"
mkdir -p "$out"
common=(-r "$lock" --python "${PYTHON:-3.11}" --backend "${BACKEND:-local}"
  --store "$out/store" --cache-dir "$out/cache" --out "$out/wheels"
  --source-date-epoch 1700000000 --exclude-newer "${DATE:-2024-11-01T00:00:00Z}" --format json)
count() { python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); p = d["pairs"]
print("%d of %d wheels identical" % (sum(x["verdict"] == "identical" for x in p), len(p)))' "$1"; }
"$rewheel" check "${common[@]}" --remedies="$out/remedies.toml" >"$out/before.json" 2>"$out/before.log"
echo "before: $(count "$out/before.json")"
python3 - "$out/before.json" <<'PY'
import json, sys, collections
d = json.load(open(sys.argv[1]))
by = collections.Counter()
for p in d["pairs"]:
    r = p.get("remedy")
    if r:
        key = ("verified: " if r["verified"] else ("no known remedy: " if not r["remedies"] else "not enough: ")) + ", ".join(r["causes"] or ["unattributed"])
        by[key] += 1
for k, n in sorted(by.items()):
    print(f"  {n:3d}  {k}")
PY
"$rewheel" check "${common[@]}" --settings "$out/remedies.toml" >"$out/after.json" 2>"$out/after.log"
echo "after:  $(count "$out/after.json")  (with $(grep -c '^\[packages' "$out/remedies.toml") packages' remedies as settings)"
