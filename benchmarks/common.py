"""Helpers shared by the benchmark scripts: load average, Markdown tables, contention note.

A benchmark refuses to measure when the 1-minute load average before it started exceeds the
core count (other processes would be what it times), unless --force is given; then every table
it prints starts with a line that says so.
"""

import json
import logging
import os
import sys

from wespeaker_mfcon.utils.errors import UserError


def _start_load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


START_LOAD = _start_load()       # before this process adds its own load

PAPER_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples", "voxceleb", "v2_mfcon", "conf",
                            "mfa_conformer_mfcon.yaml")   # the paper setting, with MFCon


_UNDER_LOAD = []                 # the banner of a --force run on a busy machine


def add_force_option(parser):
    parser.add_argument("--force", action="store_true",
                        help="measure even when the load average before the run exceeds the "
                             "core count (every table then says so)")


def require_idle(force, load=None):
    """UserError when the machine is busy and not force; with force, mark the tables and
    return the banner ("" on an idle machine)."""
    load = START_LOAD if load is None else load
    cpus = os.cpu_count() or 1
    _UNDER_LOAD.clear()
    if load is None or load <= cpus:
        return ""
    if not force:
        raise UserError(f"load average {load:.2f} > {cpus} CPUs before the run: the timings "
                        "would measure the other processes; wait for an idle machine, or give "
                        "--force to measure anyway (the tables will say so)")
    _UNDER_LOAD[:] = [f"**MEASURED UNDER LOAD** (load average {load:.2f} on {cpus} CPUs "
                      "before the run, --force): these figures are not the code's."]
    return _UNDER_LOAD[0]


def load_avg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def markdown_table(header, rows):
    lines = _UNDER_LOAD + ["| " + " | ".join(header) + " |",
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


def quiet_exporter_logs():
    """The dynamo ONNX exporter logs every pass at INFO: keep its errors only."""
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch.export"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
