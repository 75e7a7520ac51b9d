"""Cosine scoring of Kaldi trial lists with mean subtraction (stage 4): scoring/cosine.py.

    python -m wespeaker_mfcon.bin.score --data data [--trials vox1_O vox1_E] \
        --eval_scp exp/E/embeddings/test/xvector.scp \
        --cohort_scp exp/E/embeddings/train/xvector.scp --out_dir exp/E/scores

Scores the trial lists --trials (names of data/test/trials/NAME.kaldi, or Kaldi trial files;
default: every list of --data) into <out_dir>/<name>.score ("enroll test score
target|nontarget"). The mean of the cohort (training) embeddings is subtracted from every
embedding before the cosine (disable with --no_mean_sub).
"""

import argparse

from wespeaker_mfcon.scoring.cosine import score_trial_lists
from wespeaker_mfcon.scoring.trials import resolve_trials
from wespeaker_mfcon.utils.entrypoint import run_main


def get_parser():
    p = argparse.ArgumentParser(prog="score.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="data dir whose test/trials/*.kaldi are scored")
    p.add_argument("--trials", nargs="+", default=None,
                   help="trial list names (of --data) or Kaldi trial files (default: all)")
    p.add_argument("--eval_scp", required=True, help="xvector.scp of the evaluation utterances")
    p.add_argument("--cohort_scp", default=None,
                   help="xvector.scp of the cohort (training) set, whose mean is subtracted")
    p.add_argument("--out_dir", required=True, help="where <name>.score files go")
    p.add_argument("--no_mean_sub", dest="mean_sub", action="store_false",
                   help="do not subtract the cohort mean embedding")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    score_trial_lists(resolve_trials(args.data, args.trials), args.eval_scp, args.out_dir,
                      cohort_scp=args.cohort_scp, mean_sub=args.mean_sub)


if __name__ == "__main__":
    run_main(main)
