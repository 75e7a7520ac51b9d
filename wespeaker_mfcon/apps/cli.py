"""`wespeaker-mfcon` console script: embeddings, scores and a speaker database for wav files.

  wespeaker-mfcon --version
  wespeaker-mfcon embed    --model exp/E  a.wav b.wav [--out embs.npy]
  wespeaker-mfcon compare  --model exp/E/models/avg_model.onnx a.wav b.wav [--p_target P]
                           [--threshold T]
  wespeaker-mfcon enroll   --model exp/E --db speakers.db --speaker NAME a.wav [b.wav ...]
  wespeaker-mfcon identify --model exp/E --db speakers.db x.wav [--top_k 5] [--p_target P]
                           [--threshold T] [--search auto|exact|index] [--expansion N]
  wespeaker-mfcon db list  --db speakers.db [--paths]
  wespeaker-mfcon db remove --db speakers.db NAME [NAME ...]
  wespeaker-mfcon db reenroll --model exp/NEW --db speakers.db --out new.db
  wespeaker-mfcon db index --db speakers.db

--model is an experiment dir (uses models/avg_model.pt), a .pt checkpoint or an .onnx file.
When the experiment holds a calibration (exp/E/calibration.json, stage 7), compare prints the
log-likelihood ratio and the Bayes decision for the prior --p_target; otherwise the cosine,
and says that there is no calibration. --threshold overrides the decision threshold (on the
LLR when calibrated, on the cosine otherwise).

identify prints one line per candidate, best first: the name, the LLR (calibrated) or the cosine,
and the decision; then "none of them" when no candidate passes (open set; see
apps/identification.py). The database records the model that made it and refuses another one;
`db reenroll` embeds the stored source audio again with a new model into a new database.

  wespeaker-mfcon diarize --model exp/E long.wav [more.wav ...] [--num_speakers N] [--rttm OUT]

writes who spoke when as NIST RTTM (to OUT, else to stdout; file id = the wav's base name).
The speaker count is automatic unless --num_speakers gives it: calibrated AHC when the
experiment holds calibration.json, else spectral clustering (docs/diarization.md).
"""

import argparse
import sys

import numpy as np

from wespeaker_mfcon import __version__
from wespeaker_mfcon.apps import db_commands
from wespeaker_mfcon.apps.diarize import DiarizeOptions, diarize_rttm
from wespeaker_mfcon.apps.embedder import load_model
from wespeaker_mfcon.utils.entrypoint import probability, run_main
from wespeaker_mfcon.utils.file_utils import atomic_write


def add_decision_options(parser):
    parser.add_argument("--p_target", type=probability, default=0.01,
                        help="prior of a target trial for the Bayes decision (default 0.01)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decide at this threshold instead (on the LLR when calibrated, "
                             "on the cosine otherwise)")


def add_model_options(parser):
    parser.add_argument("--model", required=True, help="exp dir, .pt or .onnx")
    parser.add_argument("--device", default="cpu")


def get_args(argv=None):
    parser = argparse.ArgumentParser(prog="wespeaker-mfcon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="print (or save) one embedding per wav")
    embed.add_argument("wavs", nargs="+")
    embed.add_argument("--out", help="save a (N, E) .npy instead of printing")
    compare = sub.add_parser("compare", help="same speaker or not: LLR (calibrated) or cosine")
    compare.add_argument("wavs", nargs=2)
    add_decision_options(compare)
    diarize = sub.add_parser("diarize", help="who spoke when: NIST RTTM")
    diarize.add_argument("wavs", nargs="+")
    diarize.add_argument("--num_speakers", type=int, default=None,
                         help="the number of speakers (default: automatic)")
    diarize.add_argument("--rttm", default=None, help="write the RTTM here (default: stdout)")
    DiarizeOptions.add_arguments(diarize)
    for p in (embed, compare, diarize):
        add_model_options(p)
    db_commands.add_commands(sub, add_model_options, add_decision_options)
    return parser.parse_args(argv)


def run_diarize(args, embedder):
    """RTTM of every wav to args.rttm (atomically) or stdout."""
    options = DiarizeOptions.from_args(args)
    lines = [line for wav in args.wavs
             for line in diarize_rttm(embedder, wav, num_speakers=args.num_speakers,
                                      options=options)]
    if args.rttm:
        with atomic_write(args.rttm) as f:
            f.writelines(line + "\n" for line in lines)
    else:
        for line in lines:
            print(line)


def main(argv=None):
    args = get_args(argv)
    if args.command in db_commands.COMMANDS:
        return db_commands.run(args)
    embedder = load_model(args.model, args.device)
    if args.command == "diarize":
        return run_diarize(args, embedder)
    if args.command == "embed":
        embs = np.stack([embedder.embed_wav(w) for w in args.wavs])
        if args.out:
            np.save(args.out, embs)
        else:
            for wav, emb in zip(args.wavs, embs):
                print(wav, " ".join(f"{v:.6f}" for v in emb))
        return
    print(embedder.score(*args.wavs, p_target=args.p_target, threshold=args.threshold))


def entry():
    run_main(main)


if __name__ == "__main__":
    sys.exit(entry())
