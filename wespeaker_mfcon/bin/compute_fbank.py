"""Stage 1: log-mel fbank (the project's front end) for every utterance of a wav.scp:
dataset/fbank_writer.py.

    python -m wespeaker_mfcon.bin.compute_fbank --wav_scp data/train/wav.scp \\
        --ark fbank/raw_fbank.1.ark --scp fbank/raw_fbank.1.scp \\
        --utt2num_frames fbank/utt2num_frames.1

Features are float32 (T, num_mel_bins) matrices written with kaldiio, no dither, no CMN,
equal to what sherpa-onnx computes from the same wav. The scp is written last, so a job that
fails leaves no scp that looks complete. Bad input (missing or unreadable audio, too short,
non-finite features) stops the job with one 'error:' line naming the wav.scp line and the file.
"""

import argparse

from wespeaker_mfcon.dataset.fbank_writer import FbankComputer, write_fbank
from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS
from wespeaker_mfcon.utils.entrypoint import at_least, run_main


def get_args(argv=None):
    p = argparse.ArgumentParser(description="Compute log-mel fbank features (the project's "
                                "sherpa-onnx-compatible front end) for a wav.scp and write them "
                                "as kaldiio ark/scp.")
    p.add_argument("--wav_scp", required=True, help="'utt path' per line")
    p.add_argument("--ark", required=True, help="output ark file")
    p.add_argument("--scp", required=True, help="output scp file (entries point into --ark)")
    p.add_argument("--utt2num_frames", required=True, help="output 'utt num_frames' file")
    d = FBANK_DEFAULTS
    p.add_argument("--num_mel_bins", type=at_least(1), default=d["num_mel_bins"])
    p.add_argument("--sample_rate", type=at_least(1), default=d["sample_rate"],
                   help="audio at other rates is resampled to this rate, with a warning")
    p.add_argument("--frame_length_ms", type=float, default=d["frame_length_ms"])
    p.add_argument("--frame_shift_ms", type=float, default=d["frame_shift_ms"])
    p.add_argument("--batch_size", type=at_least(1), default=4,
                   help="pieces of audio (of at most --max_chunk_frames frames) per fbank call")
    p.add_argument("--max_chunk_frames", type=at_least(1), default=1000,
                   help="long utterances are computed in pieces of this many frames "
                        "(bounds memory; the result is the same)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--num_threads", type=at_least(1), default=1, help="torch CPU threads")
    p.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    write_fbank(args.wav_scp, args.ark, args.scp, args.utt2num_frames,
                FbankComputer(args.num_mel_bins, args.sample_rate, args.frame_length_ms,
                              args.frame_shift_ms, args.batch_size, args.max_chunk_frames,
                              args.device),
                progress=not args.no_progress, num_threads=args.num_threads)


if __name__ == "__main__":
    run_main(main)
