"""Benchmark of AS-norm: 1 M trials over 10 k utterances, cohort of 6 k speakers, top_n 300.

    OMP_NUM_THREADS=1 python benchmarks/bench_asnorm.py [--trials 1000000] [--utts 10000]
        [--speakers 6000] [--dim 192] [--top_n 300] [--check 2000]

Random embeddings. Times the normalization (cohort statistics once per utterance by matrix
product + per-trial arithmetic) and, for comparison, the cosine scoring of the trials.
With --check N, N random trials are recomputed the slow way (per trial, full cohort sort)
and the largest difference is printed.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import add_force_option, require_idle  # noqa: E402
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402
from wespeaker_mfcon.scoring.cosine import cosine_scores, l2_normalize
from wespeaker_mfcon.scoring.score_norm import score_norm  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=1_000_000)
    p.add_argument("--utts", type=int, default=10_000)
    p.add_argument("--speakers", type=int, default=6_000)
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--top_n", type=int, default=300)
    p.add_argument("--method", choices=("asnorm", "snorm"), default="asnorm")
    p.add_argument("--check", type=int, default=2000, help="trials to verify the slow way")
    p.add_argument("--seed", type=int, default=0)
    add_force_option(p)
    args = p.parse_args(argv)
    banner = require_idle(args.force)
    if banner:
        print(banner)

    rng = np.random.default_rng(args.seed)
    emb = l2_normalize(rng.standard_normal((args.utts, args.dim), dtype=np.float32))
    cohort = l2_normalize(rng.standard_normal((args.speakers, args.dim), dtype=np.float32))
    ei = rng.integers(0, args.utts, args.trials)
    ti = rng.integers(0, args.utts, args.trials)

    t0 = time.perf_counter()
    scores = cosine_scores(emb, ei, ti)
    t_cos = time.perf_counter() - t0
    t0 = time.perf_counter()
    normed = score_norm(scores, ei, ti, emb, cohort, args.method, args.top_n)
    t_norm = time.perf_counter() - t0
    print(f"{args.trials} trials, {args.utts} utterances, {args.speakers} cohort speakers, "
          f"dim {args.dim}, {args.method} top_n {args.top_n}")
    print(f"cosine scoring:      {t_cos:7.2f} s")
    print(f"{args.method} normalization: {t_norm:7.2f} s")

    if args.check:
        pick = rng.choice(args.trials, size=min(args.check, args.trials), replace=False)
        t0 = time.perf_counter()
        ref = np.empty(len(pick))
        for n, i in enumerate(pick):
            z = []
            for u in (ei[i], ti[i]):
                cs = np.sort(cohort.astype(np.float64) @ emb[u].astype(np.float64))[::-1]
                if args.method == "asnorm":
                    cs = cs[:args.top_n]
                z.append((scores[i] - cs.mean()) / cs.std())
            ref[n] = 0.5 * (z[0] + z[1])
        t_slow = time.perf_counter() - t0
        print(f"per-trial reference on {len(pick)} trials: {t_slow:.2f} s "
              f"(~{t_slow / len(pick) * args.trials:.0f} s extrapolated to all trials); "
              f"max |diff| = {np.max(np.abs(ref - normed[pick])):.2e}")


if __name__ == "__main__":
    run_main(main)
