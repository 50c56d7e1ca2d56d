#!/usr/bin/env bash
# Issue 11's bisection goal: `bisect --until builds` over 8 candidate bumps between two locks
# should cost at most 2× one cold build, because probes reuse every job an earlier probe ran.
#
# The break is a real one: PyYAML 6.0 asks for Cython unpinned, and Cython 3.0.0 (July 2023)
# broke its build (`cython_sources`). The bad lock bumps eight pins, Cython 0.29.36 → 3.0.0
# among them; the bisection must name that one. Prints the cold builds of both locks, the
# bisection's time, its probes, the jobs built and reused, and the ratios.
#
#   benches/bisect_locks.sh             (PYTHON=3.11, BACKEND=local; KEEP=1 keeps the folder)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${REWHEEL:-$PWD/target/release/rewheel}
[ -x "$bin" ] || { cargo build --release --quiet; bin=$PWD/target/release/rewheel; }
python=${PYTHON:-3.11}
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
date=2023-07-25T00:00:00Z
# A copy: the probes run the bisection's own binary, which a rebuild meanwhile would remove.
cp "$bin" "$work/rewheel" && bin=$work/rewheel

cat >"$work/good.txt" <<'EOF'
pyyaml==6.0
cython==0.29.36
attrs==22.2.0
certifi==2023.5.7
idna==3.3
markupsafe==2.1.2
packaging==23.0
six==1.15.0
urllib3==2.0.2
EOF
cat >"$work/bad.txt" <<'EOF'
pyyaml==6.0
cython==3.0.0
attrs==23.1.0
certifi==2023.7.22
idna==3.4
markupsafe==2.1.3
packaging==23.1
six==1.16.0
urllib3==2.0.4
EOF
common=(--python "$python" --exclude-newer "$date" --cache-dir "$work/cache")
building=(--backend "${BACKEND:-local}" --source-date-epoch 1700000000)

now() { date +%s.%N; }
# The index pages and sdists once, so that every timing below is building, not downloading.
"$bin" resolve pyyaml -c "$work/bad.txt" --build-constraints "$work/bad.txt" "${common[@]}" >/dev/null
"$bin" resolve pyyaml -c "$work/good.txt" --build-constraints "$work/good.txt" "${common[@]}" >/dev/null

cold() { # LOCK NAME: one cold build of the target under a lock, in a store of its own
  local start end
  start=$(now)
  "$bin" build pyyaml -c "$1" --build-constraints "$1" "${common[@]}" "${building[@]}" \
    --store "$work/cold-$2" --out "$work/cold-$2-out" >"$work/cold-$2.log" 2>&1 || true
  end=$(now)
  echo "$end - $start" | bc
}
cold_bad=$(cold "$work/bad.txt" bad)
cold_good=$(cold "$work/good.txt" good)
grep -q "cython_sources" "$work/cold-bad.log" \
  || { echo "the bad lock did not fail as expected:"; tail -20 "$work/cold-bad.log"; exit 1; }

start=$(now)
"$bin" bisect --target pyyaml --good-lock "$work/good.txt" --bad-lock "$work/bad.txt" \
  --python "$python" --until builds --store "$work/bisect-store" --cache-dir "$work/cache" -- \
  --backend "${BACKEND:-local}" --exclude-newer "$date" --source-date-epoch 1700000000 \
  >"$work/bisect.log" 2>&1 || { tail -20 "$work/bisect.log"; exit 1; }
end=$(now)
took=$(echo "$end - $start" | bc)
answer=$(grep -m1 '^first bad change' "$work/bisect.log")
probes=$(grep -m1 '^probes:' "$work/bisect.log")
# Each probe is a run in the bisection's store: `X/Y jobs built (R reused)`.
"$bin" runs list --store "$work/bisect-store" >"$work/runs.txt"
counts=$(python3 - "$work/runs.txt" <<'PY'
import re, sys
built = reused = failed = 0
for line in open(sys.argv[1]):
    m = re.search(r"(\d+)/(\d+) jobs built(?: \((\d+) reused\))?", line)
    if m:
        done, jobs, r = int(m[1]), int(m[2]), int(m[3] or 0)
        built += done - r; reused += r; failed += jobs - done
print(built, reused, failed)
PY
)
read -r built reused failed <<<"$counts"
printf 'cold build, bad lock:   %6.1f s (fails in pyyaml, as it should)\n' "$cold_bad"
printf 'cold build, good lock:  %6.1f s\n' "$cold_good"
printf 'bisection:              %6.1f s  %s; %s\n' "$took" "$probes" "$answer"
echo "jobs over all probes:   $built built, $reused reused, $failed failed or not reached"
sed 's/^/  /' "$work/runs.txt"
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "ratio to one cold build: $(ratio "$took" "$cold_bad")× the bad lock's, $(ratio "$took" "$cold_good")× the good lock's (goal ≤ 2)"
case $answer in
  *cython*) ;;
  *) echo "the bisection named the wrong change"; exit 1 ;;
esac
