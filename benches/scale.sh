#!/usr/bin/env bash
# How rewheel's cost grows with the size of the work (issue 25).
#
#   benches/scale.sh                          # N = 100 1000 5000, in 1 and 4 cells
#   NS="100 1000" benches/scale.sh            # the quick run (about 10 minutes on 2 cores)
#   REWHEEL=target/release/rewheel NS=5000 CELLS=1 benches/scale.sh
#
# For each N in NS: a generated find-links folder of N tiny sdists with an in-tree backend and
# a DAG of install and build edges (benches/scale/make_index.py), resolved cold and warm,
# planned, and built on the local backend in each count of cells in CELLS (default "1 4"; the
# cells are the first of PYTHONS, default "3.11 3.12 3.13 3.10", interpreters of this host).
# Then `runs list` and `runs show` on a copy of the largest store grown to ROWS (default
# 100000) job rows. The table ends with the goals of issue 25, each PASS or MISS:
#
#   overhead     harness overhead per job, (wall - total job time / cores) / jobs: <= 5 ms
#                (cpu/job beside it is the CPU rewheel's own process spent per job, its jobs'
#                processes not counted: on a busy host, where wall times stretch, it still
#                says what the harness costs)
#   bound        build wall against max(total job time / cores, critical path): <= 1.05
#   warm         warm resolve of 5,000 nodes (N=5000, 1 cell): < 1 s
#   rss          peak RSS of the build of 5,000 jobs (N=5000, 1 cell): < 200 MB
#   list         `runs list` with ROWS job rows: < 100 ms
#   linear       each figure grows at most linearly with N: what each N more costs between
#                the two largest N is at most what it cost between the two smallest (25% and
#                a little absolute slack for noise); overhead per job stays flat
#
# The build's wall time includes its resolve and plan, as a user waits for them. Needs
# bubblewrap (the local backend's sandbox) and python3. Nothing is written outside a
# temporary folder (KEEP=1 keeps and names it). N=5000 in 1 cell adds about 10 minutes,
# in 4 cells about 40 (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${REWHEEL:-}" ]; then cargo build --release --quiet; fi
bin=${REWHEEL:-$PWD/target/release/rewheel}
ns=${NS:-100 1000 5000}
counts=${CELLS:-1 4}
read -r -a pythons_all <<<"${PYTHONS:-3.11 3.12 3.13 3.10}"
cores=$(nproc)
rows=${ROWS:-100000}
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
began=$EPOCHREALTIME

# Seconds, peak RSS (KiB) and rewheel's own CPU seconds of a command into $work/measured
# (read back with `read`), its output kept in $work/last.log. Not in a subshell: a failing
# command ends the benchmark.
measure() {
  python3 benches/scale/measure.py "$work/last.log" "$@" >"$work/measured" || { tail -20 "$work/last.log"; exit 1; }
}

for n in $ns; do
  idx="$work/idx-$n"; mkdir -p "$idx"
  python3 benches/scale/make_index.py "$n" "$idx"
  # A file changed less than 2 s before it is read is read again next time (its times may not
  # have moved yet): a folder is not resolved the moment it is written.
  sleep 2
  for c in $counts; do
    tag="$n-$c"
    pythons=()
    for v in "${pythons_all[@]:0:$c}"; do pythons+=(--python "$v"); done
    common=(-r "$idx/requirements.txt" "${pythons[@]}" --no-index --find-links "$idx" --cache-dir "$work/cache-$tag")
    measure "$bin" resolve "${common[@]}"; read -r cold _ <"$work/measured"
    measure "$bin" resolve "${common[@]}"; read -r warm _ <"$work/measured"
    "$bin" resolve "${common[@]}" --format json >"$work/graph-$tag.json"
    measure "$bin" build "${common[@]}" --backend local -j "$cores" \
      --store "$work/store-$tag" --out "$work/wheels-$tag" --build-path "$work/build-$tag"
    read -r wall rss cpu <"$work/measured"
    # After the build, whose jobs told every hook's answer: a plan then asks none (before it,
    # `plan` would build the closure to ask them, which is the build's cost again).
    measure "$bin" plan "${common[@]}" --backend local --store "$work/store-$tag"
    read -r plan _ <"$work/measured"
    run=$("$bin" runs list --store "$work/store-$tag" | awk '{id=$1} END {print id}')
    "$bin" runs show "$run" --json --store "$work/store-$tag" >"$work/run-$tag.json"
    store=$(du -sk "$work/store-$tag" | cut -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$c" "$cold" "$warm" "$plan" "$wall" "$rss" "$cpu" \
      "$store" "$work/run-$tag.json" "$work/graph-$tag.json" >>"$results"
    echo "N=$n cells=$c: built in ${wall} s" >&2
  done
done

# The store at ROWS job rows: a copy of the largest store, its last run's rows copied under
# new run ids (their blobs shared, as reused jobs' are).
last=$(tail -1 "$results" | cut -f1,2 | tr '\t' -)
cp -r "$work/store-$last" "$work/store-big"
python3 - "$work/store-big/runs.sqlite3" "$rows" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); want = int(sys.argv[2])
(have,) = db.execute("select count(*) from jobs").fetchone()
(run,) = db.execute("select id from runs order by id desc limit 1").fetchone()
columns = [row[1] for row in db.execute("pragma table_info(jobs)")]
rest = ", ".join(c for c in columns if c != "run_id")
run_rest = ", ".join(row[1] for row in db.execute("pragma table_info(runs)") if row[1] != "id")
i = 0
while have < want:
    i += 1; new = "%s-%d" % (run.split("-")[0] + "-" + run.split("-")[1], 100000 + i)
    db.execute("insert into runs (id, %s) select ?, %s from runs where id = ?" % (run_rest, run_rest), (new, run))
    db.execute("insert into jobs (run_id, %s) select ?, %s from jobs where run_id = ?" % (rest, rest), (new, run))
    (have,) = db.execute("select count(*) from jobs").fetchone()
db.commit()
print("store: %d job rows in %d runs" % (have, db.execute("select count(*) from runs").fetchone()[0]), file=sys.stderr)
PY
run=$("$bin" runs list --store "$work/store-big" | awk '{id=$1} END {print id}')
# The best of three, the store opened once before (its indexes made, as on a new version's
# first use, by the `runs list` above).
best() {
  local b=inf t
  for _ in 1 2 3; do
    measure "$@"; read -r t _ <"$work/measured"
    b=$(python3 -c "print(min($t, float('$b')))")
  done
  echo "$b" >"$work/best"
}
best "$bin" runs list --store "$work/store-big"; list=$(cat "$work/best")
best "$bin" runs show "$run" --store "$work/store-big"; show=$(cat "$work/best")

python3 - "$results" "$cores" "$rows" "$list" "$show" "$began" "$EPOCHREALTIME" <<'PY'
import json, sys
results, cores, rows, list_s, show_s, began, ended = sys.argv[1:]
cores = int(cores)


def bound_of(run_path, graph_path):
    run = json.load(open(run_path)); graph = json.load(open(graph_path))
    secs = {(j["cell"], j["name"]): j["seconds"] for j in run["jobs"]}
    total = sum(secs.values())
    critical = 0.0
    sys.setrecursionlimit(100000)
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

        critical = max([critical] + [done(n) for (c, n) in secs if c == cid])
    return max(total / cores, critical), len(run["jobs"]), total


rows_out = []
for line in open(results):
    n, c, cold, warm, plan, wall, rss, cpu, store, run_path, graph_path = line.rstrip("\n").split("\t")
    bound, jobs, total = bound_of(run_path, graph_path)
    wall = float(wall)
    rows_out.append(dict(
        n=int(n), c=int(c), cold=float(cold), warm=float(warm), plan=float(plan), wall=wall,
        bound=bound, ratio=wall / max(bound, 1e-9), jobs=jobs,
        ovh=(wall - total / cores) / max(jobs, 1) * 1000, cpu=float(cpu) / max(jobs, 1) * 1000,
        rss=int(rss) / 1024, store=int(store) / 1024))

print()
print("%-6s %-5s %6s %9s %9s %8s %9s %9s %7s %12s %12s %9s %10s" % (
    "N", "cells", "jobs", "res.cold", "res.warm", "plan", "build", "bound", "ratio", "ovh/job(ms)",
    "cpu/job(ms)", "RSS(MiB)", "store(MiB)"))
for r in rows_out:
    print("%-6d %-5d %6d %9.2f %9.2f %8.2f %9.2f %9.2f %7.3f %12.2f %12.2f %9.0f %10.1f" % (
        r["n"], r["c"], r["jobs"], r["cold"], r["warm"], r["plan"], r["wall"], r["bound"], r["ratio"],
        r["ovh"], r["cpu"], r["rss"], r["store"]))
print("runs list (%s job rows): %.3f s; runs show (one run): %.3f s" % (rows, float(list_s), float(show_s)))
print()

goals = []


def goal(name, ok, detail):
    goals.append((name, ok, detail))


for r in rows_out:
    where = "N=%d, %d cell%s" % (r["n"], r["c"], "" if r["c"] == 1 else "s")
    goal("overhead <= 5 ms/job", r["ovh"] <= 5.0, "%s: %.2f ms" % (where, r["ovh"]))
    goal("wall <= 1.05 x bound", r["ratio"] <= 1.05, "%s: %.3f" % (where, r["ratio"]))
for r in rows_out:
    if r["n"] == 5000 and r["c"] == 1:
        goal("warm resolve of 5,000 nodes < 1 s", r["warm"] < 1.0, "%.2f s" % r["warm"])
        goal("peak RSS at 5,000 jobs < 200 MB", r["rss"] * 1.048576 < 200, "%.0f MiB" % r["rss"])
goal("runs list at %s rows < 100 ms" % rows, float(list_s) < 0.1, "%.0f ms" % (float(list_s) * 1000))
# Linear growth: the cost of each N more (the slope between the two largest N) is at most
# the slope between the two smallest, with 25% and a little absolute slack for noise; with two
# N only, the figure grows at most by N's ratio. Overhead per job must stay flat.
slack = dict(cold=0.2, warm=0.2, plan=0.2, wall=1.0, rss=8.0, store=1.0)
units = dict(cold="s", warm="s", plan="s", wall="s", rss="MiB", store="MiB")
for c in sorted({r["c"] for r in rows_out}):
    series = sorted((r for r in rows_out if r["c"] == c), key=lambda r: r["n"])
    if len(series) < 2:
        continue
    a, b = series[0], series[-1]
    for key in ("cold", "warm", "plan", "wall", "rss", "store"):
        if len(series) >= 3:
            p, q = series[-2], series[-1]
            before = (series[1][key] - a[key]) / (series[1]["n"] - a["n"])
            after = (q[key] - p[key]) / (q["n"] - p["n"])
            ok = after <= before * 1.25 + slack[key] / (q["n"] - p["n"])
        else:
            ok = b[key] <= a[key] * (b["n"] / a["n"]) * 1.25 + slack[key]
        goal("linear: %s" % key, ok, "%d cell(s): %s %s" % (
            c, " -> ".join("%.2f" % r[key] for r in series), units[key]))
    for key in ("ovh", "cpu"):
        ok = b[key] <= a[key] * 1.25 + 0.5
        goal("linear: %s per job" % dict(ovh="overhead", cpu="harness CPU")[key], ok, "%d cell(s): %s ms" % (
            c, " -> ".join("%.2f" % r[key] for r in series)))
width = max(len(g[0]) for g in goals)
for name, ok, detail in goals:
    print("%-*s  %-4s  %s" % (width, name, "PASS" if ok else "MISS", detail))
print("\nthe benchmark took %.0f s" % (float(ended) - float(began)))
PY
