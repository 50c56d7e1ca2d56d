#!/usr/bin/env bash
# Ten pure wheels published on the index, from different backends and years, each handed to
# `rewheel rebuild` without any recipe: prints how many are reproduced bit for bit, and for the
# rest what differs (the closest attempt's verdict).
#
#   benches/rebuild_pypi.sh            WHEELS="six==1.16.0" benches/rebuild_pypi.sh
#
# Uses the local backend and the host's python3.11 (the cell the wheels are rebuilt in).
# Results stay in ${OUT:-target/rebuild-pypi}.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
rewheel="${REWHEEL:-$root/target/release/rewheel}"
[ -x "$rewheel" ] || rewheel="$root/target/debug/rewheel"
out="${OUT:-$root/target/rebuild-pypi}"
index="${INDEX:-https://pypi.org/simple}"
python="${PYTHON:-3.11}"
wheels="${WHEELS:-six==1.16.0 python-dateutil==2.8.2 idna==3.7 tomli==2.0.1 packaging==23.2 attrs==23.2.0 iniconfig==2.0.0 pluggy==1.4.0 certifi==2024.2.2 poetry-core==1.9.0}"
mkdir -p "$out/wheels"
reproduced=0; total=0; lines=()
for pin in $wheels; do
  name="${pin%%==*}"; version="${pin##*==}"
  total=$((total + 1))
  # The published pure wheel, by the index's JSON listing.
  url=$(curl -sf -H 'Accept: application/vnd.pypi.simple.v1+json' "$index/$name/" | python3 -c '
import json, sys, re
name, version = sys.argv[1], sys.argv[2]
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
for f in json.load(sys.stdin)["files"]:
    fn = f["filename"]
    if fn.endswith("-none-any.whl") and norm(fn.split("-")[0]) == norm(name) and fn.split("-")[1] == version:
        print(f["url"]); break' "$name" "$version")
  if [ -z "$url" ]; then lines+=("$pin: no pure wheel on the index"); continue; fi
  start=$(date +%s)
  "$rewheel" rebuild "$url" --python "$python" --backend local -i "$index" \
    --store "$out/store" --cache-dir "$out/cache" --out "$out/wheels" \
    --recipe "$out/recipes/$name.toml" >"$out/$name.txt" 2>"$out/$name.log"
  code=$?
  secs=$(( $(date +%s) - start ))
  generator=$(grep -m1 "Generator" "$out/$name.txt" | sed 's/.*Generator: //; s/`.*//')
  case $code in
    0) reproduced=$((reproduced + 1)); verdict="reproduced: $(grep -m1 '^reproduced' "$out/$name.txt" | sed 's/.*with recipe: //')" ;;
    1) verdict="closest: $(grep -m1 -E 'DIFF|content|same content' "$out/$name.txt" | sed 's/^ *//' | cut -c1-160)" ;;
    *) verdict="failed (exit $code): $(grep -m1 -E 'error|did not build' "$out/$name.log" "$out/$name.txt" | cut -c1-160)" ;;
  esac
  lines+=("$(printf '%-26s %-24s %4ss  %s' "$pin" "${generator:-?}" "$secs" "$verdict")")
  printf '%s\n' "${lines[-1]}"
done
echo "== $reproduced/$total published wheels reproduced bit for bit by rebuild"
