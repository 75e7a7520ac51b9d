"""ONNX export of the embedding network (models/embedding_net.py), checked against PyTorch;
export_experiment is stage 5 (with the int8 model of export/quantize.py when asked).

  feats (B, T, F) log-mel fbank -> [mean normalization] -> model -> embs (B, E)

Dynamo exporter, dynamic B and T (T >= MIN_FRAMES), one self-contained file with the metadata
sherpa-onnx's SpeakerEmbeddingExtractor reads (the sample rate is the config's). The MFCon
heads are not part of it.
"""

import logging
import os

import numpy as np
import onnx
import torch

from wespeaker_mfcon.models.embedding_net import load_embedding_net
from wespeaker_mfcon.models.embedding_net import MIN_FRAMES
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path


def int8_path(output):
    """avg_model.onnx -> avg_model_int8.onnx"""
    stem, ext = os.path.splitext(output)
    return f"{stem}_int8{ext or '.onnx'}"


def export_experiment(exp_dir, checkpoint, output, opset=18, check_lengths=(200, 317),
                      tol=1e-4, quantize="none", calib_data=None, calib_utts=32,
                      calib_frames=500, min_cosine=0.99):
    """Stage 5: the embedding network of `checkpoint` (rebuilt from exp_dir/config.yaml) to
    `output`, checked against PyTorch at check_lengths frames (tol); with quantize "int8" also
    int8_path(output), calibrated on the fbank of calib_utts utterances of calib_data (a data
    dir with feats.scp or wav.scp) cut to calib_frames, checked to a cosine of min_cosine."""
    if quantize == "int8" and not calib_data:
        raise UserError("--quantize int8 needs --calib_data (a training data dir with "
                        "feats.scp or wav.scp)")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    net, conf = load_embedding_net(checkpoint, os.path.join(exp_dir, "config.yaml"))
    calib = check = None
    if quantize == "int8":  # read the data first: a bad data dir fails before the export
        from wespeaker_mfcon.export.quantize import calibration_feats
        calib, check = calibration_feats(calib_data, calib_utts, calib_frames,
                                         conf.fbank_kwargs())
    export_checked(net, conf, output, opset=opset, check_lengths=check_lengths, tol=tol)
    logging.info("exported %s", output)
    if quantize == "int8":
        from wespeaker_mfcon.export.quantize import quantize_int8
        quantize_int8(output, int8_path(output), calib, check, min_cosine)
        logging.info("exported %s", int8_path(output))


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
    file is exported without it. The nodes carry no per-node metadata."""
    batch, time = torch.export.Dim("B"), torch.export.Dim("T", min=MIN_FRAMES)
    example, names, shapes = (torch.randn(2, 200, feat_dim),), ["feats"], ({0: batch, 1: time},)
    if with_lengths:
        example, names = example + (torch.tensor([200, 150]),), names + ["lengths"]
        shapes += ({0: batch},)
    program = torch.onnx.export(net, example, dynamo=True, external_data=False,
                                input_names=names, output_names=["embs"],
                                dynamic_shapes=shapes, opset_version=opset, verbose=False)
    for node in program.model.graph:    # the exporter's debug notes: stack traces naming
        node.metadata_props.clear()     # this install's source files, 60% of a small model
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
