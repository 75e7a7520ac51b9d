#!/usr/bin/env python3
"""Make the embedded synthetic speaker corpus (VoxCeleb layout + VoxCeleb-format trials).

Writes OUT_DIR/train/wav/idXXXXX/<session>/<nnnnn>.wav, OUT_DIR/test/wav/... (16 kHz mono
PCM16; test speakers are id10001.., disjoint from the train speakers id00001..) and
OUT_DIR/test/trials.txt ("1 idA/sess/00001.wav idA/sess2/00003.wav", 1 = target, paths
relative to OUT_DIR/test/wav; targets always cross sessions). OUT_DIR/.done is written last:
a re-run with the same parameters does nothing, with other parameters it stops unless --force.
The output is byte-identical for a given --seed, whatever --jobs.
"""

import argparse
import sys

from wespeaker_mfcon.synth.mini_corpus import DEFAULTS, make_corpus
from wespeaker_mfcon.utils.entrypoint import run_main


def get_parser():
    d = DEFAULTS
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True, help="output directory")
    p.add_argument("--num_train_spk", type=int, default=d["num_train_spk"],
                   help="train speakers (default %(default)s)")
    p.add_argument("--num_test_spk", type=int, default=d["num_test_spk"],
                   help="test speakers (default %(default)s)")
    p.add_argument("--first_test_spk", type=int, default=d["first_test_spk"],
                   help="skip this many test speakers: a test set disjoint from one made with "
                        "--num_test_spk <= this value, with the same train set "
                        "(default %(default)s)")
    p.add_argument("--sessions_per_spk", type=int, default=d["sessions_per_spk"],
                   help="sessions (recordings, each with its own channel) per speaker, >= 2 "
                        "(default %(default)s)")
    p.add_argument("--utts_per_session", type=int, default=d["utts_per_session"],
                   help="utterances per session (default %(default)s)")
    p.add_argument("--min_dur", type=float, default=d["min_dur"],
                   help="shortest utterance, seconds (default %(default)s)")
    p.add_argument("--max_dur", type=float, default=d["max_dur"],
                   help="longest utterance, seconds (default %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"], help="seed (default %(default)s)")
    p.add_argument("--jobs", type=int, default=1,
                   help="parallel processes (default %(default)s); output does not depend on it")
    p.add_argument("--num_trials", type=int, default=d["num_trials"],
                   help="test trials, about half targets (default %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="regenerate even if OUT_DIR/.done says the corpus is complete")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    st = make_corpus(args.out_dir, num_train_spk=args.num_train_spk,
                     num_test_spk=args.num_test_spk, sessions_per_spk=args.sessions_per_spk,
                     utts_per_session=args.utts_per_session, min_dur=args.min_dur,
                     max_dur=args.max_dur, seed=args.seed, jobs=args.jobs,
                     num_trials=args.num_trials, first_test_spk=args.first_test_spk,
                     force=args.force,
                     progress=not args.no_progress)
    if st["skipped"]:
        print(f"{args.out_dir}: mini corpus already complete (.done, same parameters); "
              "skipping (use --force to regenerate)")
        return 0
    print(f"{args.out_dir}: {st['files']} files, {st['audio_s'] / 3600:.2f} h of audio, "
          f"{st['trials_target']} target + {st['trials_nontarget']} nontarget trials")
    print(f"generated in {st['wall_s']:.1f} s wall, {st['cpu_s']:.1f} s CPU with {args.jobs} "
          f"job(s): real-time factor {st['rtf']:.0f}x per job "
          f"(seconds of audio per CPU second)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
