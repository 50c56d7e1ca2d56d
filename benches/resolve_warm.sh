#!/usr/bin/env bash
# Warm-cache resolution of the python-dateutil 2.8.2 case for four cells (goal: under 50 ms).
# Needs the index once, to fill the cache; the timed runs are offline.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/rewheel
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
args=(resolve python-dateutil==2.8.2 --python 3.7 --python 3.9 --python 3.11 --python 3.13
      --exclude-newer 2022-07-15T00:00:00Z --cache-dir "$cache")
"$bin" "${args[@]}" >/dev/null || true   # exit 4: the 3.7 cell has the cycle
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 3 --runs 30 -i "$bin ${args[*]} --offline"
else
  start=$(date +%s%N)
  for _ in $(seq 30); do "$bin" "${args[@]}" --offline >/dev/null || true; done
  echo "mean: $(( ($(date +%s%N) - start) / 30000000 )) ms over 30 runs (install hyperfine for more)"
fi
