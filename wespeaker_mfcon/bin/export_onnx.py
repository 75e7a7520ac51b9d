"""Stage 5: export the embedding network to ONNX and check it against PyTorch.

  python -m wespeaker_mfcon.bin.export_onnx --exp_dir exp/E \
      --checkpoint exp/E/models/avg_model.pt --output exp/E/models/avg_model.onnx

Input `feats` (B, T, 80) log-mel fbank with dynamic B and T; output `embs` (B, E).
Mean normalization is inside the graph; the MFCon heads are not part of it. The file
carries the metadata that sherpa-onnx's SpeakerEmbeddingExtractor reads, so it loads
there as it is. The export fails if ONNX Runtime and PyTorch differ by more than --tol
at two lengths.
"""

import argparse
import logging
import os

from wespeaker_mfcon.inference import load_embedding_net
from wespeaker_mfcon.onnx_export import export_checked
from wespeaker_mfcon.utils.cli import run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", required=True, help="experiment dir with config.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--output", required=True, help="output .onnx")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--tol", type=float, default=1e-4, help="max |ORT - torch| allowed")
    parser.add_argument("--check_lengths", type=int, nargs=2, default=[200, 317],
                        help="two frame counts to compare ORT and PyTorch at")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    net, conf = load_embedding_net(args.checkpoint, os.path.join(args.exp_dir, "config.yaml"))
    export_checked(net, conf, args.output, opset=args.opset, check_lengths=args.check_lengths,
                   tol=args.tol)
    logging.info("exported %s", args.output)


if __name__ == "__main__":
    run_main(main)
