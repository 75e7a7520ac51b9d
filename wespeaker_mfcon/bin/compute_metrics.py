"""EER / minDCF of score files, results.json and a DET plot (stage 4): scoring/results.py.

    python -m wespeaker_mfcon.bin.compute_metrics --data data [--trials vox1_O ...] \
        --systems cosine asnorm --out_dir exp/E/scores [--p_target 0.01 0.05]
    python -m wespeaker_mfcon.bin.compute_metrics --score_files a.score a.asnorm.score \
        --out_dir DIR
    python -m wespeaker_mfcon.bin.compute_metrics --show exp/E/scores/results.json

The score files are <out_dir>/<name>.score (system cosine) and <name>.<system>.score of the
trial lists --trials (default: every list of --data), or --score_files. Per score file:
<out_dir>/<name>.result (EER in %, minDCF per p_target). Then <out_dir>/results.json, merged
atomically into any existing one:
    {"<trial list>": {"cosine": {"eer": <EER in %>, "min_dcf_0.01": ..., "min_dcf_0.05": ...,
                                 "eer_threshold": ..., "num_trials": ...,
                                 "num_target": ..., "num_nontarget": ...},
                      "asnorm": {...}}}
<out_dir>/det.png holds one DET curve per score file. A results table is printed to stdout;
calibrated systems (stage 7) add the columns Cllr, minCllr and actDCF<p>.
"""

import argparse

from wespeaker_mfcon.scoring.results import compute_metrics, show
from wespeaker_mfcon.scoring.trials import score_files
from wespeaker_mfcon.utils.entrypoint import probability, run_main


def get_args(argv=None):
    p = argparse.ArgumentParser(prog="compute_metrics.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="data dir whose trial lists are evaluated")
    p.add_argument("--trials", nargs="+", default=None,
                   help="trial list names (default: every list of --data)")
    p.add_argument("--systems", nargs="+", default=["cosine"],
                   help="systems of each list: cosine = <name>.score, S = <name>.S.score")
    p.add_argument("--score_files", nargs="+", help="score files (instead of --data/--trials)")
    p.add_argument("--out_dir", help="the score dir: where .result, results.json, det.png go")
    p.add_argument("--show", metavar="RESULTS_JSON",
                   help="only print the table of an existing results.json")
    p.add_argument("--p_target", type=probability, nargs="+", default=[0.01, 0.05])
    p.add_argument("--c_miss", type=float, default=1.0)
    p.add_argument("--c_fa", type=float, default=1.0)
    p.add_argument("--no_det", dest="det", action="store_false",
                   help="do not write <out_dir>/det.png")
    args = p.parse_args(argv)
    if not args.show and not args.out_dir:
        p.error("--out_dir is required (or --show)")
    return args


def main(argv=None):
    args = get_args(argv)
    if args.show:
        show(args.show, args.p_target)
        return
    compute_metrics(args.score_files or score_files(args.out_dir, args.data, args.trials,
                                                    args.systems),
                    args.out_dir, args.p_target, args.c_miss, args.c_fa, det=args.det)


if __name__ == "__main__":
    run_main(main)
