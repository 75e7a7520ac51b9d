"""Score calibration with quality measures, trained on trials of the training set or of a
held-out set (stage 7): scoring/calibrate.py.

    python -m wespeaker_mfcon.bin.calibrate --exp_dir exp/E --data data [--trials vox1_O] \
        [--score_norm_method asnorm] [--top_n 300] [--num_trials 20000] [--seed 0] \
        [--p_train 0.5] \
        [--cal_data data/dev --cal_embeddings exp/E/embeddings/dev/xvector.scp \
         [--cal_trials NAME]]

1. Draws --num_trials calibration trials from DATA/train/utt2spk (ids spk/session/utt;
   targets across sessions, half of them if possible; seeded) and scores them as stage 4
   scores test trials, each utterance's own speaker left out of its AS-norm / S-norm cohort.
   With --cal_data DIR (held-out speakers, e.g. a dev set; --cal_embeddings its xvector.scp)
   the trials come from DIR/utt2spk instead, drawn the same way, or from
   DIR/trials/<--cal_trials>.kaldi, and are scored exactly as a test list.
2. Fits logistic-regression calibrations of the cosine and the normalized score:
   <system>_plain (score -> LLR) and <system>_qmf (score and the quality measures of
   --qmf_features); and one of the RAW cosine, the score `wespeaker-mfcon compare` computes.
3. Applies them to the stage-4 score files exp/E/scores/<name>.score and
   <name>.<method>.score of the trial lists --trials (default: every list of --data).

Writes exp/E/calibration/{cosine,<method>}_{plain,qmf}.json, ablation.json,
       train_trials.kaldi (cal_trials.kaldi with --cal_data); exp/E/calibration.json (raw
       cosine); exp/E/scores/<name>.<system>_<plain|qmf>.llr.score; merges EER, minDCF, Cllr,
       min Cllr and actDCF of every calibrated system into exp/E/scores/results.json, and
       prints the ablation and the results table.
"""

import argparse

from wespeaker_mfcon.scoring.calibrate import CalibrationOptions, calibrate
from wespeaker_mfcon.scoring.calibration_trials import FEATURES, QMF_DEFAULT
from wespeaker_mfcon.scoring.trials import NORM_METHODS
from wespeaker_mfcon.utils.entrypoint import at_least, probability, run_main


def get_parser():
    p = argparse.ArgumentParser(prog="calibrate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--data", required=True, help="data dir of stage 0: the calibration trials "
                   "come from train/ (utt2spk, utt2dur; its embeddings: "
                   "exp_dir/embeddings/train); test/utt2dur; test/trials")
    p.add_argument("--trials", nargs="+", default=None, help="trial list names (default: every "
                   "list of --data): exp_dir/scores/<name>.score and <name>.<method>.score")
    p.add_argument("--score_norm_method", choices=NORM_METHODS, default="asnorm")
    p.add_argument("--top_n", type=at_least(2), default=300,
                   help="AS-norm top N, as in stage 4 (clamped to the cohort size)")
    p.add_argument("--num_trials", type=at_least(2), default=20000)
    p.add_argument("--target_fraction", type=probability, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p_train", type=probability, default=0.5,
                   help="effective target prior of the logistic-regression objective")
    p.add_argument("--p_target", type=probability, nargs="+", default=[0.01, 0.05],
                   help="priors of minDCF and actual DCF")
    p.add_argument("--qmf_features", nargs="+", choices=FEATURES,
                   default=list(QMF_DEFAULT), help="features of the <system>_qmf models")
    p.add_argument("--l2", type=float, default=1e-4, help="L2 weight on standardized weights")
    g = p.add_argument_group("held-out calibration set (default: trials from DATA/train)")
    g.add_argument("--cal_data", default=None, help="data dir of held-out speakers (a dev set) "
                   "to calibrate on: trials from its utt2spk (drawn as from DATA/train) or "
                   "--cal_trials, durations from its utt2dur; scored as stage 4 scores tests")
    g.add_argument("--cal_embeddings", default=None,
                   help="xvector.scp of --cal_data (required with it)")
    g.add_argument("--cal_trials", default=None, help="NAME: take the calibration trials from "
                   "<cal_data>/trials/NAME.kaldi instead of drawing them")
    return p


def main(argv=None):
    calibrate(CalibrationOptions(**vars(get_parser().parse_args(argv))))


if __name__ == "__main__":
    run_main(main)
