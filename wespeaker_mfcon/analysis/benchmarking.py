"""What the speed benchmarks (benchmarks/*.py) share: the machine they ran on, the refusal to
time a busy machine, interleaved timing, and the JSON record the docs tables are rendered from.

A benchmark measures only when the 1-minute load average before it started is at most the
core count (else the timings would be those of the other processes), unless --force is given;
then its record says so, and so does every table rendered from it (analysis/speed_tables.py).

    record = start("bench_x", "bench_x.py", argv, args.force)   # host, command, load before
    record.update(figures)
    print(render_x(finish(record, args.json, threads=[1])))     # load after; JSON if asked
"""

import json
import logging
import os
import platform
import sys
import time

import numpy as np

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write


def _load():
    try:
        return os.getloadavg()
    except OSError:
        return None


START_LOAD = _load()             # before this process adds its own load


def load_avg():
    """'1-min 5-min 15-min' load averages now ('n/a' where the OS has none)."""
    load = _load()
    return "n/a" if load is None else "%.2f %.2f %.2f" % load


def add_bench_options(parser):
    parser.add_argument("--json", help="write the figures here (the docs render them)")
    parser.add_argument("--force", action="store_true",
                        help="measure even when the load average before the run exceeds the "
                             "core count (the record and its tables then say so)")


def require_idle(force, load=None):
    """'' on an idle machine; the under-load banner with force; else UserError."""
    load = START_LOAD[0] if load is None and START_LOAD else load
    cpus = os.cpu_count() or 1
    if load is None or load <= cpus:
        return ""
    if not force:
        raise UserError(f"load average {load:.2f} > {cpus} CPUs before the run: the timings "
                        "would measure the other processes; wait for an idle machine, or give "
                        "--force to measure anyway (the tables will say so)")
    return (f"**MEASURED UNDER LOAD** (load average {load:.2f} on {cpus} CPUs before the run, "
            "--force): these figures are not the code's.")


def cpu_model():
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host():
    """'CPU model, N cores, OS arch; torch X' of this process."""
    libs = [f"{name} {sys.modules[name].__version__}" for name in ("torch", "onnxruntime")
            if name in sys.modules]
    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
            f"{platform.machine()}" + (f"; {', '.join(libs)}" if libs else ""))


def command_line(script, argv):
    """The command that ran benchmarks/<script>, with the OpenMP settings that change it."""
    cmd = " ".join([os.path.basename(sys.executable), f"benchmarks/{script}"] +
                   (argv if argv is not None else sys.argv[1:]))
    for var in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            cmd = f"{var}={os.environ[var]} {cmd}"
    return cmd


def start(name, script, argv, force, timed=True):
    """The record of a benchmark run: name, command, load before; a timed run checks the
    machine first (require_idle)."""
    banner = require_idle(force) if timed else ""
    return {"benchmark": name, "command": command_line(script, argv),
            "load_before": "n/a" if START_LOAD is None else "%.2f %.2f %.2f" % START_LOAD,
            "under_load": banner, "timed": timed}


def finish(record, json_path, threads=(1,)):
    """Complete the record (host, load after, the contention note when other processes shared
    the cores during a timed run) and write it to json_path if given. Returns the record."""
    record.update(host=host(), load_after=load_avg(),
                  note=contention_note(threads, START_LOAD and START_LOAD[0])
                  if record["timed"] else "")
    if json_path:
        with atomic_write(json_path) as f:
            json.dump(record, f, indent=1)
            f.write("\n")
    return record


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


def interleaved(runs, repeats):
    """One warm-up call of each run, then `repeats` rounds calling every run in turn (so that
    drifting machine load hits them alike). Returns per run (wall ms list, CPU ms list of the
    calling thread: with one compute thread, the time minus the waits for a core)."""
    for run in runs:
        run()
    wall, cpu = [[] for _ in runs], [[] for _ in runs]
    for _ in range(repeats):
        for run, w, c in zip(runs, wall, cpu):
            w0, c0 = time.perf_counter(), time.thread_time()
            run()
            w.append((time.perf_counter() - w0) * 1000.0)
            c.append((time.thread_time() - c0) * 1000.0)
    return list(zip(wall, cpu))


def noise_fbank(seconds, feat_dim=80, seed=0):
    """(1, T, F) float32 fbank of `seconds` of white noise (int16 scale), as Fbank computes it
    (at the default sample rate)."""
    import torch

    from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS, Fbank

    rng = np.random.default_rng(seed)
    samples = int(seconds * FBANK_DEFAULTS["sample_rate"])
    wave = torch.from_numpy((rng.standard_normal(samples) * 3000.0).astype(np.float32))
    with torch.inference_mode():
        feats = Fbank(num_mel_bins=feat_dim).eval()(wave)[None]
    return np.ascontiguousarray(feats.numpy())


def random_embedding_net(conf, seed=0):
    """The deployable network (EmbeddingNet, eval mode) of a config with random weights and
    non-trivial BatchNorm running statistics, so that eval-mode BatchNorm is not an identity."""
    import torch

    from wespeaker_mfcon.models import build_model
    from wespeaker_mfcon.models.embedding_net import EmbeddingNet

    torch.manual_seed(seed)
    model = build_model(conf.model, conf.model_args)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0.0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
    return EmbeddingNet(model).eval()


def quiet_exporter_logs():
    """The dynamo ONNX exporter logs every pass at INFO: keep its errors only."""
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch.export"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
