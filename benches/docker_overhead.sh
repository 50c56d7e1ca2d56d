#!/usr/bin/env bash
# Per-job overhead of the docker backend: N trivial packages (an in-tree backend that writes a
# tiny wheel), built one at a time in their own containers, against N × `docker run --rm IMAGE true`
# on the same engine. Needs `rewheel images build bookworm`.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-20}
cargo build --release --quiet
bin=$PWD/target/release/rewheel
image=$("$bin" images list | awk '$1 == "bookworm" { print $2 }')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$n" <<'PY'
import io, os, sys, tarfile
work, n = sys.argv[1], int(sys.argv[2])
backend = '''
import os, zipfile
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = open("NAME").read().strip()
    filename = f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        z.writestr(f"{name}.py", "")
    return filename
'''
lock = []
for i in range(n):
    name = f"empty{i}"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "b"\nbackend-path = ["."]\n',
        "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: 1.0\n",
        "b.py": backend, "NAME": name,
    }
    with tarfile.open(os.path.join(work, f"{name}-1.0.tar.gz"), "w:gz") as t:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{path}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    lock.append(f"{name}==1.0")
open(os.path.join(work, "lock.txt"), "w").write("\n".join(lock) + "\n")
open(os.path.join(work, "m.toml"), "w").write('[cells.cp311-bookworm]\npython = "3.11.2"\nimage = "bookworm"\n')
PY
now() { date +%s.%N; }
t0=$(now)
"$bin" build -r "$work/lock.txt" --matrix "$work/m.toml" --backend docker -j 1 --no-index \
  --find-links "$work" --cache-dir "$work/c" --store "$work/s" --out "$work/w" --build-path "$work/b" >/dev/null 2>&1
t1=$(now)
for _ in $(seq "$n"); do docker run --rm --network none "$image" true; done
t2=$(now)
rw=$(echo "($t1 - $t0) / $n" | bc -l); dr=$(echo "($t2 - $t1) / $n" | bc -l)
printf 'rewheel docker job (create, start, python frontend, wheel, logs, remove): %.3f s per job\n' "$rw"
printf 'docker run --rm IMAGE true:                                        %.3f s per run\n' "$dr"
printf 'ratio rewheel / docker run: %.2f\n' "$(echo "$rw / $dr" | bc -l)"
