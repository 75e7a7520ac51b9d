"""Per-operator profile of ONNX embedding models: where ONNX Runtime spends the time.

    python benchmarks/profile_onnx.py exp/E/models/avg_model.onnx exp/E/models/avg_model_int8.onnx
        [--seconds 10] [--threads 1] [--runs 5] [--json OUT]

For each model: a session as inference.Embedder makes it (CPUExecutionProvider, intra-op
threads N, inter-op 1, default graph optimizations) with ORT's profiler on; one warm-up run
(not counted), then --runs runs on the fbank of --seconds of noise (batch 1). The kernel times
of the profiled runs ("*_kernel_time" events, i.e. the nodes ORT actually runs after its
fusions, such as MatMulIntegerToFloat) are summed per operator type and divided by the runs:
ms per utterance, share of the kernel total, and node count. Float MatMuls are split into
those with a constant weight (linear layers) and activation x activation ones (attention).
The models are printed side by side, one column triple per file.
"""

import argparse
import collections
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import (add_force_option, command_line, finish_report, load_avg,  # noqa: E402
                               markdown_table, require_idle)
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402
from wespeaker_mfcon.utils.errors import UserError  # noqa: E402

SAMPLE_RATE = 16000


def noise_fbank(seconds, feat_dim=80, seed=0):
    """(1, T, F) float32 fbank of `seconds` of white noise (int16 scale), as Fbank computes it."""
    import torch

    from wespeaker_mfcon.frontend.fbank import Fbank

    rng = np.random.default_rng(seed)
    wave = torch.from_numpy((rng.standard_normal(int(seconds * SAMPLE_RATE)) * 3000.0)
                            .astype(np.float32))
    with torch.inference_mode():
        feats = Fbank(num_mel_bins=feat_dim).eval()(wave)[None]
    return np.ascontiguousarray(feats.numpy())


def op_profile(path, feats, threads=1, runs=5):
    """{op type: (ms per run, nodes)} of the kernels ORT runs for `path` on `feats`."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort_profile_") as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            session.run(["embs"], {"feats": feats})
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    # the first run (one-off allocations) is the warm-up: count only nodes after it ended
    first = min((ev for ev in events if ev.get("name") == "model_run"), key=lambda ev: ev["ts"])
    weight_matmuls = _weight_matmuls(path)
    total, nodes = collections.Counter(), collections.defaultdict(set)
    for ev in events:
        if (ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time")
                and ev["ts"] > first["ts"] + first["dur"]):
            op = ev["args"]["op_name"]
            if op == "MatMul":
                weights = ev["name"][:-len("_kernel_time")] in weight_matmuls
                op = "MatMul (weights)" if weights else "MatMul (activations)"
            total[op] += ev["dur"]
            nodes[op].add(ev["name"])
    return {op: (us / 1000.0 / runs, len(nodes[op])) for op, us in total.items()}


def _weight_matmuls(path):
    """Names of the MatMul nodes whose B is an initializer (a layer's weight)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return {n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights}


def profile_table(names, profiles, top=20):
    """Markdown rows: op type, then per model ms / share / nodes; a total row at the end."""
    totals = [sum(ms for ms, _ in p.values()) for p in profiles]
    ops = sorted({op for p in profiles for op in p},
                 key=lambda op: -max(p.get(op, (0, 0))[0] for p in profiles))
    header = ["op type"] + [f"{n} {col}" for n in names for col in ("ms", "%", "nodes")]
    rows = []
    for op in ops[:top]:
        row = [op]
        for p, tot in zip(profiles, totals):
            ms, count = p.get(op, (0.0, 0))
            row += [f"{ms:.1f}", f"{100 * ms / tot:.1f}", count] if count else ["-", "-", "-"]
        rows.append(row)
    rest = [sum(ms for op, (ms, _) in p.items() if op not in ops[:top]) for p in profiles]
    rows.append(["(other ops)"] + [c for r in rest for c in (f"{r:.1f}", "", "")])
    rows.append(["**total**"] + [c for t in totals for c in (f"**{t:.1f}**", "100", "")])
    return markdown_table(header, rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help=".onnx files (input feats, output embs)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance duration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=5, help="profiled runs per model")
    p.add_argument("--top", type=int, default=20, help="op types listed (the rest summed)")
    p.add_argument("--json", help="write the profiles here")
    add_force_option(p)
    args = p.parse_args(argv)
    for path in args.models:
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such model file")
    require_idle(args.force)
    cmd = command_line("profile_onnx.py", argv)
    feats = noise_fbank(args.seconds)
    print(f"load average {load_avg()}; {args.seconds:g} s ({feats.shape[1]} frames), "
          f"{args.threads} thread(s), {args.runs} profiled runs", flush=True)
    profiles = [op_profile(m, feats, args.threads, args.runs) for m in args.models]
    names = [os.path.basename(m) for m in args.models]
    print()
    print(f"ORT kernel time per operator type, ms per {args.seconds:g} s utterance "
          f"[load {load_avg()}]:")
    print()
    print(profile_table(names, profiles, args.top))
    print()
    finish_report([args.threads], cmd, args.json,
                  {"command": cmd, "profiles": dict(zip(args.models, profiles))})


if __name__ == "__main__":
    run_main(main)
