"""Helpers shared by the benchmark scripts: load average, Markdown tables, contention note."""

import json
import os
import sys


def _start_load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


START_LOAD = _start_load()       # before this process adds its own load


def load_avg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def contention_note(threads, load):
    """A warning line when other processes kept the cores busy (load: 1-min load average
    taken before this benchmark started, so that it counts only other processes)."""
    if load is None:
        return ""
    cpus = os.cpu_count() or 1
    if load + max(threads) - 1 <= cpus * 0.75:
        return ""
    return (f"NOTE: load average {load:.2f} on {cpus} CPUs at the start: other processes "
            "share the cores, so timings are inflated and noisy; with more than one thread "
            "per process, each parallel region also waits for whichever of its threads was "
            "descheduled, so multi-thread timings here mostly measure contention (PyTorch's "
            "OpenMP threads spin while they wait; OMP_WAIT_POLICY=PASSIVE in the environment "
            "avoids the worst of it).")


def command_line(script, argv):
    """The command that ran this benchmark, with the OpenMP settings that change its numbers."""
    cmd = " ".join([os.path.basename(sys.executable), f"benchmarks/{script}"] +
                   (argv if argv is not None else sys.argv[1:]))
    for var in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            cmd = f"{var}={os.environ[var]} {cmd}"
    return cmd


def finish_report(threads, cmd, json_path, payload):
    """Print the contention note (if any) and the command; write payload as JSON if asked."""
    note = contention_note(threads, START_LOAD)
    if note:
        print(note)
        print()
    print(f"command: {cmd}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
