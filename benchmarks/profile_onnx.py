"""Per-operator profile of ONNX embedding models: where ONNX Runtime spends the time.

    python benchmarks/profile_onnx.py exp/E/models/avg_model.onnx exp/E/models/avg_model_int8.onnx
        [--seconds 10] [--threads 1] [--runs 5] [--top 20] [--json OUT] [--force]

For each model, the kernel time per operator type on the fbank of --seconds of noise (batch 1),
as wespeaker_mfcon.analysis.onnx_profile.op_profile measures it: ms per utterance, share of the
kernel total, and node count, the models side by side (speed_tables.render_onnx_profile).
"""

import argparse
import os

from wespeaker_mfcon.analysis.benchmarking import (add_bench_options, finish, load_avg,
                                                   noise_fbank, start)
from wespeaker_mfcon.analysis.onnx_profile import op_profile
from wespeaker_mfcon.analysis.speed_tables import render_onnx_profile
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help=".onnx files (input feats, output embs)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance duration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=5, help="profiled runs per model")
    p.add_argument("--top", type=int, default=20, help="op types listed (the rest summed)")
    add_bench_options(p)
    args = p.parse_args(argv)
    for path in args.models:
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such model file")
    record = start("onnx_profile", "profile_onnx.py", argv, args.force)
    feats = noise_fbank(args.seconds)
    print(f"load average {load_avg()}; {args.seconds:g} s ({feats.shape[1]} frames), "
          f"{args.threads} thread(s), {args.runs} profiled runs", flush=True)
    record.update(seconds=args.seconds, threads=args.threads, runs=args.runs, top=args.top,
                  models=[os.path.basename(m) for m in args.models],
                  profiles=[op_profile(m, feats, args.threads, args.runs) for m in args.models])
    print()
    print(render_onnx_profile(finish(record, args.json, [args.threads])))


if __name__ == "__main__":
    run_main(main)
