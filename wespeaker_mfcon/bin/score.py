"""Cosine scoring of Kaldi trial lists with mean subtraction (stage 4).

    python -m wespeaker_mfcon.bin.score \
        --eval_scp exp/E/embeddings/test/xvector.scp \
        --cohort_scp exp/E/embeddings/train/xvector.scp \
        --trials data/test/trials/a.kaldi data/test/trials/b.kaldi \
        --out_dir exp/E/scores

Writes <out_dir>/<trials name>.score ("enroll test score target|nontarget") per trial list.
The mean of the cohort (training) embeddings is subtracted from every embedding before the
cosine (disable with --no_mean_sub).
"""

import argparse
import logging
import os
import time

from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.scoring.embeddings import index_of, load_embeddings
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.scoring.cosine import cosine_scores, prepare
from wespeaker_mfcon.scoring.trials import read_trials, trial_indices, trial_name, write_scores

log = logging.getLogger("score")


def get_parser():
    p = argparse.ArgumentParser(prog="score.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval_scp", required=True, help="xvector.scp of the evaluation utterances")
    p.add_argument("--cohort_scp", default=None,
                   help="xvector.scp of the cohort (training) set, whose mean is subtracted")
    p.add_argument("--trials", nargs="+", required=True, help="Kaldi trial lists")
    p.add_argument("--out_dir", required=True, help="where <name>.score files go")
    p.add_argument("--no_mean_sub", dest="mean_sub", action="store_false",
                   help="do not subtract the cohort mean embedding")
    return p


def load_eval(eval_scp, cohort_scp, mean_sub):
    """Eval (keys, normalized matrix) after optional cohort-mean subtraction."""
    keys, emb = load_embeddings(eval_scp)
    mean = None
    if mean_sub:
        if not cohort_scp:
            raise UserError("mean subtraction needs --cohort_scp (or pass --no_mean_sub)")
        _, cohort = load_embeddings(cohort_scp)
        if cohort.shape[1] != emb.shape[1]:
            raise UserError(f"{cohort_scp}: dimension {cohort.shape[1]} differs from "
                            f"{eval_scp} ({emb.shape[1]})")
        mean = cohort.mean(axis=0, dtype=float)
    return keys, prepare(emb, mean), mean


def main(argv=None):
    args = get_parser().parse_args(argv)
    names = [trial_name(t) for t in args.trials]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"trial lists with the same name would overwrite each other: {sorted(dup)}")
    keys, emb, _ = load_eval(args.eval_scp, args.cohort_scp, args.mean_sub)
    index = index_of(keys)
    log.info("%d eval embeddings (dim %d)%s", len(keys), emb.shape[1],
             ", cohort mean subtracted" if args.mean_sub else "")
    # Check every list before writing anything.
    loaded = []
    for path in args.trials:
        enroll, test, labels = read_trials(path)
        ei, ti = trial_indices(enroll, test, index, path, args.eval_scp)
        loaded.append((path, enroll, test, labels, ei, ti))
    for (path, enroll, test, labels, ei, ti), name in zip(loaded, names):
        t0 = time.time()
        scores = cosine_scores(emb, ei, ti)
        out = os.path.join(args.out_dir, name + ".score")
        write_scores(out, enroll, test, scores, labels)
        log.info("%s: %d trials -> %s (%.1f s)", path, len(enroll), out, time.time() - t0)
    return 0


if __name__ == "__main__":
    run_main(main)
