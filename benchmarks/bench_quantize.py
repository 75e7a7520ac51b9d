"""Speed of the int8 ONNX model (export_onnx --quantize int8) against the fp32 one, interleaved.

    python benchmarks/bench_quantize.py [--configs paper small] [--seconds 10] [--threads 1]
        [--repeats 20] [--calib_data data/train] [--profile] [--keep DIR] [--json OUT]

For each config (paper = conf/mfa_conformer_mfcon.yaml, ~20 M parameters; small =
conf/mfa_conformer_mfcon_small.yaml; the MFCon heads are not exported, so this is the same
network as the non-MFCon config) the deployable EmbeddingNet is built with random weights
and non-trivial BatchNorm statistics (benchmarking.random_embedding_net), exported to ONNX as stage 5
does, and quantized with wespeaker_mfcon.export.quantize.quantize_int8, calibrated on --calib_data
(a data dir with feats.scp or wav.scp) or, without it, on the fbank of noise.

Both sessions as inference.Embedder makes them (CPUExecutionProvider, intra-op threads N,
inter-op 1), batch 1, the fbank of --seconds of noise. After one warm-up run each, --repeats
rounds each run fp32 then int8, so that drifting machine load hits both alike; reported: the
median ms of each, the ratio of the medians and the median of the per-round ratios
(fp32 ms / int8 ms; > 1 = int8 faster), the median CPU ms of the calling thread (with one
thread, the time minus the waits for a core), and the cosine of the two embeddings. --profile also
gives the per-operator profile of both (analysis/onnx_profile.py, as benchmarks/profile_onnx.py).
The tables are speed_tables.render_quantize's.
"""

import argparse
import os
import statistics
import tempfile
import warnings

import numpy as np

from wespeaker_mfcon.analysis.benchmarking import (add_bench_options, finish, interleaved,
                                                   load_avg, noise_fbank, quiet_exporter_logs,
                                                   random_embedding_net, start)
from wespeaker_mfcon.analysis.onnx_profile import op_profile
from wespeaker_mfcon.analysis.speed_tables import render_quantize
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.export.onnx import add_metadata, export
from wespeaker_mfcon.export.quantize import calibration_feats, quantize_int8
from wespeaker_mfcon.utils.entrypoint import run_main

CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "voxceleb", "v2_mfcon", "conf")
CONFIGS = {"small": "mfa_conformer_mfcon_small.yaml", "paper": "mfa_conformer_mfcon.yaml"}


def export_pair(name, out_dir, calib_data, calib_utts):
    """fp32 and int8 .onnx of config `name` in out_dir (reused when both exist)."""
    fp32, int8 = (os.path.join(out_dir, f"{name}{sfx}.onnx") for sfx in ("", "_int8"))
    if os.path.isfile(fp32) and os.path.isfile(int8):
        return fp32, int8
    conf = load_train_config(os.path.join(CONF_DIR, CONFIGS[name]))
    net = random_embedding_net(conf)
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
    (ms_fp32, cpu_fp32), (ms_int8, cpu_int8) = interleaved(runs, repeats)
    a, b = (run() for run in runs)
    return {"fp32_ms": statistics.median(ms_fp32), "int8_ms": statistics.median(ms_int8),
            "round_ratio": statistics.median(f / i for f, i in zip(ms_fp32, ms_int8)),
            "fp32_cpu_ms": statistics.median(cpu_fp32), "int8_cpu_ms": statistics.median(cpu_int8),
            "fp32_all_ms": ms_fp32, "int8_all_ms": ms_int8,
            "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
            "loadavg": f"{load_before} / {load_avg()}"}


def measure(name, args, out_dir, feats):
    """The result row of one config (with the op profiles when --profile)."""
    fp32, int8 = export_pair(name, out_dir, args.calib_data, args.calib_utts)
    row = time_pair(fp32, int8, feats, args.threads, args.repeats)
    row.update(config=name, threads=args.threads, seconds=args.seconds,
               fp32_mib=os.path.getsize(fp32) / 2**20, int8_mib=os.path.getsize(int8) / 2**20)
    print(f"{name}: fp32 {row['fp32_ms']:.1f} ms, int8 {row['int8_ms']:.1f} ms, "
          f"per-round ratio {row['round_ratio']:.2f}x [load {load_avg()}]", flush=True)
    if args.profile:
        row["profiles"] = [op_profile(m, feats, args.threads) for m in (fp32, int8)]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["paper"])
    p.add_argument("--seconds", type=float, default=10.0, help="utterance duration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20, help="interleaved rounds (median)")
    p.add_argument("--calib_data", help="data dir (feats.scp or wav.scp); default: noise")
    p.add_argument("--calib_utts", type=int, default=16)
    p.add_argument("--profile", action="store_true", help="also the per-operator profiles")
    p.add_argument("--keep", help="keep (and reuse) the .onnx files in this dir")
    add_bench_options(p)
    args = p.parse_args(argv)
    record = start("quantize", "bench_quantize.py", argv, args.force)
    quiet_exporter_logs()
    feats = noise_fbank(args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench_quantize_") as tmp:
        record["results"] = [measure(name, args, args.keep or tmp, feats)
                             for name in args.configs]
    record.update(repeats=args.repeats, seconds=args.seconds, threads=args.threads)
    print()
    print(render_quantize(finish(record, args.json, [args.threads])))


if __name__ == "__main__":
    run_main(main)
