"""Static int8 quantization of an exported embedding network (QDQ), calibrated on training fbank.

  fp32 .onnx --quant_pre_process--> shapes known, basic graph clean-up
             --quantize_static (QDQ, per-channel int8 weights, uint8 activations)--> int8 .onnx
             --check--> min cosine to fp32 over held-out training utterances >= bound

Calibration: activation ranges (MinMax) from the fbank of `num_utts` training utterances
(feats.scp of stage 1, or fbank computed from wav.scp) drawn at random, each cut to at most
`max_frames` frames; a few other training utterances (at most CHECK_FRAMES frames each) are
the held-out check set.

Operator selection (from the per-operator profile, benchmarks/profile_onnx.py):
  * quantized: MatMul with a constant weight (macaron FFNs, Q/K/V/out and position
    projections: about half of the fp32 time of the paper config), and the pointwise
    (kernel 1) convolutions of the conformer conv modules;
  * MatMul outputs stay float (DQ -> MatMul with no Q after it), so ORT fuses each into
    MatMulIntegerToFloat (int8 GEMM, float output, ~5x fp32 at the FFN shapes) instead of
    QLinearMatMul (requantized uint8 output, ~1.6x);
  * left in fp32: the activation x activation MatMuls of attention (head dim 64; no gain), the
    depthwise and subsampling convolutions (no gain measured), everything else.
The result keeps the input/output names, the dynamic B and T axes and the sherpa-onnx
metadata of the fp32 file; it uses only standard ONNX ops (QuantizeLinear/DequantizeLinear).
"""

import logging
import os
import tempfile

import numpy as np
import onnx

from wespeaker_mfcon.models.embedding_net import min_length
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, read_scp

# MatMul outputs unquantized -> MatMulIntegerToFloat (see the module docstring)
QDQ_OPTIONS = {"OpTypesToExcludeOutputQuantization": ["MatMul"]}
CHECK_FRAMES = 3000  # 30 s: attention is quadratic in the length


def calibration_feats(data_dir, num_utts=32, max_frames=500, fbank_kwargs=None, held_out=8):
    """Fbank of training utterances for calibration and for the check.

    fbank_kwargs: the model's front end (TrainConfig.fbank_kwargs(); FBANK_DEFAULTS if None):
    its num_mel_bins are the features' dimension, and wavs are read at its sample_rate.
    Returns (calib, check): lists of (1, T, F) float32 arrays; `num_utts` utterances drawn at
    random (seed 0) from the data dir's list for calibration, cut to their first `max_frames`
    frames, and up to `held_out` other utterances (up to CHECK_FRAMES frames) for the check.
    """
    keys, load = _feature_source(data_dir, fbank_kwargs or {})
    if len(keys) < 2:
        raise UserError(f"{data_dir}: {len(keys)} utterance(s); calibration needs at least 2")
    order = np.random.default_rng(0).permutation(len(keys))
    n_cal = min(num_utts, len(keys) - 1)
    calib = [_batch_of_one(load(keys[i])[:max_frames]) for i in order[:n_cal]]
    check = [_batch_of_one(load(keys[i])[:CHECK_FRAMES]) for i in order[n_cal:n_cal + held_out]]
    return calib, check


def _batch_of_one(mat):
    """(T, F) -> (1, max(T, MIN_FRAMES), F), short ones repeated in time as inference does."""
    return np.ascontiguousarray(min_length(mat)[None])


def _feature_source(data_dir, fbank_kwargs):
    """(sorted keys, key -> (T, F) float32 fbank) from feats.scp, else wav.scp."""
    from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS

    fbank_kwargs = dict(FBANK_DEFAULTS, **fbank_kwargs)
    feat_dim = fbank_kwargs["num_mel_bins"]
    feats_scp, wav_scp = (os.path.join(data_dir, name) for name in ("feats.scp", "wav.scp"))
    if os.path.isfile(feats_scp):
        import kaldiio
        table = read_scp(feats_scp)

        def load(key):
            return _checked(np.asarray(kaldiio.load_mat(table[key]), np.float32),
                            f"{feats_scp}: {key}", feat_dim)
    elif os.path.isfile(wav_scp):
        table = read_scp(wav_scp)

        def load(key):
            return _checked(_wav_fbank(table[key], fbank_kwargs), f"{wav_scp}: {key}", feat_dim)
    else:
        raise UserError(f"{data_dir}: no feats.scp or wav.scp to calibrate on (give the "
                        "training data dir, e.g. data/train)")
    return sorted(table), load


def _wav_fbank(path, fbank_kwargs):
    """(T, F) fbank of a wav file with the model's front end, as stage 1 computes it."""
    import torch

    from wespeaker_mfcon.frontend.fbank import fbank
    from wespeaker_mfcon.utils.audio import load_wav

    wave = torch.from_numpy(load_wav(path, fbank_kwargs["sample_rate"])) * 32768.0
    return fbank(wave, **fbank_kwargs).numpy()


def _checked(mat, where, feat_dim):
    if mat.ndim != 2 or mat.shape[1] != feat_dim or not len(mat):
        raise UserError(f"{where}: features of shape {mat.shape}, the model takes (T, {feat_dim})")
    if not np.isfinite(mat).all():
        raise UserError(f"{where}: NaN or Inf in the features")
    return mat


def select_nodes(model):
    """Names of the nodes to quantize: MatMul with a constant B, Conv with kernel size 1."""
    weights = {init.name: init for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if len(node.input) < 2 or node.input[1] not in weights:
            continue
        dims = weights[node.input[1]].dims
        if node.op_type == "MatMul" or (node.op_type == "Conv" and all(d == 1 for d in dims[2:])):
            names.append(node.name)
    return names


class _FeatsReader:
    """onnxruntime CalibrationDataReader over a list of (1, T, F) arrays."""

    def __init__(self, feats):
        self._it = iter(feats)

    def get_next(self):
        feats = next(self._it, None)
        return None if feats is None else {"feats": feats}


def quantize_int8(fp32_path, out_path, calib, check, min_cosine=0.99):
    """Write the int8 QDQ model of `fp32_path` to `out_path` (only if the check passes).

    Returns the min cosine to fp32 over `check`. UserError below `min_cosine`.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="quantize_") as tmp, atomic_path(out_path) as dst:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        nodes = select_nodes(onnx.load(pre))
        if not nodes:  # quantize_static would take an empty list as "every node"
            raise UserError(f"{fp32_path}: no MatMul or pointwise Conv with constant weights "
                            "to quantize")
        logging.info("int8: quantizing %d MatMul/pointwise Conv nodes, calibrating on %d "
                     "utterances", len(nodes), len(calib))
        quantize_static(pre, dst, _FeatsReader(calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                        extra_options=dict(QDQ_OPTIONS))
        copy_metadata(fp32_path, dst, quantization=f"int8 static QDQ, {len(nodes)} nodes")
        worst = check_against_fp32(fp32_path, dst, check, min_cosine)
    return worst


def copy_metadata(src, dst, **extra):
    """The fp32 file's metadata (sherpa-onnx reads it) onto dst, plus `extra` keys."""
    meta = {p.key: p.value for p in onnx.load(src, load_external_data=False).metadata_props}
    meta.update(extra)
    model = onnx.load(dst)
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, dst)


def check_against_fp32(fp32_path, int8_path, feats_list, min_cosine):
    """Min cosine between the two models' embeddings; UserError below min_cosine."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ref, new = (ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
                for p in (fp32_path, int8_path))
    worst = 1.0
    for feats in feats_list:
        a, b = (s.run(["embs"], {"feats": feats})[0][0] for s in (ref, new))
        worst = min(worst, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    logging.info("int8 vs fp32: min cosine %.5f over %d held-out utterances", worst,
                 len(feats_list))
    if worst < min_cosine:
        raise UserError(f"{int8_path}: int8 embeddings differ from fp32 (min cosine "
                        f"{worst:.4f} < {min_cosine}); calibrate on more data or keep fp32")
    return worst
