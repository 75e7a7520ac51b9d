"""AS-norm / S-norm of cosine score files (stage 4): scoring/score_norm.py.

    python -m wespeaker_mfcon.bin.score_norm --score_norm_method asnorm --top_n 300 \
        --eval_scp exp/E/embeddings/test/xvector.scp \
        --cohort_scp exp/E/embeddings/train/xvector.scp --cohort_utt2spk data/train/utt2spk \
        (--data data [--trials vox1_O ...] --out_dir exp/E/scores | --score_files F ...)

The cosine score files are <out_dir>/<name>.score of the trial lists --trials (default: every
list of --data), or --score_files. The cohort is one mean embedding per training speaker (after
subtracting the cohort mean, as score.py does, then L2-normalized). For every enroll and test
utterance the mean/std of its top-N cohort cosine scores (asnorm) or of all of them (snorm)
are computed once, with a matrix product; a trial score s becomes
0.5*((s - mu_e)/sd_e + (s - mu_t)/sd_t). Writes <name>.<method>.score into --out_dir (with
--score_files: beside each input by default).
"""

import argparse

from wespeaker_mfcon.scoring.score_norm import normalize_score_files
from wespeaker_mfcon.scoring.trials import NORM_METHODS, score_files
from wespeaker_mfcon.utils.entrypoint import at_least, run_main


def get_args(argv=None):
    p = argparse.ArgumentParser(prog="score_norm.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--score_norm_method", choices=NORM_METHODS, default="asnorm")
    p.add_argument("--top_n", type=at_least(2, "a std needs two scores"), default=300,
                   help="cohort scores per utterance for asnorm (clamped to the cohort size)")
    p.add_argument("--eval_scp", required=True, help="xvector.scp of the evaluation utterances")
    p.add_argument("--cohort_scp", required=True, help="xvector.scp of the cohort (training) set")
    p.add_argument("--cohort_utt2spk", required=True, help="utt2spk of the cohort set")
    p.add_argument("--data", default=None, help="data dir whose trial lists are normalized")
    p.add_argument("--trials", nargs="+", default=None,
                   help="trial list names (default: every list of --data)")
    p.add_argument("--score_files", nargs="+", default=None,
                   help="cosine score files (instead of --data/--trials)")
    p.add_argument("--out_dir", default=None,
                   help="the score dir (with --score_files default: beside each input)")
    p.add_argument("--no_mean_sub", dest="mean_sub", action="store_false",
                   help="do not subtract the cohort mean embedding (use it if score.py had it)")
    args = p.parse_args(argv)
    if not args.score_files and not args.out_dir:
        p.error("give --out_dir (the score dir of --data/--trials) or --score_files")
    return args


def main(argv=None):
    args = get_args(argv)
    normalize_score_files(args.score_files or score_files(args.out_dir, args.data, args.trials),
                          args.eval_scp, args.cohort_scp, args.cohort_utt2spk,
                          method=args.score_norm_method, top_n=args.top_n, out_dir=args.out_dir,
                          mean_sub=args.mean_sub)


if __name__ == "__main__":
    run_main(main)
