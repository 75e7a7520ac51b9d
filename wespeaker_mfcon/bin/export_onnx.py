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

import numpy as np
import onnx
import torch

from wespeaker_mfcon.inference import MIN_FRAMES, load_embedding_net
from wespeaker_mfcon.utils.cli import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path


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


def export(net, feat_dim, path, opset):
    """Dynamo export with dynamic batch and time; example batch of 2 (B=1 gets specialized)."""
    example = torch.randn(2, 200, feat_dim)
    batch, time = torch.export.Dim("B"), torch.export.Dim("T", min=MIN_FRAMES)
    program = torch.onnx.export(net, (example,), dynamo=True, external_data=False,
                                input_names=["feats"], output_names=["embs"],
                                dynamic_shapes=({0: batch, 1: time},), opset_version=opset,
                                verbose=False)
    program.save(path, external_data=False)


def add_metadata(path, conf, embed_dim):
    """Metadata for sherpa-onnx's SpeakerEmbeddingExtractor (wespeaker-style model)."""
    meta = {"framework": "wespeaker", "language": "English", "url": "", "comment":
            f"wespeaker_mfcon {conf.model}" + (" + MFCon" if conf.mfcon_args.enable else ""),
            "output_dim": str(embed_dim), "sample_rate": "16000",
            "normalize_samples": "0",              # fbank on int16-scale samples
            "feature_normalize_type": "global-mean"}  # per-utterance mean (also in-graph)
    model = onnx.load(path)
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


def check_against_torch(net, path, feat_dim, lengths, tol):
    """Max |ORT - torch| over a batch of 3 at each length; UserError above tol."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for length in lengths:
        feats = torch.randn(3, length, feat_dim, generator=gen) * 3 + 5
        with torch.inference_mode():
            ref = net(feats).numpy()
        out = session.run(["embs"], {"feats": feats.numpy()})[0]
        diff = float(np.abs(out - ref).max())
        logging.info("ORT vs PyTorch at T=%d: max abs diff %.2e", length, diff)
        worst = max(worst, diff)
    if worst > tol:
        raise UserError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} > {tol}")
    return worst


def main(argv=None):
    args = get_args(argv)
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    net, conf = load_embedding_net(args.checkpoint, os.path.join(args.exp_dir, "config.yaml"))
    feat_dim = conf.feat_dim
    with atomic_path(args.output) as tmp:       # a failed check leaves no .onnx behind
        export(net, feat_dim, tmp, args.opset)
        add_metadata(tmp, conf, net.model.embed_dim)
        check_against_torch(net, tmp, feat_dim, args.check_lengths, args.tol)
    logging.info("exported %s", args.output)


if __name__ == "__main__":
    run_main(main)
