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
"""

import argparse
import sys

import numpy as np

from wespeaker_mfcon import __version__
from wespeaker_mfcon.apps import db_commands
from wespeaker_mfcon.apps.embedder import load_model
from wespeaker_mfcon.utils.entrypoint import probability, run_main


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
    for p in (embed, compare):
        add_model_options(p)
    db_commands.add_commands(sub, add_model_options, add_decision_options)
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    if args.command in db_commands.COMMANDS:
        return db_commands.run(args)
    embedder = load_model(args.model, args.device)
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
