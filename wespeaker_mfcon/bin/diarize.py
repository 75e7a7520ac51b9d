"""Speaker diarization of every recording of a wav.scp into one RTTM file.

  python -m wespeaker_mfcon.bin.diarize --model exp/E --wav_scp data/meetings/wav.scp \
      --rttm exp/E/diarization/meetings.rttm [--nj 2] [--num_speakers N | --reco2num_spk F]

--model is what `wespeaker-mfcon compare` takes (an exp dir, a .pt or an .onnx). The speaker
count is automatic (calibrated AHC when the experiment has calibration.json, else spectral
clustering with an eigengap) unless --num_speakers (all recordings) or --reco2num_spk ("reco N"
lines) gives it. Pipeline and options: wespeaker_mfcon/apps/diarize.py.
"""

import argparse

from wespeaker_mfcon.apps.diarize import DiarizeOptions, diarize_scp
from wespeaker_mfcon.utils.entrypoint import run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exp dir, .pt or .onnx")
    parser.add_argument("--wav_scp", required=True, help="'recording-id path' lines")
    parser.add_argument("--rttm", required=True, help="output RTTM (all recordings)")
    parser.add_argument("--nj", type=int, default=1, help="parallel processes")
    parser.add_argument("--num_threads", type=int, default=1, help="torch threads per process")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--num_speakers", type=int, default=None,
                       help="speakers in every recording (default: automatic)")
    count.add_argument("--reco2num_spk", default=None, help="'recording-id N' per recording")
    DiarizeOptions.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    turns = diarize_scp(args.model, args.wav_scp, args.rttm, nj=args.nj,
                        num_speakers=args.num_speakers, reco2num_spk=args.reco2num_spk,
                        options=DiarizeOptions.from_args(args), num_threads=args.num_threads)
    print(f"{turns} speaker turns -> {args.rttm}")


if __name__ == "__main__":
    run_main(main)
