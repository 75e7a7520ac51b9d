"""`wespeaker-mfcon` console script: embeddings and scores for wav files.

  wespeaker-mfcon embed   --model exp/E  a.wav b.wav [--out embs.npy]
  wespeaker-mfcon compare --model exp/E/models/avg_model.onnx a.wav b.wav [--threshold T]

--model is an experiment dir (uses models/avg_model.pt), a .pt checkpoint or an .onnx file.
"""

import argparse
import sys

import numpy as np

from wespeaker_mfcon.inference import load_model
from wespeaker_mfcon.utils.cli import run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(prog="wespeaker-mfcon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="print (or save) one embedding per wav")
    embed.add_argument("wavs", nargs="+")
    embed.add_argument("--out", help="save a (N, E) .npy instead of printing")
    compare = sub.add_parser("compare", help="cosine score of two wavs")
    compare.add_argument("wavs", nargs=2)
    compare.add_argument("--threshold", type=float, default=None,
                         help="also print same/different at this score threshold")
    for p in (embed, compare):
        p.add_argument("--model", required=True, help="exp dir, .pt or .onnx")
        p.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    embedder = load_model(args.model, args.device)
    if args.command == "embed":
        embs = np.stack([embedder.embed_wav(w) for w in args.wavs])
        if args.out:
            np.save(args.out, embs)
        else:
            for wav, emb in zip(args.wavs, embs):
                print(wav, " ".join(f"{v:.6f}" for v in emb))
        return
    score = embedder.score(*args.wavs)
    verdict = ""
    if args.threshold is not None:
        verdict = " same" if score >= args.threshold else " different"
    print(f"{score:.6f}{verdict}")


def entry():
    run_main(main)


if __name__ == "__main__":
    sys.exit(entry())
