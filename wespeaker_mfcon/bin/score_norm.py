"""AS-norm / S-norm of cosine score files (stage 4).

    python -m wespeaker_mfcon.bin.score_norm --score_norm_method asnorm --top_n 300 \
        --eval_scp exp/E/embeddings/test/xvector.scp \
        --cohort_scp exp/E/embeddings/train/xvector.scp \
        --cohort_utt2spk data/train/utt2spk \
        --score_files exp/E/scores/a.score exp/E/scores/b.score

The cohort is one mean embedding per training speaker (after subtracting the cohort mean,
as score.py does, then L2-normalized). For every enroll and test utterance the mean/std of
its top-N cohort cosine scores (asnorm) or of all of them (snorm) are computed once, with a
matrix product; a trial score s becomes 0.5*((s - mu_e)/sd_e + (s - mu_t)/sd_t).
Writes <name>.<method>.score beside each input (or into --out_dir).
"""

import argparse
import logging
import os
import time

import numpy as np

from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.scoring.embeddings import index_of, load_embeddings
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.scoring.cosine import prepare, speaker_cohort
from wespeaker_mfcon.scoring.score_norm import clamp_top_n, score_norm
from wespeaker_mfcon.scoring.trials import (NORM_METHODS, parse_score_name, read_scores, trial_indices, write_scores)

log = logging.getLogger("score_norm")


def _positive_int(v):
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {v!r}") from None
    if n < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a std needs two scores), got {n}")
    return n


def get_parser():
    p = argparse.ArgumentParser(prog="score_norm.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--score_norm_method", choices=NORM_METHODS, default="asnorm")
    p.add_argument("--top_n", type=_positive_int, default=300,
                   help="cohort scores per utterance for asnorm (clamped to the cohort size)")
    p.add_argument("--eval_scp", required=True, help="xvector.scp of the evaluation utterances")
    p.add_argument("--cohort_scp", required=True, help="xvector.scp of the cohort (training) set")
    p.add_argument("--cohort_utt2spk", required=True, help="utt2spk of the cohort set")
    p.add_argument("--score_files", nargs="+", required=True,
                   help="cosine score files written by score.py")
    p.add_argument("--out_dir", default=None, help="default: beside each input")
    p.add_argument("--no_mean_sub", dest="mean_sub", action="store_false",
                   help="do not subtract the cohort mean embedding (use it if score.py had it)")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    method = args.score_norm_method
    keys, eval_raw = load_embeddings(args.eval_scp)
    cohort_keys, cohort_raw = load_embeddings(args.cohort_scp)
    if cohort_raw.shape[1] != eval_raw.shape[1]:
        raise UserError(f"{args.cohort_scp}: dimension {cohort_raw.shape[1]} differs from "
                        f"{args.eval_scp} ({eval_raw.shape[1]})")
    mean = cohort_raw.mean(axis=0, dtype=np.float64) if args.mean_sub else None
    emb = prepare(eval_raw, mean)
    speakers, cohort = speaker_cohort(cohort_keys, cohort_raw, args.cohort_utt2spk, mean)
    top_n = clamp_top_n(args.top_n, len(speakers), log) if method == "asnorm" else None
    log.info("%d eval embeddings, cohort of %d speakers from %d utterances, %s%s",
             len(keys), len(speakers), len(cohort_keys), method,
             f" top_n={top_n}" if top_n else "")

    index = index_of(keys)
    loaded = []
    for path in args.score_files:
        name, system = parse_score_name(path)
        if system != "cosine":
            log.warning("%s looks already normalized (%s); normalizing it anyway", path, system)
            name = f"{name}.{system}"
        out_dir = args.out_dir or os.path.dirname(path)
        out = os.path.join(out_dir, f"{name}.{method}.score")
        enroll, test, scores, labels = read_scores(path)
        ei, ti = trial_indices(enroll, test, index, path, args.eval_scp)
        loaded.append((path, out, enroll, test, scores, labels, ei, ti))

    # Statistics once per utterance over all lists: concatenate the trials, normalize, split.
    t0 = time.time()
    all_scores = np.concatenate([x[4] for x in loaded])
    all_ei = np.concatenate([x[6] for x in loaded])
    all_ti = np.concatenate([x[7] for x in loaded])
    normed = score_norm(all_scores, all_ei, all_ti, emb, cohort, method=method,
                        top_n=top_n if top_n is not None else len(speakers))
    log.info("%s of %d trials in %.2f s", method, len(all_scores), time.time() - t0)
    start = 0
    for path, out, enroll, test, scores, labels, _, _ in loaded:
        part = normed[start:start + len(scores)]
        start += len(scores)
        write_scores(out, enroll, test, part, labels)
        log.info("%s -> %s", path, out)
    return 0


if __name__ == "__main__":
    run_main(main)
