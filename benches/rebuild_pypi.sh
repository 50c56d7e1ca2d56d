#!/usr/bin/env bash
# Published pure wheels handed to `rewheel rebuild` without any recipe (issue 27): how many are
# reproduced bit for bit, how many are equal once entry times are set aside (what OSS Rebuild
# counts), by backend family and by year, and for each wheel not reproduced its closest attempt.
#
#   benches/rebuild_pypi.sh                          # the list in benches/rebuild/pure-wheels.txt
#   WHEELS="six==1.16.0 idna==3.4" benches/rebuild_pypi.sh
#   J=2 benches/rebuild_pypi.sh                      # two rebuilds at a time
#
# A wheel already rebuilt in ${OUT:-target/rebuild-pypi} is not rebuilt again (delete its .code
# file to redo it): a killed batch goes on where it stopped. Uses the local backend and the
# host's Python ${PYTHON:-3.11} (the cell the wheels are rebuilt in); the build closures are
# shared through one cache and store.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
rewheel="${REWHEEL:-$root/target/release/rewheel}"
[ -x "$rewheel" ] || rewheel="$root/target/debug/rewheel"
out="${OUT:-$root/target/rebuild-pypi}"
index="${INDEX:-https://pypi.org/simple}"
python="${PYTHON:-3.11}"
list="${LIST:-$here/rebuild/pure-wheels.txt}"
wheels="${WHEELS:-$(sed 's/#.*//' "$list" | tr -s ' \n' '\n' | grep '==')}"
mkdir -p "$out/wheels" "$out/recipes"
export rewheel out index python

one() {
  local pin=$1 name version url start code
  name="${pin%%==*}"; version="${pin##*==}"
  local tag="$name-$version"
  [ -f "$out/$tag.code" ] && return 0
  # The published pure wheel and its upload time, by the index's JSON listing.
  url=$(curl -sf -H 'Accept: application/vnd.pypi.simple.v1+json' "$index/$name/" | python3 -c '
import json, sys, re
name, version = sys.argv[1], sys.argv[2]
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
for f in json.load(sys.stdin)["files"]:
    fn = f["filename"]
    if fn.endswith("-none-any.whl") and norm(fn.split("-")[0]) == norm(name) and fn.split("-")[1] == version:
        print(f["url"], f.get("upload-time", "")[:4]); break' "$name" "$version")
  if [ -z "$url" ]; then echo "no pure wheel on the index" >"$out/$tag.txt"; echo 3 >"$out/$tag.code"; return 0; fi
  echo "${url#* }" >"$out/$tag.year"
  start=$(date +%s)
  "$rewheel" rebuild "${url% *}" --python "$python" --backend local -i "$index" \
    --store "$out/store" --cache-dir "$out/cache" --out "$out/wheels" \
    --recipe "$out/recipes/$tag.toml" >"$out/$tag.txt" 2>"$out/$tag.log"
  code=$?
  echo $(( $(date +%s) - start )) >"$out/$tag.secs"
  echo "$code" >"$out/$tag.code"
  echo "$pin: exit $code in $(cat "$out/$tag.secs") s" >&2
}
export -f one
printf '%s\n' $wheels | xargs -P "${J:-1}" -I{} bash -c 'one {}'

python3 - "$out" $wheels <<'PY'
import json, os, re, sys
from collections import defaultdict
out, pins = sys.argv[1], sys.argv[2:]
rows = []
for pin in pins:
    name, version = pin.split("==")
    tag = f"{name}-{version}"
    read = lambda ext, d="": open(f"{out}/{tag}.{ext}").read().strip() if os.path.exists(f"{out}/{tag}.{ext}") else d
    text, code = read("txt"), int(read("code", "9"))
    gen = re.search(r"Generator: ([^`]*)`", text)
    gen = gen.group(1).strip() if gen else "?"
    family = ("setuptools" if gen.startswith("bdist_wheel") else "flit-core" if gen.startswith("flit")
              else "hatchling" if gen.startswith("hatch") else "poetry-core" if gen.startswith("poetry")
              else "pdm-backend" if gen.startswith("pdm") else "other")
    same = code == 0 or "same content, different archive" in text
    if code == 0:
        why = "bit for bit"
    elif code == 1:
        m = re.search(r"^\s*DIFF \S+\s+(.*)$", text, re.M)
        why = "closest: " + (m.group(1).strip() if m else "differs")[:150]
    else:
        log = read("log")
        m = re.search(r"^(error.*|.*did not build.*)$", log + "\n" + text, re.M)
        why = f"failed (exit {code}): " + (m.group(1) if m else "")[:150]
    rows.append(dict(pin=pin, family=family, generator=gen, year=read("year", "?"), code=code,
                     identical=code == 0, same_content=same, seconds=int(read("secs", "0")), why=why))
for r in rows:
    print(f"{r['pin']:<36} {r['generator']:<24} {r['year']:>4} {r['seconds']:>4}s  {r['why']}")
def rate(rs):
    n = len(rs)
    return (f"{sum(r['identical'] for r in rs)}/{n} bit for bit, "
            f"{sum(r['same_content'] for r in rs)}/{n} equal after normalising entry times") if n else "-"
print(f"\n== all: {rate(rows)}")
for key in ("family", "year"):
    groups = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    for k in sorted(groups):
        print(f"   {key} {k:<12} {rate(groups[k])}")
json.dump({"schema_version": 1, "wheels": rows}, open(f"{out}/report.json", "w"), indent=1)
print(f"\nreport: {out}/report.json")
PY
