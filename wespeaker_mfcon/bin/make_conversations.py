"""Seeded multi-speaker conversations with reference RTTM, from the mini corpus's test voices
(the test data of diarization; wespeaker_mfcon/synth/conversations.py describes them).

  python -m wespeaker_mfcon.bin.make_conversations --out_dir data/conversations [--num 20]
      [--seed 777] [--min_dur 120 --max_dur 480] [--min_spk 2 --max_spk 6] [--jobs 2]

writes OUT/wav/convNNNN.wav, OUT/rttm/convNNNN.rttm, OUT/wav.scp, OUT/ref.rttm, OUT/meta.json.
"""

import argparse

from wespeaker_mfcon.synth.conversations import ConversationParams, make_conversations
from wespeaker_mfcon.utils.entrypoint import run_main


def get_args(argv=None):
    d = ConversationParams()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--num", type=int, default=20, help="recordings")
    parser.add_argument("--first_index", type=int, default=0,
                        help="index of the first recording (another range: other recordings)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="the mini corpus seed (its test voices)")
    parser.add_argument("--num_test_spk", type=int, default=d.num_test_spk,
                        help="voices: test speakers first_test_spk .. + num_test_spk - 1")
    parser.add_argument("--first_test_spk", type=int, default=d.first_test_spk)
    parser.add_argument("--min_dur", type=float, default=d.min_dur, help="s")
    parser.add_argument("--max_dur", type=float, default=d.max_dur, help="s")
    parser.add_argument("--min_spk", type=int, default=d.min_spk)
    parser.add_argument("--max_spk", type=int, default=d.max_spk)
    parser.add_argument("--p_overlap", type=float, default=d.p_overlap,
                        help="chance that a turn starts before the last one ends")
    parser.add_argument("--jobs", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    params = ConversationParams(
        seed=args.seed, num_test_spk=args.num_test_spk, first_test_spk=args.first_test_spk,
        min_dur=args.min_dur, max_dur=args.max_dur, min_spk=args.min_spk, max_spk=args.max_spk,
        p_overlap=args.p_overlap)
    meta = make_conversations(args.out_dir, args.num, params, jobs=args.jobs,
                              first_index=args.first_index)
    print(f"{args.num} conversations, {meta['hours']:.2f} h -> {args.out_dir}")


if __name__ == "__main__":
    run_main(main)
