"""Stage 3: speaker embeddings for a wav list or a feats list, from a .pt or an .onnx model.

  python -m wespeaker_mfcon.bin.extract --model exp/E/models/avg_model.pt \
      --wav_scp data/test/wav.scp --out_dir exp/E/embeddings/test
writes OUT/xvector.ark and OUT/xvector.scp (kaldiio). Full-length utterances, batched by
length: the list is sorted by frame count and cut into batches of at most --batch_size
utterances and --max_frames padded frames (batch size x longest), so padding is small. A model
that masks padding (MFA-Conformer .pt; an .onnx with a `lengths` input) batches different
lengths; any other batches only utterances of exactly the same length. Either way an embedding
equals the utterance's alone (up to float rounding, < 1e-4); --batch_size 1 embeds one at a time.
"""

import argparse
import logging
import os

import kaldiio
import numpy as np
from tqdm import tqdm

from wespeaker_mfcon.apps.embedder import Embedder
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, read_scp


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint .pt or exported .onnx")
    parser.add_argument("--config", default=None,
                        help="config.yaml for a .pt (default: found beside the model)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav_scp", help="'utt path' list of wavs (fbank computed here)")
    src.add_argument("--feats_scp", help="kaldiio feats.scp from stage 1")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--name", default="xvector", help="output basename (NAME.ark/scp)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="utterances per batch at most; 1 = one at a time (default: 16 for "
                             "a .pt, 1 for an .onnx: ONNX Runtime on CPU was not faster batched)")
    parser.add_argument("--max_frames", type=int, default=20000,
                        help="padded frames per batch at most, batch size x longest utterance "
                             "(default 20000 = 200 s); a longer utterance goes alone")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (.pt only)")
    parser.add_argument("--gpu_list", default="",
                        help="with --device cuda and --job J: use GPU list[(J-1) %% len]")
    parser.add_argument("--job", type=int, default=1, help="job number (set by extract.sh)")
    parser.add_argument("--num_threads", type=int, default=1)
    return parser.parse_args(argv)


def load_inputs(args, embedder):
    """[(utt, (T, F) feats)] for every entry of the list, in list order."""
    if args.feats_scp:
        table = read_scp(args.feats_scp)
        items = []
        for utt, spec in table.items():
            try:
                items.append((utt, kaldiio.load_mat(spec)))
            except Exception as e:
                raise UserError(f"{args.feats_scp}: {utt}: cannot read {spec}: {e}") from None
        return items
    table = read_scp(args.wav_scp)
    return [(utt, embedder.wav_feats(path))
            for utt, path in tqdm(table.items(), desc="fbank", leave=False, mininterval=2)]


def check_batching(args):
    for name in ("batch_size", "max_frames"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name} must be a positive integer, got {getattr(args, name)}")


def write_embeddings(ark, scp, utts, embeds):
    """kaldiio ark + scp, each complete or absent; the scp, which points into the ark, last."""
    with atomic_path(scp) as tmp_scp:
        with atomic_path(ark) as tmp_ark:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
                for utt, emb in zip(utts, embeds):
                    writer(utt, emb.astype(np.float32))
        with open(tmp_scp, encoding="utf-8") as f:
            lines = f.read().replace(f"{tmp_ark}:", f"{ark}:")
        with open(tmp_scp, "w", encoding="utf-8") as f:
            f.write(lines)


def main(argv=None):
    args = get_args(argv)
    check_batching(args)
    device = args.device
    if device == "cuda" and args.gpu_list:
        gpus = args.gpu_list.split(",")
        device = f"cuda:{gpus[(args.job - 1) % len(gpus)]}"
    embedder = Embedder(args.model, args.config, device, args.num_threads)
    items = load_inputs(args, embedder)
    if not items:
        raise UserError(f"{args.wav_scp or args.feats_scp}: empty list")
    batch_size = args.batch_size or (1 if embedder.backend == "onnx" else 16)
    embeds = embedder.embed_many([feats for _, feats in items], batch_size, args.max_frames,
                                 progress=True)
    os.makedirs(args.out_dir, exist_ok=True)
    ark, scp = (os.path.abspath(os.path.join(args.out_dir, f"{args.name}.{e}"))
                for e in ("ark", "scp"))
    write_embeddings(ark, scp, [utt for utt, _ in items], embeds)
    logging.info("%d embeddings (dim %d) -> %s", len(items), len(embeds[0]), scp)


if __name__ == "__main__":
    run_main(main)
