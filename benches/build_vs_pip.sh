#!/usr/bin/env bash
# Whole-closure from-source build of benches/lock-15.txt on one interpreter:
#   rewheel build --backend local   vs   pip wheel --no-binary :all: -r LOCK
# Both start cold (empty caches) and both set SOURCE_DATE_EPOCH, so that wheels can be
# compared byte for byte afterwards. Prints the times, the ratio, and which wheels match.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-$(python3.11 -c 'import sys; print(sys.executable)')}
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
lock=benches/lock-15.txt
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
# Built before SOURCE_DATE_EPOCH is set: a dependency's build script watches it, so cargo
# would rebuild the release binary with it set and again without.
cargo build --release --quiet
export SOURCE_DATE_EPOCH=1700000000
bin=target/release/rewheel

now() { date +%s.%N; }

t0=$(now)
"$bin" build -r "$lock" --python "$version" --python-path "$py" --backend local \
  --source-date-epoch "$SOURCE_DATE_EPOCH" --cache-dir "$work/rw-cache" --store "$work/rw-store" \
  --out "$work/rw" --build-path "$work/rw-build" >"$work/rw.log" 2>&1 || { tail -30 "$work/rw.log"; exit 1; }
t1=$(now)
# pip's build subprocess writes to ~/.cache/pip whatever --cache-dir says: a fresh
# PIP_CACHE_DIR keeps every pip run after the first on this machine from being warm.
PIP_CACHE_DIR="$work/pip-cache" "$py" -m pip wheel --no-binary :all: -r "$lock" -w "$work/pip" --cache-dir "$work/pip-cache" \
  --disable-pip-version-check -q >"$work/pip.log" 2>&1 || { tail -30 "$work/pip.log"; exit 1; }
t2=$(now)
t3=$(now)
"$bin" build -r "$lock" --python "$version" --python-path "$py" --backend local \
  --source-date-epoch "$SOURCE_DATE_EPOCH" --cache-dir "$work/rw-cache" --store "$work/rw-store2" \
  --out "$work/rw2" --build-path "$work/rw-build" --rebuild >"$work/rw2.log" 2>&1
t4=$(now)

rw=$(echo "$t1 - $t0" | bc); pip=$(echo "$t2 - $t1" | bc); warm=$(echo "$t4 - $t3" | bc)
jobs=$(grep -c "^  ok " "$work/rw.log" || true)
echo "rewheel (cold cache): ${rw} s, ${jobs} jobs (the lock and its whole build closure, each built once)"
echo "pip wheel --no-binary :all: (cold cache): ${pip} s"
echo "rewheel (warm download cache, everything rebuilt): ${warm} s"
echo "ratio pip / rewheel: cold $(echo "scale=1; $pip / $rw" | bc)x, warm $(echo "scale=1; $pip / $warm" | bc)x"

same=0; differ=0
cell=$(ls "$work/rw")
for wheel in "$work"/pip/*.whl; do
  name=$(basename "$wheel")
  ours="$work/rw/$cell/$name"
  if [ ! -f "$ours" ]; then echo "  only pip built $name"; continue; fi
  if cmp -s "$wheel" "$ours"; then same=$((same + 1)); else differ=$((differ + 1)); echo "  differs: $name"; fi
done
echo "wheels identical to pip's: $same, different: $differ"
