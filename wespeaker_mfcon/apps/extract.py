"""Stage 3: speaker embeddings of a wav list or a feats list into xvector.ark/scp, from a .pt
or an .onnx model (extract_embeddings; extract.sh runs it in parallel jobs).

Full-length utterances, batched by length: the list is sorted by frame count and cut into
batches of at most batch_size utterances and max_frames padded frames (batch size x longest),
so padding is small. A model that masks padding (MFA-Conformer .pt; an .onnx with a `lengths`
input) batches different lengths; any other batches only utterances of exactly the same
length. Either way an embedding equals the utterance's alone (up to float rounding, < 1e-4).
"""

import logging
import os

import kaldiio
from tqdm import tqdm

from wespeaker_mfcon.apps.embedder import Embedder
from wespeaker_mfcon.scoring.embeddings import write_embeddings
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp

log = logging.getLogger(__name__)


def job_device(device, gpu_list="", job=1):
    """The torch device of parallel job `job` (1-based): with device "cuda" and a comma list
    of GPUs, GPU list[(job - 1) % len]; else `device` itself."""
    if device == "cuda" and gpu_list:
        gpus = gpu_list.split(",")
        return f"cuda:{gpus[(job - 1) % len(gpus)]}"
    return device


def load_inputs(embedder, wav_scp=None, feats_scp=None):
    """[(utt, (T, F) feats)] of every entry of feats_scp (stage-1 fbank) or of wav_scp
    (fbank computed by the embedder), in list order."""
    if feats_scp:
        items = []
        for utt, spec in read_scp(feats_scp).items():
            try:
                items.append((utt, kaldiio.load_mat(spec)))
            except Exception as e:
                raise UserError(f"{feats_scp}: {utt}: cannot read {spec}: {e}") from None
        return items
    return [(utt, embedder.wav_feats(path))
            for utt, path in tqdm(read_scp(wav_scp).items(), desc="fbank", leave=False,
                                  mininterval=2)]


def extract_embeddings(model, out_dir, wav_scp=None, feats_scp=None, config=None,
                       name="xvector", batch_size=None, max_frames=20000, device="cpu",
                       num_threads=1):
    """Embeddings of every utterance of wav_scp or feats_scp with `model` (.pt, its config
    found beside it unless given, or .onnx) -> out_dir/NAME.ark and NAME.scp (kaldiio).

    batch_size: utterances per batch at most (default: 16 for a .pt, 1 for an .onnx, as ONNX
    Runtime on CPU was not faster batched); max_frames: padded frames per batch at most (a
    longer utterance goes alone)."""
    for option, value in (("batch_size", batch_size), ("max_frames", max_frames)):
        if value is not None and value < 1:
            raise UserError(f"--{option} must be a positive integer, got {value}")
    embedder = Embedder(model, config, device, num_threads)
    items = load_inputs(embedder, wav_scp, feats_scp)
    if not items:
        raise UserError(f"{wav_scp or feats_scp}: empty list")
    batch_size = batch_size or (1 if embedder.backend == "onnx" else 16)
    embeds = embedder.embed_many([feats for _, feats in items], batch_size, max_frames,
                                 progress=True)
    os.makedirs(out_dir, exist_ok=True)
    ark, scp = (os.path.abspath(os.path.join(out_dir, f"{name}.{e}")) for e in ("ark", "scp"))
    write_embeddings(ark, scp, [utt for utt, _ in items], embeds)
    log.info("%d embeddings (dim %d) -> %s", len(items), len(embeds[0]), scp)
