"""Speed of the int8 ONNX model (export_onnx --quantize int8) against the fp32 one, interleaved.

    python benchmarks/bench_quantize.py [--configs paper small] [--seconds 10] [--threads 1]
        [--repeats 20] [--calib_data data/train] [--profile] [--keep DIR] [--json OUT]

For each config (paper = conf/mfa_conformer_mfcon.yaml, ~20 M parameters; small =
conf/mfa_conformer_mfcon_small.yaml; the MFCon heads are not exported, so this is the same
network as the non-MFCon config) the deployable EmbeddingNet is built with random weights
and non-trivial BatchNorm statistics (bench_extract.build_net), exported to ONNX as stage 5
does, and quantized with wespeaker_mfcon.export.quantize.quantize_int8, calibrated on --calib_data
(a data dir with feats.scp or wav.scp) or, without it, on the fbank of noise.

Both sessions as inference.Embedder makes them (CPUExecutionProvider, intra-op threads N,
inter-op 1), batch 1, the fbank of --seconds of noise. After one warm-up run each, --repeats
rounds each run fp32 then int8, so that drifting machine load hits both alike; reported: the
median ms of each, the ratio of the medians and the median of the per-round ratios
(fp32 ms / int8 ms; > 1 = int8 faster), the median CPU ms of the calling thread (with one
thread, the time minus the waits for a core), and the cosine of the two embeddings. --profile also
prints the per-operator profile of both (benchmarks/profile_onnx.py).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.bench_extract import build_net  # noqa: E402
from benchmarks.common import (add_force_option, command_line, finish_report, load_avg,  # noqa: E402
                               markdown_table, quiet_exporter_logs, require_idle)
from benchmarks.profile_onnx import noise_fbank, op_profile, profile_table  # noqa: E402
from wespeaker_mfcon.export.onnx import add_metadata, export  # noqa: E402
from wespeaker_mfcon.export.quantize import calibration_feats, quantize_int8  # noqa: E402
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402


def export_pair(name, out_dir, calib_data, calib_utts):
    """fp32 and int8 .onnx of config `name` in out_dir (reused when both exist)."""
    fp32, int8 = (os.path.join(out_dir, f"{name}{sfx}.onnx") for sfx in ("", "_int8"))
    if os.path.isfile(fp32) and os.path.isfile(int8):
        return fp32, int8
    net, conf = build_net(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        export(net, conf.feat_dim, fp32, opset=18)
    add_metadata(fp32, conf, net.model.embed_dim)
    if calib_data:
        calib, check = calibration_feats(calib_data, calib_utts, fbank_kwargs=conf.fbank_kwargs())
    else:
        calib = [noise_fbank(3.0, conf.feat_dim, seed=s) for s in range(1, calib_utts + 1)]
        check = [noise_fbank(10.0, conf.feat_dim, seed=s) for s in (100, 101)]
    quantize_int8(fp32, int8, calib, check)
    return fp32, int8


def interleaved(runs, repeats):
    """One warm-up run each, then `repeats` rounds of all runs in turn; per run: lists of wall
    ms and of CPU ms of the calling thread (with 1 intra-op thread ORT computes in it, so CPU
    time leaves out the time the thread waited for a core)."""
    for run in runs:
        run()
    wall, cpu = [[] for _ in runs], [[] for _ in runs]
    for _ in range(repeats):
        for run, w, c in zip(runs, wall, cpu):
            w0, c0 = time.perf_counter(), time.thread_time()
            run()
            w.append((time.perf_counter() - w0) * 1000.0)
            c.append((time.thread_time() - c0) * 1000.0)
    return wall, cpu


def time_pair(fp32, int8, feats, threads, repeats):
    """Interleaved timing of the two models: a result row (dict)."""
    import onnxruntime as ort

    sessions = []
    for path in (fp32, int8):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sessions.append(ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]))
    runs = [lambda s=s: s.run(["embs"], {"feats": feats})[0][0] for s in sessions]
    load_before = load_avg()
    (ms_fp32, ms_int8), (cpu_fp32, cpu_int8) = interleaved(runs, repeats)
    a, b = (run() for run in runs)
    return {"fp32_ms": statistics.median(ms_fp32), "int8_ms": statistics.median(ms_int8),
            "round_ratio": statistics.median(f / i for f, i in zip(ms_fp32, ms_int8)),
            "fp32_cpu_ms": statistics.median(cpu_fp32), "int8_cpu_ms": statistics.median(cpu_int8),
            "fp32_all_ms": ms_fp32, "int8_all_ms": ms_int8,
            "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
            "loadavg": f"{load_before} / {load_avg()}"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", choices=["paper", "small"], default=["paper"])
    p.add_argument("--seconds", type=float, default=10.0, help="utterance duration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20, help="interleaved rounds (median)")
    p.add_argument("--calib_data", help="data dir (feats.scp or wav.scp); default: noise")
    p.add_argument("--calib_utts", type=int, default=16)
    p.add_argument("--profile", action="store_true", help="also the per-operator profiles")
    p.add_argument("--keep", help="keep (and reuse) the .onnx files in this dir")
    p.add_argument("--json", help="write the results here")
    add_force_option(p)
    args = p.parse_args(argv)
    require_idle(args.force)
    cmd = command_line("bench_quantize.py", argv)
    quiet_exporter_logs()
    feats = noise_fbank(args.seconds)
    results, tables = [], []
    with tempfile.TemporaryDirectory(prefix="bench_quantize_") as tmp:
        for name in args.configs:
            fp32, int8 = export_pair(name, args.keep or tmp, args.calib_data, args.calib_utts)
            row = time_pair(fp32, int8, feats, args.threads, args.repeats)
            row.update(config=name, threads=args.threads, seconds=args.seconds,
                       fp32_mib=os.path.getsize(fp32) / 2**20,
                       int8_mib=os.path.getsize(int8) / 2**20)
            results.append(row)
            print(f"{name}: fp32 {row['fp32_ms']:.1f} ms, int8 {row['int8_ms']:.1f} ms, "
                  f"per-round ratio {row['round_ratio']:.2f}x [load {load_avg()}]", flush=True)
            if args.profile:
                profiles = [op_profile(m, feats, args.threads) for m in (fp32, int8)]
                row["profiles"] = {"fp32": profiles[0], "int8": profiles[1]}
                tables.append((name, profile_table(["fp32", "int8"], profiles)))
    print_report(results, tables, args)
    finish_report([args.threads], cmd, args.json, {"command": cmd, "results": results})


def print_report(results, tables, args):
    header = ["config", "threads", "utterance", "fp32 ms (RTF)", "int8 ms (RTF)",
              "int8 speed-up (medians)", "median per-round ratio", "CPU ms fp32 / int8",
              "cosine fp32/int8", "size fp32 / int8 MiB", "load avg before / after"]
    rows = [[r["config"], r["threads"], f"{r['seconds']:g} s",
             f"{r['fp32_ms']:.1f} ({r['fp32_ms'] / 1000 / r['seconds']:.4f})",
             f"{r['int8_ms']:.1f} ({r['int8_ms'] / 1000 / r['seconds']:.4f})",
             f"{r['fp32_ms'] / r['int8_ms']:.2f}x", f"{r['round_ratio']:.2f}x",
             f"{r['fp32_cpu_ms']:.1f} / {r['int8_cpu_ms']:.1f}",
             f"{r['cosine']:.5f}", f"{r['fp32_mib']:.1f} / {r['int8_mib']:.1f}", r["loadavg"]]
            for r in results]
    print()
    print(f"ONNX Runtime fp32 vs int8 (QDQ), batch 1, {args.repeats} interleaved rounds after a "
          "warm-up:")
    print()
    print(markdown_table(header, rows))
    for name, table in tables:
        print()
        print(f"{name}: ORT kernel time per operator type, ms per {args.seconds:g} s utterance:")
        print()
        print(table)
    print()


if __name__ == "__main__":
    run_main(main)
