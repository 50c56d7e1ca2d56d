#!/usr/bin/env bash
# `rewheel compare` of two folders of 1,000 wheels (about 1 GB each), against
# `openssl dgst -sha256` on the same files, and the explanation of one differing pair against
# diffoscope (Debian's diffoscope-minimal) on the same pair.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/rewheel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=${N:-1000}
python3 - "$work" "$n" <<'PY'
import os, random, sys, zipfile
work, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for side in ("a", "b"):
    os.makedirs(os.path.join(work, side, "cp311"), exist_ok=True)
for i in range(n):
    # ~1 MB of incompressible data per wheel, stored, plus a small module.
    blob = rng.randbytes(1 << 20)
    for side in ("a", "b"):
        path = os.path.join(work, side, "cp311", f"pkg{i}-1.0-py3-none-any.whl")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(zipfile.ZipInfo(f"pkg{i}/data.bin", (1980, 1, 1, 0, 0, 0)), blob)
            text = f"VALUE = {i}\n" if side == "a" or i != 0 else "VALUE = 'changed'\n"
            z.writestr(zipfile.ZipInfo(f"pkg{i}/__init__.py", (1980, 1, 1, 0, 0, 0)), text)
PY
du -sh "$work/a" "$work/b" | sed 's/^/size: /'
now() { date +%s.%N; }
sync
t0=$(now); "$bin" compare "$work/a" "$work/b" > "$work/out.txt" || true; t1=$(now)
find "$work/a" "$work/b" -name '*.whl' -print0 | xargs -0 -n 200 openssl dgst -sha256 > /dev/null; t2=$(now)
find "$work/a" "$work/b" -name '*.whl' -print0 | xargs -0 -n 200 -P "$(nproc)" openssl dgst -sha256 > /dev/null; t3=$(now)
ours=$(echo "$t1 - $t0" | bc -l); ossl=$(echo "$t2 - $t1" | bc -l); osslp=$(echo "$t3 - $t2" | bc -l)
printf 'rewheel compare (all cores, hashing + one entry-level diff): %.2f s\n' "$ours"
printf 'openssl dgst -sha256, one process at a time:               %.2f s\n' "$ossl"
printf 'openssl dgst -sha256, %d processes:                          %.2f s\n' "$(nproc)" "$osslp"
printf 'ratio openssl(all cores) / rewheel: %.2f\n' "$(echo "$osslp / $ours" | bc -l)"
grep -c "identical" "$work/out.txt" | sed 's/^/identical pairs reported: /'
if command -v diffoscope >/dev/null; then
  a="$work/a/cp311/pkg0-1.0-py3-none-any.whl"; b="$work/b/cp311/pkg0-1.0-py3-none-any.whl"
  t4=$(now); "$bin" compare "$a" "$b" > "$work/one.txt" || true; t5=$(now)
  diffoscope "$a" "$b" > "$work/diffoscope.txt" || true; t6=$(now)
  r=$(echo "$t5 - $t4" | bc -l); d=$(echo "$t6 - $t5" | bc -l)
  printf 'explain one differing pair: rewheel %.3f s, diffoscope %.3f s, ratio %.1fx\n' "$r" "$d" "$(echo "$d / $r" | bc -l)"
  grep -q "pkg0/__init__.py" "$work/one.txt" && echo "rewheel names the changed entry pkg0/__init__.py"
  grep -q "__init__.py" "$work/diffoscope.txt" && echo "diffoscope names the changed entry pkg0/__init__.py"
fi
