"""Stage 0: build Kaldi data dirs from VoxCeleb-layout trees and trial lists.

  python -m wespeaker_mfcon.bin.prepare_data --train_root T --test_root E \\
      --trials list1.txt [list2.txt ...] --data data [--nj 8] [--on_bad_audio error|skip]
writes data/{train,test}/{wav.scp,utt2spk,spk2utt,utt2dur} and data/test/trials/*.kaldi.
Both trees and every trial list are checked (layout, names a Kaldi table can hold, readable
audio) before either data dir is written; a bad input is one `error:` line naming the path.
.m4a files are converted (resumable: data/wav_m4a/) and every header read in --nj processes.
A bad audio file stops the stage with the full list in data/SET.bad_audio.txt, or with
--on_bad_audio skip is left out and listed in data/SET/bad_audio.txt.
"""

import argparse
import os

from wespeaker_mfcon.dataset.voxceleb import BAD_AUDIO_MODES, prepare_sets
from wespeaker_mfcon.utils.entrypoint import at_least, run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_root", required=True, help="VoxCeleb-layout training tree")
    parser.add_argument("--test_root", required=True, help="VoxCeleb-layout test tree")
    parser.add_argument("--trials", nargs="+", required=True,
                        help="VoxCeleb-format trial lists for the test tree")
    parser.add_argument("--data", default="data", help="output dir holding train/ and test/")
    parser.add_argument("--nj", type=at_least(1), default=1,
                        help="processes for the .m4a conversion and the header scan")
    parser.add_argument("--on_bad_audio", choices=BAD_AUDIO_MODES, default="error",
                        help="error: stop, listing every bad file in data/SET.bad_audio.txt; "
                             "skip: leave them out, listed in data/SET/bad_audio.txt")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    prepare_sets([(args.train_root, os.path.join(args.data, "train"), ()),
                  (args.test_root, os.path.join(args.data, "test"), args.trials)],
                 nj=args.nj, on_bad_audio=args.on_bad_audio)


if __name__ == "__main__":
    run_main(main)
