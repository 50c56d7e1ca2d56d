#!/usr/bin/env bash
# The job cache, measured against the tools people use, in one run on one machine:
#   cold  — every tool with empty caches (PIP_CACHE_DIR, UV_CACHE_DIR and fromager's folders
#           fresh, since pip's build subprocess writes to ~/.cache/pip otherwise);
#   warm  — the same lock again with the caches each tool kept;
#   bump  — one pin of the lock changed (BUMP, default six 1.16.0 → 1.15.0), then the lock again.
#
#   benches/warm_vs_tools.sh                      LOCK=benches/lock-40.txt NO_PIP=1 benches/warm_vs_tools.sh
# Prints the times, the ratios, how many jobs rewheel built and reused, and rewheel's harness
# overhead: wall time against max(total job time / cores, critical path of job times).
# Needs: python3.11, network to the index. uv and fromager go into a venv of their own.
# NO_PIP=1 and NO_FROMAGER=1 leave out the slow baselines; BUMP_ONLY=1 measures rewheel's cold,
# warm and bump runs and the bump's floor only (no second cold run, no other tool).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-$(python3.11 -c 'import sys; print(sys.executable)')}
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
lock=${LOCK:-benches/lock-15.txt}
read -r bump_from bump_to <<<"${BUMP:-six==1.16.0 six==1.15.0}"
bump_name=${bump_to%%==*} bump_version=${bump_to#*==}
rounds=${ROUNDS:-1}
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
# Built before SOURCE_DATE_EPOCH is set: a dependency's build script watches it, so cargo
# would rebuild the release binary with it set and again without.
cargo build --release --quiet
export SOURCE_DATE_EPOCH=1700000000
bin=$PWD/target/release/rewheel
tools=${TOOLS:-$work/tools}
[ -x "$tools/bin/uv" ] || { "$py" -m venv "$tools" && "$tools/bin/pip" install -q uv fromager; }
sed "s/^$bump_from\$/$bump_to/" "$lock" >"$work/bumped.txt"
cmp -s "$lock" "$work/bumped.txt" && { echo "$bump_from is not a line of $lock"; exit 1; }
cores=$(nproc)

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

rw() { # rewheel LOCK STORE OUT [MORE ARGS]
  "$bin" build -r "$1" --python "$version" --python-path "$py" --backend local \
    --source-date-epoch "$SOURCE_DATE_EPOCH" --cache-dir "$work/rw-cache" --store "$2" \
    --out "$3" --build-path "$work/rw-build" "${@:4}" >"$work/rw.log" 2>&1 || { tail -30 "$work/rw.log"; exit 1; }
}
uvi() { # uv LOCK CACHE
  rm -rf "$work/uv-target"
  UV_CACHE_DIR="$2" "$tools/bin/uv" pip install --no-binary :all: -r "$1" --python "$py" \
    --target "$work/uv-target" -q >"$work/uv.log" 2>&1 || { tail -30 "$work/uv.log"; exit 1; }
}
pipw() { # pip LOCK CACHE
  PIP_CACHE_DIR="$2" "$py" -m pip wheel --no-binary :all: -r "$1" -w "$work/pip-out" \
    --disable-pip-version-check -q >"$work/pip.log" 2>&1 || { tail -30 "$work/pip.log"; exit 1; }
}
fro() { # fromager LOCK DIR
  (cd "$2" && PATH="$tools/bin:$PATH" "$tools/bin/fromager" --sdists-repo sdists --wheels-repo wheels --work-dir work \
    bootstrap -r "$1" >"$work/fromager.log" 2>&1) || { tail -30 "$work/fromager.log"; exit 1; }
}
count() { grep -c "$1" "$work/rw.log" || true; }

for round in $(seq "$rounds"); do
  store=$work/store-$round; rm -rf "$work/rw-cache"
  uvc=$work/uv-cache-$round pipc=$work/pip-cache-$round fdir=$work/fromager-$round
  mkdir -p "$fdir"
  t=$(now); rw "$lock" "$store" "$work/rw-$round"; rw_cold=$(secs "$t" "$(now)")
  built_cold=$(count '\] built .*s)$'); reused_cold=$(count 'reused from run')
  run_id=$(sed -n 's/^run //p' "$work/rw.log" | head -1)
  t=$(now); rw "$lock" "$store" "$work/rw-$round"; rw_warm=$(secs "$t" "$(now)")
  built_warm=$(count '\] built .*s)$'); reused_warm=$(count 'reused from run')
  # The bumped pin's sdist is fetched and read first, untimed: the bump and the floor below
  # then both start with it in the download cache, and the ratio compares building.
  "$bin" resolve -r "$work/bumped.txt" --python "$version" --cache-dir "$work/rw-cache" >/dev/null 2>&1
  t=$(now); rw "$work/bumped.txt" "$store" "$work/rw-$round"; rw_bump=$(secs "$t" "$(now)")
  built_bump=$(count '\] built .*s)$'); reused_bump=$(count 'reused from run')
  bump_job=$(sed -n "s/.*\] built $bump_name $bump_version (\([0-9.]*\) s).*/\1/p" "$work/rw.log")
  # Building just what the bump changed, as its own command: the floor for the bump.
  echo "$bump_to" >"$work/just.txt"
  t=$(now); "$bin" build -r "$work/just.txt" \
    --python "$version" --python-path "$py" --backend local --source-date-epoch "$SOURCE_DATE_EPOCH" \
    --cache-dir "$work/rw-cache" --store "$store" --out "$work/rw-just-$round" \
    --build-path "$work/rw-build" --rebuild="$bump_name" >"$work/rw.log" 2>&1
  rw_just=$(secs "$t" "$(now)")
  # The cold build once more with a fresh store but the download cache kept: the harness's
  # own overhead, without the network time the first cold run also paid.
  # BUMPS=N: the bump N-1 times more, its one package forced (`--rebuild=NAME`, the rest
  # reused), each against its floor again: the same shape, more samples.
  ratios="$(echo "scale=2; $rw_bump / $rw_just" | bc)"
  for _ in $(seq 2 "${BUMPS:-1}"); do
    t=$(now); rw "$work/bumped.txt" "$store" "$work/rw-$round" --rebuild="$bump_name"; b=$(secs "$t" "$(now)")
    t=$(now); rw "$work/just.txt" "$store" "$work/rw-just-$round" --rebuild="$bump_name"; j=$(secs "$t" "$(now)")
    ratios="$ratios $(echo "scale=2; $b / $j" | bc)"
  done
  [ "${BUMPS:-1}" -gt 1 ] && echo "  bump / floor, $BUMPS samples: $ratios"
  if [ -n "${BUMP_ONLY:-}" ]; then
    echo "round $round ($cores cores, $(basename "$lock"), CPython $version): rewheel cold ${rw_cold} s, warm ${rw_warm} s"
    echo "  jobs built/reused: cold $built_cold/$reused_cold, warm $built_warm/$reused_warm, bump $built_bump/$reused_bump"
    echo "  bump: ${rw_bump} s against ${bump_job:-?} s for the one job it had to build;"
    echo "        building just that package (same store, --rebuild=$bump_name): ${rw_just} s, ratio $(echo "scale=2; $rw_bump / $rw_just" | bc)"
    continue
  fi
  t=$(now); rw "$lock" "$work/store-net-$round" "$work/rw-net-$round"; rw_nonet=$(secs "$t" "$(now)")
  nonet_id=$(sed -n 's/^run //p' "$work/rw.log" | head -1)
  # Overhead of a cold run, from its own job times in the store: the bound is the larger of
  # the critical path (a job waits for the jobs whose wheels are in its build environment)
  # and the total job time spread over the cores.
  overhead() { "$bin" runs show "$1" --json --store "$2" | "$py" -c '
import json, sys
jobs = json.load(sys.stdin)["jobs"]
by_wheel = {j["wheel_sha256"]: j for j in jobs if j.get("wheel_sha256")}
memo = {}
def path(j):
    key = j["fingerprint_sha256"]
    if key not in memo:
        env = json.loads(j["fingerprint"]).get("build_env", [])
        deps = [by_wheel[w["sha256"]] for w in env if w["sha256"] in by_wheel]
        memo[key] = j["seconds"] + max((path(d) for d in deps), default=0.0)
    return memo[key]
print(sum(j["seconds"] for j in jobs), max(path(j) for j in jobs))'; }
  read -r total critical < <(overhead "$run_id" "$store")
  bound=$(echo "b = $total / $cores; if ($critical > b) b = $critical; b" | bc -l)
  read -r total2 critical2 < <(overhead "$nonet_id" "$work/store-net-$round")
  bound2=$(echo "b = $total2 / $cores; if ($critical2 > b) b = $critical2; b" | bc -l)

  t=$(now); uvi "$lock" "$uvc"; uv_cold=$(secs "$t" "$(now)")
  t=$(now); uvi "$lock" "$uvc"; uv_warm=$(secs "$t" "$(now)")
  t=$(now); uvi "$work/bumped.txt" "$uvc"; uv_bump=$(secs "$t" "$(now)")
  if [ -z "${NO_PIP:-}" ]; then
    t=$(now); pipw "$lock" "$pipc"; pip_cold=$(secs "$t" "$(now)")
    rm -rf "$work/pip-out"
    t=$(now); pipw "$lock" "$pipc"; pip_warm=$(secs "$t" "$(now)")
  else
    pip_cold=nan pip_warm=nan
  fi
  if [ -z "${NO_FROMAGER:-}" ]; then
    t=$(now); fro "$PWD/$lock" "$fdir"; fro_cold=$(secs "$t" "$(now)")
    t=$(now); fro "$PWD/$lock" "$fdir"; fro_warm=$(secs "$t" "$(now)")
  else
    fro_cold=nan fro_warm=nan
  fi

  echo "round $round ($cores cores, $(basename "$lock"), CPython $version)"
  printf '  %-34s %8s %8s %8s\n' "" cold warm bump
  printf '  %-34s %8.2f %8.2f %8.2f\n' "rewheel build" "$rw_cold" "$rw_warm" "$rw_bump"
  printf '  %-34s %8.2f %8.2f %8.2f\n' "uv pip install --no-binary :all:" "$uv_cold" "$uv_warm" "$uv_bump"
  printf '  %-34s %8.2f %8.2f\n' "pip wheel --no-binary :all:" "$pip_cold" "$pip_warm"
  printf '  %-34s %8.2f %8.2f\n' "fromager bootstrap" "$fro_cold" "$fro_warm"
  echo "  rewheel jobs built/reused: cold $built_cold/$reused_cold, warm $built_warm/$reused_warm, bump $built_bump/$reused_bump"
  echo "  ratios (tool / rewheel): cold uv $(echo "scale=2; $uv_cold / $rw_cold" | bc)x, warm uv $(echo "scale=2; $uv_warm / $rw_warm" | bc)x"
  [ "$pip_cold" != nan ] && echo "  pip / rewheel cold: $(echo "scale=2; $pip_cold / $rw_cold" | bc)x"
  [ "$fro_cold" != nan ] && echo "  fromager / rewheel cold: $(echo "scale=2; $fro_cold / $rw_cold" | bc)x"
  echo "  bump: ${rw_bump} s against ${bump_job:-?} s for the one job it had to build;"
  echo "        building just that package (same store, --rebuild=$bump_name): ${rw_just} s, ratio $(echo "scale=2; $rw_bump / $rw_just" | bc)"
  echo "  harness overhead (cold): wall ${rw_cold} s / max(job time ${total} s / $cores cores, critical path ${critical} s) = $(echo "scale=2; $rw_cold / $bound" | bc)"
  echo "  harness overhead (cold store, downloads cached): wall ${rw_nonet} s / max(${total2} s / $cores, ${critical2} s) = $(echo "scale=2; $rw_nonet / $bound2" | bc)"
done
