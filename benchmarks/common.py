"""Helpers shared by the benchmark scripts: load average, Markdown tables, contention note."""

import os


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
