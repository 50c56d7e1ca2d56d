"""Per-closure verdicts of one cell from a single `check` of the whole corpus.

Each package's closure is what its node reaches in the cell's graph (`resolve --format json`):
runtime and build edges alike, minus tools the image provides. A closure counts as built when
every one of its wheels was built on both sides; bit-identical when every pair is identical;
identical with verified remedies when every pair is identical or has a remedy `check`
verified by building both sides again with it. A closure that failed names its first failed
wheel (the one whose own build failed, not one skipped behind it) and that build's error.

    python3 verdicts.py CELL RESOLVE.json CHECK.json CHECK.log CORPUS.txt

Prints one line per package, then the cell's counts; writes nothing.
"""

import json
import re
import sys


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def main(cell, resolve_path, check_path, log_path, corpus_path):
    corpus = []
    for line in open(corpus_path):
        line = line.split("#", 1)[0].strip()
        if line:
            corpus.append(norm(line))
    graph = next(c for c in json.load(open(resolve_path))["cells"] if c["id"] == cell)
    nodes = {n["id"]: n for n in graph["nodes"]}
    edges = {}
    for e in graph["edges"]:
        edges.setdefault(e["from"], []).append(e["to"])

    try:
        report = json.load(open(check_path))
    except (OSError, ValueError):
        report = {"pairs": []}
    pairs = {}
    for p in report.get("pairs", []):
        if p["cell"] != cell:
            continue
        name, version = p["wheel"].split("-")[:2]
        pairs[(norm(name), version)] = p

    # The report's `failed` jobs; before it had them, the log's `FAIL  name version  why` lines
    # of the first build's summary and `[cell] second build of FILE failed: why` of the second.
    failed = {}
    for f in report.get("failed", []):
        if f["cell"] == cell:
            name, version = f["job"].split(" ")[:2]
            why = f["error"] if f["side"] == "first" else "second build: " + f["error"]
            failed.setdefault((norm(name), version), why)
    fail = re.compile(r"^\s*FAIL\s+(\S+) (\S+)(?: \(bootstrap stage \d+\))?\s+(.*)$")
    second = re.compile(r"^\[" + re.escape(cell) + r"\] second build of (\S+) failed: (.*)$")
    try:
        log = open(log_path, errors="replace").read().splitlines()
    except OSError:
        log = []
    for line in log:
        m = fail.match(line)
        if m:
            failed.setdefault((norm(m.group(1)), m.group(2)), m.group(3).strip())
            continue
        m = second.match(line)
        if m:
            name, version = m.group(1).split("-")[:2]
            failed.setdefault((norm(name), version), "second build: " + m.group(2).strip())

    def closure(root):
        seen, todo = set(), [root]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            todo.extend(edges.get(n, []))
        return [nodes[n] for n in sorted(seen) if not nodes[n].get("provided")]

    counts = {"built": 0, "identical": 0, "remedied": 0}
    failures = []
    for pkg in corpus:
        roots = [n for n in graph["nodes"] if n["root"] and norm(n["name"]) == pkg]
        if not roots:
            failures.append((pkg, "not in the cell's graph (resolve)"))
            print("%-14s %-20s not resolved" % (cell, pkg))
            continue
        members = closure(roots[0]["id"])
        got = [pairs.get((norm(n["name"]), n["version"])) for n in members]
        missing = [n for n, p in zip(members, got) if p is None]
        if missing:
            # The first wheel that failed on its own, not behind a failed dependency.
            own = [
                (n, failed.get((norm(n["name"]), n["version"]), ""))
                for n in missing
            ]
            cause = next(
                ((n, why) for n, why in own if why and not why.startswith("not built:")),
                own[0],
            )
            why = cause[1] or "no wheel on one side (the run ended before it?)"
            failures.append((pkg, "%s: %s" % (cause[0]["id"], why[:200])))
            print("%-14s %-20s %3d wheels  failed: %s %s" % (cell, pkg, len(members), cause[0]["id"], why[:160]))
            continue
        same = sum(p["verdict"] == "identical" for p in got)
        fixed = sum(
            p["verdict"] != "identical" and (p.get("remedy") or {}).get("verified", False)
            for p in got
        )
        counts["built"] += 1
        if same == len(got):
            counts["identical"] += 1
            verdict = "built, reproducible"
        elif same + fixed == len(got):
            counts["remedied"] += 1
            verdict = "built, reproducible with verified remedies"
        else:
            bad = [p["wheel"] for p in got if p["verdict"] != "identical" and not (p.get("remedy") or {}).get("verified")]
            verdict = "built, NOT reproducible: " + " ".join(bad)
        print("%-14s %-20s %3d wheels  %d identical, +%d remedied  %s" % (cell, pkg, len(got), same, fixed, verdict))

    total = len(corpus)
    built, identical = counts["built"], counts["identical"]
    after = identical + counts["remedied"]
    print(
        "== %s: %d/%d closures built (%d%%), %d/%d bit-identical under check (%d%%), %d/%d with verified remedies (%d%%)"
        % (cell, built, total, 100 * built // total, identical, total, 100 * identical // total, after, total, 100 * after // total)
    )
    wheels = [p for p in report.get("pairs", []) if p["cell"] == cell]
    same = sum(p["verdict"] == "identical" for p in wheels)
    fixed = sum(p["verdict"] != "identical" and (p.get("remedy") or {}).get("verified", False) for p in wheels)
    print("   wheels: %d pairs, %d identical, %d more with verified remedies" % (len(wheels), same, fixed))
    for pkg, why in failures:
        print("   - %s: %s" % (pkg, why))


if __name__ == "__main__":
    main(*sys.argv[1:6])
