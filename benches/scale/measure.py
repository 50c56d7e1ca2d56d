#!/usr/bin/env python3
"""Run a command; print its wall seconds, peak RSS in KiB and the CPU seconds of the process
itself (all its threads, none of its children), for benches/scale.sh. Its output goes to the
file named first. The process's own CPU is read from /proc while it is a zombie, after it
ended and before it is reaped: it says what the harness cost whatever else the host runs,
while wall time on a shared host does not."""
import os
import subprocess
import sys
import time


def main():
    log, argv = sys.argv[1], sys.argv[2:]
    with open(log, "wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - start
        with open("/proc/%d/stat" % child.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime, the 14th and 15th fields, counted from after the command name.
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write("%s: exit %d\n" % (" ".join(argv), code))
        sys.exit(1)
    print("%.3f %d %.3f" % (wall, usage.ru_maxrss, own))


if __name__ == "__main__":
    main()
