"""Stage 2: train an MFA-Conformer (or ECAPA-TDNN) with AM/AAM-softmax and the MFCon loss.

Single process:   python -m wespeaker_mfcon.bin.train --config C --exp_dir E --train_data D
Distributed:      torchrun --nproc_per_node N -m wespeaker_mfcon.bin.train ... (gloo on CPU,
                  NCCL with --device cuda, one process per GPU; multi-node via torchrun options)
Any config value can be overridden: --num_epochs 2 --mfcon_args.weight 0.1
Fine-tuning: --init_from exp/OTHER/models/avg_model.pt starts a fresh run from those weights
(a new classification head for this data's speakers; --freeze_backbone_steps N trains only the
heads for N steps; --init_projection true keeps the head, for the same speakers).
The resolved config goes to E/config.yaml; checkpoints to E/models/; a killed run started
again with the same command resumes from the latest checkpoint.
--check_only validates the config, its overrides and the training data tables and exits:
run.sh does it before torchrun, so that a mistake is one line rather than a launcher traceback.
"""

import argparse

from wespeaker_mfcon.config import parse_overrides
from wespeaker_mfcon.training.check import check_training
from wespeaker_mfcon.training.run import train
from wespeaker_mfcon.utils.entrypoint import run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training YAML (conf/*.yaml)")
    parser.add_argument("--exp_dir", required=True, help="experiment dir (created)")
    parser.add_argument("--train_data", required=True,
                        help="Kaldi data dir with utt2spk and feats.scp (wav.scp for raw, "
                             "shard.list for shard)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--init_from", metavar="CKPT",
                        help="start from this checkpoint's weights (sets the config key "
                             "init_from; ignored when exp_dir already has checkpoints)")
    parser.add_argument("--check_only", action="store_true",
                        help="validate config, overrides and training data, then exit")
    args, rest = parser.parse_known_args(argv)
    args.overrides = parse_overrides(rest)
    if args.init_from is not None:
        args.overrides["init_from"] = args.init_from
    return args


def main(argv=None):
    args = get_args(argv)
    if args.check_only:
        print(check_training(args.config, args.train_data, args.overrides))
        return
    train(args.config, args.exp_dir, args.train_data, device=args.device,
          overrides=args.overrides)


if __name__ == "__main__":
    run_main(main)
