"""Benchmark of AS-norm: 1 M trials over 10 k utterances, cohort of 6 k speakers, top_n 300.

    OMP_NUM_THREADS=1 python benchmarks/bench_asnorm.py [--trials 1000000] [--utts 10000]
        [--speakers 6000] [--dim 192] [--top_n 300] [--check 2000] [--json OUT] [--force]

Random embeddings. Times the normalization (cohort statistics once per utterance by matrix
product + per-trial arithmetic) and, for comparison, the cosine scoring of the trials.
With --check N, N random trials are recomputed the slow way (per trial, full cohort sort)
and the largest difference is reported. The table is speed_tables.render_asnorm's.
"""

import argparse
import time

import numpy as np

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, start
from wespeaker_mfcon.analysis.speed_tables import render_asnorm
from wespeaker_mfcon.scoring.cosine import cosine_scores, l2_normalize
from wespeaker_mfcon.scoring.score_norm import score_norm
from wespeaker_mfcon.utils.entrypoint import run_main


def slow_reference(scores, pick, ei, ti, emb, cohort, method, top_n):
    """The normalized scores of trials `pick`, per trial with a full sort of the cohort."""
    ref = np.empty(len(pick))
    for n, i in enumerate(pick):
        z = []
        for u in (ei[i], ti[i]):
            cs = np.sort(cohort.astype(np.float64) @ emb[u].astype(np.float64))[::-1]
            if method == "asnorm":
                cs = cs[:top_n]
            z.append((scores[i] - cs.mean()) / cs.std())
        ref[n] = 0.5 * (z[0] + z[1])
    return ref


def measure(args):
    """{cosine_s, norm_s, check_*} for random embeddings of the requested size."""
    rng = np.random.default_rng(args.seed)
    emb = l2_normalize(rng.standard_normal((args.utts, args.dim), dtype=np.float32))
    cohort = l2_normalize(rng.standard_normal((args.speakers, args.dim), dtype=np.float32))
    ei = rng.integers(0, args.utts, args.trials)
    ti = rng.integers(0, args.utts, args.trials)
    t0 = time.perf_counter()
    scores = cosine_scores(emb, ei, ti)
    t1 = time.perf_counter()
    normed = score_norm(scores, ei, ti, emb, cohort, args.method, args.top_n)
    out = {"cosine_s": t1 - t0, "norm_s": time.perf_counter() - t1}
    if args.check:
        pick = rng.choice(args.trials, size=min(args.check, args.trials), replace=False)
        t0 = time.perf_counter()
        ref = slow_reference(scores, pick, ei, ti, emb, cohort, args.method, args.top_n)
        out.update(check_trials=len(pick), check_s=time.perf_counter() - t0,
                   check_max_abs_diff=float(np.max(np.abs(ref - normed[pick]))))
    return out


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
    add_bench_options(p)
    args = p.parse_args(argv)
    record = start("asnorm", "bench_asnorm.py", argv, args.force)
    record.update({k: getattr(args, k) for k in ("trials", "utts", "speakers", "dim", "top_n",
                                                 "method")})
    record.update(measure(args))
    print(render_asnorm(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
