"""Average the model weights of the last N epoch checkpoints into one file:
training/average.py.

  python -m wespeaker_mfcon.bin.average_model --models_dir exp/E/models --num 5 \
      --dst exp/E/models/avg_model.pt
"""

import argparse

from wespeaker_mfcon.training.average import average_last
from wespeaker_mfcon.utils.entrypoint import at_least, run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models_dir", required=True)
    parser.add_argument("--num", type=at_least(1), default=5, help="how many of the last epochs")
    parser.add_argument("--dst", required=True, help="output .pt (holds {'model': state_dict})")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    average_last(args.models_dir, args.num, args.dst)


if __name__ == "__main__":
    run_main(main)
