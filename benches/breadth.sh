#!/usr/bin/env bash
# The breadth corpus (benches/breadth/corpus.txt) built from source in each cell named (default:
# cp311-bookworm cp313-trixie), then checked for reproducibility with `check --remedies`: prints,
# per cell and per package, whether the package's closure built, whether it was bit-identical
# under `check`, whether it was once the remedies `check` verified are applied (a closure counts
# when each of its wheels is identical or has a verified remedy), and the reason of each failure.
# The verified remedies of a cell are gathered into one settings file, remedies.toml.
#
#   benches/breadth.sh [CELL...]
#
# By default one `check` per cell takes the whole corpus, so each wheel is built twice in all
# (maturin, say, once per side, not once per Rust package); each package's verdict then comes
# from its closure in the cell's graph (`resolve --format json`; breadth/verdicts.py). MODE=each
# checks one closure per package instead (`ONLY="six numpy"` to redo some; `ONLY=-` for the
# summary alone), which builds the shared build tools' second side again for every package.
#
# Every build takes the reproducibility policy in breadth/policy.toml (a `[defaults]` table:
# a fixed umask, prefix maps); POLICY=/dev/null checks without it.
#
# Needs the docker backend and the suites' images (derived images with the corpus's system
# packages are made on first use). A job may take JOB_TIMEOUT seconds (default 5400: maturin
# takes 20 minutes on 2 busy cores). LIMIT caps one check in seconds (default 3600 per package,
# 5 hours for the whole corpus). Results stay in ${OUT:-target/breadth}, one folder per cell.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
rewheel="${REWHEEL:-$root/target/release/rewheel}"
[ -x "$rewheel" ] || rewheel="$root/target/debug/rewheel"
out="${OUT:-$root/target/breadth}"
mode="${MODE:-corpus}"
date="$(sed -n 's/^# date: //p' "$here/breadth/corpus.txt")"
cells=("$@")
[ ${#cells[@]} -eq 0 ] && cells=(cp311-bookworm cp313-trixie)
corpus=$(sed 's/#.*//' "$here/breadth/corpus.txt" | tr -s ' \n' '\n' | grep -v '^$')
packages=$corpus
# ONLY="a b" checks those again (ONLY=- none: the summary alone); the summary always covers
# the whole corpus, from each package's last result (`$dir/$pkg.result`).
[ -n "${ONLY:-}" ] && packages=$(echo "$ONLY" | tr ' ' '\n' | grep -vx -- -)
mkdir -p "$out"

# BARE=1 checks with no settings file at all (issue 26: what a new user meets): only the
# settings collection rewheel ships, no corpus settings and no policy.
settings() {
  if [ -n "${BARE:-}" ]; then
    return
  fi
  echo --settings "$here/breadth/settings.toml" --settings "$here/breadth/${1#*-}.toml" \
    --settings "${POLICY:-$here/breadth/policy.toml}"
}

common() {
  # shellcheck disable=SC2046
  echo --matrix "$root/matrices/debian.toml" --cells "$1" $(settings "$1") --exclude-newer "$date"
}

if [ "$mode" = corpus ]; then
  for cell in "${cells[@]}"; do
    dir="$out/$cell"
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    "$rewheel" resolve $corpus $(common "$cell") --cache-dir "$out/cache" --format json \
      >"$dir/resolve.json" 2>"$dir/resolve.log" || { cat "$dir/resolve.log"; continue; }
    start=$(date +%s)
    # shellcheck disable=SC2046
    timeout "${LIMIT:-18000}" "$rewheel" check $corpus $(common "$cell") \
      --remedies="$dir/remedies.toml" --source-date-epoch 1700000000 \
      --timeout "${JOB_TIMEOUT:-5400}" \
      --store "$out/store" --cache-dir "$out/cache" --out "$dir/wheels" \
      --format json >"$dir/check.json" 2>"$dir/check.log"
    code=$?
    echo "== $cell: check of the whole corpus took $(( $(date +%s) - start )) s, exit $code"
    python3 "$here/breadth/verdicts.py" "$cell" "$dir/resolve.json" "$dir/check.json" \
      "$dir/check.log" "$here/breadth/corpus.txt" | tee "$dir/summary.txt"
  done
  exit 0
fi
limit="${LIMIT:-3600}"

for cell in "${cells[@]}"; do
  dir="$out/$cell"
  mkdir -p "$dir"
  for pkg in $packages; do
    start=$(date +%s)
    timeout "$limit" "$rewheel" check "$pkg" \
      --matrix "$root/matrices/debian.toml" --cells "$cell" \
      $(settings "$cell") --remedies="$dir/$pkg.remedies.toml" \
      --exclude-newer "$date" --source-date-epoch 1700000000 \
      --store "$out/store" --cache-dir "$out/cache" --out "$dir/wheels" \
      --format json >"$dir/$pkg.json" 2>"$dir/$pkg.log"
    code=$?
    secs=$(( $(date +%s) - start ))
    # Wheels of the closure identical on both sides (a closure is bit-identical when all are),
    # and how many more a verified remedy makes identical.
    wheels=$(python3 -c 'import json,sys
try:
    d = json.load(open(sys.argv[1])); p = d.get("pairs", [])
    same = sum(x["verdict"] == "identical" for x in p)
    fixed = sum(x["verdict"] != "identical" and (x.get("remedy") or {}).get("verified", False) for x in p)
    print("%d/%d wheels identical, +%d remedied" % (same, len(p), fixed))
except Exception:
    print("no report")' "$dir/$pkg.json")
    case $code in
      0) verdict="built, reproducible" ;;
      1)
        if [[ $wheels =~ ^([0-9]+)/([0-9]+)\ wheels\ identical,\ \+([0-9]+) ]] \
          && [ $((BASH_REMATCH[1] + BASH_REMATCH[3])) -eq "${BASH_REMATCH[2]}" ]; then
          verdict="built, reproducible with verified remedies"
        else
          verdict="built, NOT reproducible"
        fi ;;
      124) verdict="failed: timed out after ${limit}s" ;;
      *)
        reason=$(grep -m1 -E 'FAILED|^error|cycle' "$dir/$pkg.log" | sed 's/^ *//' | cut -c1-220)
        verdict="failed (exit $code): $reason" ;;
    esac
    line=$(printf '%-14s %-20s %5ss  %-36s %s' "$cell" "$pkg" "$secs" "$wheels" "$verdict")
    echo "$line" | tee "$dir/$pkg.result"
  done
  built=0; identical=0; remedied=0; total=0; failures=()
  for pkg in $corpus; do
    total=$((total + 1))
    line=$(cat "$dir/$pkg.result" 2>/dev/null || echo "not checked")
    case $line in
      *"built, reproducible with verified remedies") built=$((built + 1)); remedied=$((remedied + 1)) ;;
      *"built, reproducible") built=$((built + 1)); identical=$((identical + 1)) ;;
      *"built, NOT reproducible") built=$((built + 1)) ;;
      *) failures+=("$pkg: ${line##*s  }") ;;
    esac
  done
  after=$((identical + remedied))
  echo "== $cell: $built/$total closures built ($(( 100 * built / total ))%), $identical/$total bit-identical under check ($(( 100 * identical / total ))%), $after/$total with verified remedies ($(( 100 * after / total ))%)"
  # One settings file of the cell's verified remedies (a package's remedy, once).
  python3 - "$dir" <<'PY'
import glob, os, re, sys
seen, out = set(), []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.remedies.toml"))):
    for block in re.split(r"(?m)^(?=\[packages\.)", open(f).read()):
        m = re.match(r"\[packages\.([^\]]+)\]", block)
        if m and m.group(1) not in seen:
            seen.add(m.group(1)); out.append(block.strip() + "\n")
open(os.path.join(sys.argv[1], "remedies.toml"), "w").write("\n".join(out))
print("   %d packages' verified remedies in %s" % (len(out), os.path.join(sys.argv[1], "remedies.toml")))
PY
  for f in "${failures[@]}"; do echo "   - $f"; done
done
