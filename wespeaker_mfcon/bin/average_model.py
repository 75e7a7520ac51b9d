"""Average the model weights of the last N epoch checkpoints into one file.

  python -m wespeaker_mfcon.bin.average_model --models_dir exp/E/models --num 5 \
      --dst exp/E/models/avg_model.pt
"""

import argparse
import logging

from wespeaker_mfcon.utils.checkpoint import (average_state_dicts, epoch_checkpoints,
                                              save_checkpoint)
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models_dir", required=True)
    parser.add_argument("--num", type=int, default=5, help="how many of the last epochs")
    parser.add_argument("--dst", required=True, help="output .pt (holds {'model': state_dict})")
    args = parser.parse_args(argv)
    found = epoch_checkpoints(args.models_dir)
    if not found:
        raise UserError(f"{args.models_dir}: no model_<epoch>.pt checkpoints")
    chosen = found[-args.num:]
    logging.info("averaging epochs %s", [e for e, _ in chosen])
    state = average_state_dicts([p for _, p in chosen])
    save_checkpoint({"model": state, "epochs": [e for e, _ in chosen]}, args.dst)


if __name__ == "__main__":
    run_main(main)
