r"""Stage 5: export the embedding network to ONNX and check it against PyTorch.

  python -m wespeaker_mfcon.bin.export_onnx --exp_dir exp/E \
      --checkpoint exp/E/models/avg_model.pt --output exp/E/models/avg_model.onnx \
      [--quantize int8 --calib_data data/train]

Input `feats` (B, T, 80) log-mel fbank with dynamic B and T; output `embs` (B, E).
Mean normalization is inside the graph; the MFCon heads are not part of it. The file
carries the metadata that sherpa-onnx's SpeakerEmbeddingExtractor reads, so it loads
there as it is. The export fails if ONNX Runtime and PyTorch differ by more than --tol
at two lengths.

--quantize int8 also writes OUTPUT_int8.onnx (e.g. avg_model_int8.onnx) beside it: static
QDQ quantization (int8 per-channel weights, uint8 activations) of the constant-weight MatMuls
and pointwise convolutions, calibrated on the fbank of --calib_data (a training data dir with
feats.scp or wav.scp). Same input/output names, dynamic axes and metadata; it fails if the
int8 embeddings of held-out training utterances have a cosine to fp32 below --min_cosine.
Whether it is faster depends on the model and the CPU (ORT's int8 GEMM; measured on x86 with
AVX512-VNNI/AMX, 1 thread): ~1.7x faster than the fp32 file for the paper config, but only
1.1-1.2x for the small config, whose time goes to convolutions that stay fp32. See the README
(Deployment, Speed) for the figures, the EER against fp32 and the operator profile.
"""

import argparse
import logging
import os

from wespeaker_mfcon.apps.embedder import load_embedding_net
from wespeaker_mfcon.export.onnx import export_checked
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError


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
    parser.add_argument("--quantize", choices=["none", "int8"], default="none",
                        help="int8: also write OUTPUT_int8.onnx (static QDQ, needs --calib_data)")
    parser.add_argument("--calib_data", help="training data dir (feats.scp or wav.scp) whose "
                                             "fbank calibrates the int8 activation ranges")
    parser.add_argument("--calib_utts", type=int, default=32,
                        help="utterances to calibrate on (each cut to --calib_frames)")
    parser.add_argument("--calib_frames", type=int, default=500)
    parser.add_argument("--min_cosine", type=float, default=0.99,
                        help="min cosine int8 vs fp32 over held-out training utterances")
    args = parser.parse_args(argv)
    if args.quantize == "int8" and not args.calib_data:
        raise UserError("--quantize int8 needs --calib_data (a training data dir with "
                        "feats.scp or wav.scp)")
    return args


def int8_path(output):
    """avg_model.onnx -> avg_model_int8.onnx"""
    stem, ext = os.path.splitext(output)
    return f"{stem}_int8{ext or '.onnx'}"


def main(argv=None):
    args = get_args(argv)
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    net, conf = load_embedding_net(args.checkpoint, os.path.join(args.exp_dir, "config.yaml"))
    calib = check = None
    if args.quantize == "int8":  # read the data first: a bad data dir fails before the export
        from wespeaker_mfcon.export.quantize import calibration_feats
        calib, check = calibration_feats(args.calib_data, args.calib_utts, args.calib_frames,
                                         conf.fbank_kwargs())
    export_checked(net, conf, args.output, opset=args.opset, check_lengths=args.check_lengths,
                   tol=args.tol)
    logging.info("exported %s", args.output)
    if args.quantize == "int8":
        from wespeaker_mfcon.export.quantize import quantize_int8
        out = int8_path(args.output)
        quantize_int8(args.output, out, calib, check, args.min_cosine)
        logging.info("exported %s", out)


if __name__ == "__main__":
    run_main(main)
