"""ONNX export of the embedding network (models/embedding_net.py), checked against PyTorch.

  feats (B, T, F) log-mel fbank -> [mean normalization] -> model -> embs (B, E)

Dynamo exporter, dynamic B and T (T >= MIN_FRAMES), one self-contained file with the metadata
sherpa-onnx's SpeakerEmbeddingExtractor reads (the sample rate is the config's). The MFCon
heads are not part of it.
"""

import logging

import numpy as np
import onnx
import torch

from wespeaker_mfcon.models.embedding_net import MIN_FRAMES
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path


def export_checked(net, conf, path, opset=18, check_lengths=(200, 317), tol=1e-4):
    """Export, add metadata and compare with PyTorch; `path` appears only if the check passes."""
    with atomic_path(path) as tmp:
        export(net, conf.feat_dim, tmp, opset)
        add_metadata(tmp, conf, net.model.embed_dim)
        check_against_torch(net, tmp, conf.feat_dim, check_lengths, tol)


def export(net, feat_dim, path, opset, with_lengths=False):
    """Dynamo export with dynamic batch and time; example batch of 2 (B=1 gets specialized).
    with_lengths: a second input lengths (B,) int64, the real frames of each padded row
    (EmbeddingNet masks the rest); sherpa-onnx feeds feats only, so the deployable
    file is exported without it."""
    batch, time = torch.export.Dim("B"), torch.export.Dim("T", min=MIN_FRAMES)
    example, names, shapes = (torch.randn(2, 200, feat_dim),), ["feats"], ({0: batch, 1: time},)
    if with_lengths:
        example, names = example + (torch.tensor([200, 150]),), names + ["lengths"]
        shapes += ({0: batch},)
    program = torch.onnx.export(net, example, dynamo=True, external_data=False,
                                input_names=names, output_names=["embs"],
                                dynamic_shapes=shapes, opset_version=opset, verbose=False)
    program.save(path, external_data=False)


def add_metadata(path, conf, embed_dim):
    """Metadata for sherpa-onnx's SpeakerEmbeddingExtractor (wespeaker-style model)."""
    meta = {"framework": "wespeaker", "language": "English", "url": "", "comment":
            f"wespeaker_mfcon {conf.model}" + (" + MFCon" if conf.mfcon_args.enable else ""),
            "output_dim": str(embed_dim), "sample_rate": str(conf.sample_rate),
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
