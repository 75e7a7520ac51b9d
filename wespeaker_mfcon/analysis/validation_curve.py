"""Has training converged? EER of every epoch's checkpoint on a validation trial list.

    python -m wespeaker_mfcon.analysis.validation_curve --exp_dir exp/E \
        --feats_scp data_dev/test/feats.scp --trials data_dev/test/trials/trials.kaldi \
        [--out exp/E/validation.json] [--plot exp/E/validation.png]

Every models/model_<N>.pt of the experiment is scored as analysis/block_eer.py scores one
checkpoint (cosine after subtracting the mean of the evaluated utterances, for the embedding
and for each block's mean+std pooled output). Use speakers that neither training nor the test
list holds, so that choosing the number of epochs from this curve does not touch the test.

Output JSON (EER in %): {"trials": NAME, "num_trials": N, "epochs": [{"epoch": 1, "eer": ..,
"min_dcf_0.01": .., "blocks": [EER of block 1, ...]}, ...]}.
"""

import argparse
import glob
import json
import os
import re

import torch

from wespeaker_mfcon.analysis.block_eer import ScpFeats, block_eer
from wespeaker_mfcon.models.embedding_net import load_embedding_net
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.analysis.plots import plot_curves
from wespeaker_mfcon.scoring.trials import read_trials, trial_name


def get_parser():
    p = argparse.ArgumentParser(prog="validation_curve.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment dir (config.yaml, models/)")
    p.add_argument("--feats_scp", required=True, help="feats.scp of the validation utterances")
    p.add_argument("--trials", required=True, help="validation trials (Kaldi form)")
    p.add_argument("--out", default=None, help="JSON (default: EXP_DIR/validation.json)")
    p.add_argument("--plot", default=None, help="optional PNG: EER against epoch")
    p.add_argument("--num_threads", type=int, default=1)
    return p


def epoch_checkpoints(models_dir):
    """[(epoch, path)] of models_dir/model_<N>.pt, by epoch."""
    found = []
    for path in glob.glob(os.path.join(models_dir, "model_*.pt")):
        match = re.fullmatch(r"model_(\d+)\.pt", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def validation_curve(exp_dir, feats_scp, trials):
    """The JSON-ready curve of every epoch checkpoint of exp_dir on the trial list."""
    enroll, test, labels = read_trials(trials)
    checkpoints = epoch_checkpoints(os.path.join(exp_dir, "models"))
    if not checkpoints:
        raise UserError(f"{exp_dir}/models: no model_<N>.pt checkpoints")
    feats = ScpFeats(feats_scp, list(dict.fromkeys(list(enroll) + list(test))))
    config = os.path.join(exp_dir, "config.yaml")
    epochs = []
    for epoch, path in checkpoints:
        net, _ = load_embedding_net(path, config)
        res = block_eer(net.model, feats, enroll, test, labels)
        epochs.append({"epoch": epoch, **res["embedding"],
                       "blocks": [b["eer"] for b in res["blocks"]]})
        epochs[-1].pop("dim", None)
    return {"trials": trial_name(trials), "num_trials": int(len(labels)), "epochs": epochs}


def main(argv=None):
    args = get_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.num_threads))
    curve = validation_curve(args.exp_dir, args.feats_scp, args.trials)
    out = args.out or os.path.join(args.exp_dir, "validation.json")
    with atomic_write(out) as f:
        json.dump(curve, f, indent=1)
        f.write("\n")
    for row in curve["epochs"]:
        print(f"epoch {row['epoch']:>3}  EER {row['eer']:6.2f}%  minDCF0.01 "
              f"{row['min_dcf_0.01']:.4f}")
    if args.plot:
        plot_curves({os.path.basename(os.path.normpath(args.exp_dir)):
                     ([r["epoch"] for r in curve["epochs"]], [r["eer"] for r in curve["epochs"]])},
                    args.plot, xlabel="epoch", ylabel=f"EER (%) on {curve['trials']}")
    return 0


if __name__ == "__main__":
    run_main(main)
