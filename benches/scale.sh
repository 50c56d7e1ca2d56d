#!/usr/bin/env bash
# How rewheel's cost grows with the size of the work (issue 25). For each N in NS (default
# "100 1000 5000"): a generated find-links folder of N tiny sdists with an in-tree backend and a
# DAG of install and build edges (benches/scale/make_index.py), resolved cold and warm, planned,
# and built on the local backend in CELLS cells (default 1; the host's interpreters, e.g.
# CELLS="3.11 3.12 3.13 3.10" for 4). Prints per N: resolve cold/warm, plan, build wall against
# its bound (max of total job time / cores and the critical path of job times), harness overhead
# per job ((wall - total job time / cores) / jobs), peak RSS, store size; then `runs list` and
# `runs show` on a store grown to ROWS (default 100000) job rows.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${REWHEEL:-}" ]; then cargo build --release --quiet; fi
bin=${REWHEEL:-$PWD/target/release/rewheel}
ns=${NS:-100 1000 5000}
cells=${CELLS:-3.11}
cores=$(nproc)
rows=${ROWS:-100000}
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
pythons=()
for v in $cells; do pythons+=(--python "$v"); done

# Wall seconds and peak RSS (KiB) of a command, its output kept in $work/last.log.
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/last.log" 2>&1 || { tail -20 "$work/last.log"; exit 1; }
  cat "$work/time"
}

printf '%-6s %-5s %9s %9s %8s %9s %9s %8s %12s %9s %9s\n' N cells "res.cold" "res.warm" plan "build" bound ratio "ovh/job(ms)" "RSS(MiB)" "store(MB)"
for n in $ns; do
  idx="$work/idx-$n"; mkdir -p "$idx"
  python3 benches/scale/make_index.py "$n" "$idx"
  common=(-r "$idx/requirements.txt" "${pythons[@]}" --no-index --find-links "$idx" --cache-dir "$work/cache-$n")
  read -r cold _ < <(measure "$bin" resolve "${common[@]}")
  read -r warm _ < <(measure "$bin" resolve "${common[@]}")
  "$bin" resolve "${common[@]}" --format json >"$work/graph-$n.json"
  read -r plan _ < <(measure "$bin" plan "${common[@]}" --backend local --out "$work/plan-$n")
  read -r wall rss < <(measure "$bin" build "${common[@]}" --backend local -j "$cores" \
    --store "$work/store-$n" --out "$work/wheels-$n" --build-path "$work/build-$n")
  run=$("$bin" runs list --store "$work/store-$n" | awk '{id=$1} END {print id}')
  "$bin" runs show "$run" --json --store "$work/store-$n" >"$work/run-$n.json"
  read -r bound jobs total < <(python3 - "$work/run-$n.json" "$work/graph-$n.json" "$cores" <<'PY'
import json, sys
run = json.load(open(sys.argv[1])); graph = json.load(open(sys.argv[2])); cores = int(sys.argv[3])
secs = {(j["cell"], j["name"]): j["seconds"] for j in run["jobs"]}
total = sum(secs.values())
critical = 0.0
# A job starts once its build environment is built: its build requirements and their
# run-time closure (install edges). The critical path is the longest chain of such waits.
for cell in graph["cells"]:
    cid = cell["id"]
    build, install = {}, {}
    for e in cell["edges"]:
        src, dst = e["from"].split("==")[0], e["to"].split("==")[0]
        (install if e["kind"] == "install" else build).setdefault(src, set()).add(dst)
    def env(name):
        seen, todo = set(), list(build.get(name, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n); todo.extend(install.get(n, ()))
        return seen
    finish = {}
    def done(name):
        if name not in finish:
            finish[name] = 0.0  # a cycle (bootstrap) counts once
            finish[name] = secs.get((cid, name), 0.0) + max((done(d) for d in env(name)), default=0.0)
        return finish[name]
    sys.setrecursionlimit(100000)
    critical = max([critical] + [done(n) for (c, n) in secs if c == cid])
print("%.2f %d %.2f" % (max(total / cores, critical), len(run["jobs"]), total))
PY
)
  store=$(du -sm "$work/store-$n" | cut -f1)
  python3 - "$n" "${#pythons[@]}" "$cold" "$warm" "$plan" "$wall" "$bound" "$jobs" "$total" "$cores" "$rss" "$store" <<'PY'
import sys
n, c, cold, warm, plan, wall, bound, jobs, total, cores, rss, store = sys.argv[1:]
c = int(c) // 2; wall = float(wall); bound = float(bound); jobs = int(jobs); total = float(total)
ovh = (wall - total / int(cores)) / max(jobs, 1) * 1000
print("%-6s %-5s %9s %9s %8s %9.2f %9.2f %8.2f %12.1f %9.0f %9s" % (n, c, cold, warm, plan, wall, bound, wall / max(bound, 1e-9), ovh, int(rss) / 1024, store))
PY
done

# The store at ROWS job rows: copies of the last run's rows under new run ids.
last=$(echo $ns | awk '{print $NF}')
python3 - "$work/store-$last/runs.sqlite3" "$rows" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); want = int(sys.argv[2])
(have,) = db.execute("select count(*) from jobs").fetchone()
(run,) = db.execute("select id from runs order by id desc limit 1").fetchone()
columns = [row[1] for row in db.execute("pragma table_info(jobs)")]
i = 0
while have < want:
    i += 1; new = "%s-copy%05d" % (run, i)
    db.execute("insert into runs select ?, started, finished, status, argv from runs where id = ?", (new, run))
    rest = ", ".join(c for c in columns if c != "run_id")
    db.execute("insert into jobs (run_id, %s) select ?, %s from jobs where run_id = ?" % (rest, rest), (new, run))
    (have,) = db.execute("select count(*) from jobs").fetchone()
db.commit(); print("store: %d job rows in %d runs" % (have, db.execute("select count(*) from runs").fetchone()[0]))
PY
run=$("$bin" runs list --store "$work/store-$last" | awk '{id=$1} END {print id}')
read -r list _ < <(measure "$bin" runs list --store "$work/store-$last")
read -r show _ < <(measure "$bin" runs show "$run" --store "$work/store-$last")
echo "runs list: ${list} s; runs show (one run of $last jobs): ${show} s"
