"""Stage 0: build Kaldi data dirs from VoxCeleb-layout trees and trial lists.

  python -m wespeaker_mfcon.bin.prepare_data --train_root T --test_root E \
      --trials list1.txt [list2.txt ...] --data data
writes data/{train,test}/{wav.scp,utt2spk,spk2utt,utt2dur} and data/test/trials/*.kaldi.
Both trees and every trial list are checked (layout, names a Kaldi table can hold, readable
audio) before either data dir is written; a bad input is one `error:` line naming the path.
"""

import argparse
import os

from wespeaker_mfcon.dataset.voxceleb import prepare_sets
from wespeaker_mfcon.utils.cli import run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_root", required=True, help="VoxCeleb-layout training tree")
    parser.add_argument("--test_root", required=True, help="VoxCeleb-layout test tree")
    parser.add_argument("--trials", nargs="+", required=True,
                        help="VoxCeleb-format trial lists for the test tree")
    parser.add_argument("--data", default="data", help="output dir holding train/ and test/")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    prepare_sets([(args.train_root, os.path.join(args.data, "train"), ()),
                  (args.test_root, os.path.join(args.data, "test"), args.trials)])


if __name__ == "__main__":
    run_main(main)
