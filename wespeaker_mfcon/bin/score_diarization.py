"""DER and JER of a hypothesis RTTM against a reference RTTM (pyannote.metrics), overlapped
speech included, with a +-0.25 s collar around reference boundaries and without one.

  python -m wespeaker_mfcon.bin.score_diarization --ref ref.rttm --hyp hyp.rttm [--out der.json]
"""

import argparse
import json

from wespeaker_mfcon.scoring.diarization import format_scores, score_rttm
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.file_utils import atomic_write


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="reference RTTM")
    parser.add_argument("--hyp", required=True, help="hypothesis RTTM")
    parser.add_argument("--out", default=None, help="also write the scores as JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    scores = score_rttm(args.ref, args.hyp)
    print(format_scores(scores))
    if args.out:
        with atomic_write(args.out) as f:
            json.dump(scores, f, indent=1)


if __name__ == "__main__":
    run_main(main)
