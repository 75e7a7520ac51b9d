"""Embeddings from a trained model: a .pt checkpoint (PyTorch) or an exported .onnx file.

  feats (B, T, 80) log-mel fbank -> [mean normalization inside] -> embs (B, E)

Embedder wraps either backend (models/embedding_net.EmbeddingNet, or ONNX Runtime on the file
stage 5 exports) behind one interface and turns wav files into embeddings and scores.
Embedder.embed_list embeds utterances of different lengths in one zero-padded batch when the
backend can mask the padding (a model with `supports_lengths`, or an .onnx graph with a
`lengths` input); each embedding then equals the utterance's alone up to float rounding. When the
experiment holds a calibration (exp/NAME/calibration.json, written by stage 7), a score comes
with its log-likelihood ratio and the Bayes decision at a stated prior.
"""

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from wespeaker_mfcon.scoring.calibration import Calibration, bayes_threshold
from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS, fbank
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.models.embedding_net import MIN_FRAMES, EmbeddingNet, min_length
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.utils.errors import UserError


def pad_batch(feats_list):
    """[(T_i, F)] -> zero-padded (B, max T_i, F) float32 and lengths (B,) int64."""
    lengths = np.array([f.shape[0] for f in feats_list], dtype=np.int64)
    batch = np.zeros((len(feats_list), lengths.max(), feats_list[0].shape[1]), np.float32)
    for i, f in enumerate(feats_list):
        batch[i, :f.shape[0]] = f
    return batch, lengths


def length_batches(lengths, batch_size, max_frames, exact=False):
    """Index lists over `lengths` (frames per utterance): sorted by length, each batch at most
    batch_size long and batch size x its longest <= max_frames (a longer utterance goes alone);
    with exact, a batch never mixes lengths."""
    batch = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):   # stable: list order ties
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[i] > max_frames
                      or (exact and lengths[batch[0]] != lengths[i])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _experiment_file(model_path, name):
    """exp/NAME/<name> for exp/NAME/models/X.pt (or beside the file); None if absent."""
    here = os.path.dirname(os.path.abspath(model_path))
    for candidate in (os.path.join(here, name), os.path.join(os.path.dirname(here), name)):
        if os.path.isfile(candidate):
            return candidate
    return None


def find_config(model_path):
    """exp/NAME/config.yaml for exp/NAME/models/X.pt (or beside the file)."""
    path = _experiment_file(model_path, "config.yaml")
    if path is None:
        raise UserError(f"{model_path}: no config.yaml beside it or in its parent dir; "
                        "give --config")
    return path


def find_calibration(model_path):
    """The raw-cosine calibration of the experiment (stage 7), or None."""
    path = _experiment_file(model_path, "calibration.json")
    if path is None:
        return None
    calibration = Calibration.load(path)
    if calibration.meta.get("score") != "raw_cosine" or calibration.names != ["score"]:
        raise UserError(f"{path}: not a calibration of the raw cosine score (stage 7 writes "
                        "one as calibration.json)")
    return calibration


@dataclass
class Verdict:
    """A verification result. With a calibration: llr and the Bayes decision at p_target;
    without: the cosine, and a decision only when a threshold on it was given."""
    cosine: float
    llr: Optional[float] = None
    p_target: Optional[float] = None
    threshold: Optional[float] = None    # on the llr when calibrated, else on the cosine
    same: Optional[bool] = None

    def __str__(self):
        decision = "" if self.same is None else (" same" if self.same else " different")
        if self.llr is None:
            rule = "" if self.threshold is None else f" (cosine >= {self.threshold:g})"
            return f"cosine {self.cosine:.6f}{decision}{rule}; no calibration"
        return (f"llr {self.llr:.4f}{decision} (cosine {self.cosine:.6f}; Bayes threshold "
                f"{self.threshold:.4f} at p_target {self.p_target:g})")


def load_embedding_net(checkpoint, config=None):
    """Rebuild the model from the experiment's config.yaml and load weights (eval mode)."""
    conf = load_train_config(config or find_config(checkpoint))
    model = build_model(conf.model, conf.model_args)
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state["model"] if "model" in state else state)
    return EmbeddingNet(model).eval(), conf


class Embedder:
    """Embeddings for fbank batches or wav files from a .pt or an .onnx model."""

    def __init__(self, model_path, config=None, device="cpu", num_threads=1):
        self.backend = "onnx" if model_path.endswith(".onnx") else "torch"
        self.calibration = find_calibration(model_path)
        if self.backend == "onnx":
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(model_path, opts,
                                                providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            self.fbank_kwargs = dict(FBANK_DEFAULTS,
                                     num_mel_bins=self.session.get_inputs()[0].shape[2],
                                     sample_rate=int(meta.get("sample_rate",
                                                              FBANK_DEFAULTS["sample_rate"])))
            names = [i.name for i in self.session.get_inputs()]
            self.supports_padding = "lengths" in names
        else:
            self.net, conf = load_embedding_net(model_path, config)
            self.device = torch.device(device)
            self.net.to(self.device)
            self.fbank_kwargs = conf.fbank_kwargs()
            self.supports_padding = self.net.supports_lengths

    def embed_feats(self, feats):
        """feats: (B, T, F) float32 numpy (same T within the batch) -> (B, E) numpy.

        Utterances shorter than MIN_FRAMES are repeated in time up to it (as training does
        for short utterances): the convolutional front of the models needs a few frames.
        """
        feats = np.require(feats, np.float32, ["C", "W"])           # torch wants writable
        if feats.shape[1] < MIN_FRAMES:
            feats = np.stack([min_length(f) for f in feats])
        return self._run(feats, None)

    def embed_list(self, feats_list):
        """[(T_i, F)] utterances of any lengths -> (B, E) numpy, one batch. Different lengths
        need supports_padding (the padding is masked); equal lengths run unpadded."""
        feats_list = [min_length(np.asarray(f, dtype=np.float32)) for f in feats_list]
        if len({f.shape[0] for f in feats_list}) == 1:
            return self._run(np.stack(feats_list), None)
        if not self.supports_padding:
            raise ValueError("this model cannot mask padding: batch equal lengths only")
        return self._run(*pad_batch(feats_list))

    def embed_many(self, feats_list, batch_size=16, max_frames=20000, progress=False):
        """[(T_i, F)] -> (N, E) numpy in list order, in length-sorted batches (length_batches;
        exact lengths only when the backend cannot mask padding)."""
        lengths = [max(f.shape[0], MIN_FRAMES) for f in feats_list]    # as embed_list pads
        batches = list(length_batches(lengths, batch_size, max_frames,
                                      exact=not self.supports_padding))
        embeds = [None] * len(feats_list)
        for idx in tqdm(batches, desc="embeddings", mininterval=2, dynamic_ncols=True,
                        disable=not progress):
            for i, emb in zip(idx, self.embed_list([feats_list[i] for i in idx])):
                embeds[i] = emb
        return np.stack(embeds)

    def _run(self, feats, lengths):
        """feats (B, T, F) float32, lengths (B,) int64 or None (all T) -> (B, E) numpy."""
        if self.backend == "onnx":
            inputs = {"feats": feats}
            if self.supports_padding:   # a graph with a lengths input always needs one
                inputs["lengths"] = (np.full(len(feats), feats.shape[1], np.int64)
                                     if lengths is None else lengths)
            return self.session.run(["embs"], inputs)[0]
        with torch.inference_mode():
            lengths = None if lengths is None else torch.from_numpy(lengths).to(self.device)
            feats = torch.from_numpy(feats).to(self.device)
            return self.net(feats, lengths).float().cpu().numpy()

    @property
    def num_mel_bins(self):
        return self.fbank_kwargs["num_mel_bins"]

    @property
    def sample_rate(self):
        return self.fbank_kwargs["sample_rate"]

    def wav_feats(self, path):
        """(T, F) fbank of a wav file with the model's front end (its config's; for an .onnx,
        FBANK_DEFAULTS at the rate of its metadata), as stage 1 computes it and as sherpa-onnx's
        SpeakerEmbeddingExtractor does."""
        from wespeaker_mfcon.utils.audio import load_wav

        wave = torch.from_numpy(load_wav(path, self.sample_rate)) * 32768.0
        return fbank(wave, **self.fbank_kwargs).numpy()

    def embed_wav(self, path):
        return self.embed_feats(self.wav_feats(path)[None])[0]

    def cosine(self, path1, path2):
        """Cosine similarity of two wavs' embeddings."""
        a, b = self.embed_wav(path1), self.embed_wav(path2)
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    def score(self, path1, path2, p_target=0.01, threshold=None):
        """Verdict for two wavs: the LLR and the Bayes decision at p_target when the model has
        a calibration, else the cosine. `threshold` overrides the decision threshold (on the
        LLR when calibrated, on the cosine otherwise)."""
        cos = self.cosine(path1, path2)
        if self.calibration is None:
            same = None if threshold is None else cos >= threshold
            return Verdict(cosine=cos, threshold=threshold, same=same)
        llr = float(self.calibration.llr(np.array([cos]))[0])
        if threshold is None:
            threshold = bayes_threshold(p_target)
        return Verdict(cosine=cos, llr=llr, p_target=p_target, threshold=threshold,
                       same=llr >= threshold)


def load_model(model, device="cpu", num_threads=1):
    """Python API: an Embedder for an experiment dir (its models/avg_model.pt), a .pt
    checkpoint or an .onnx file.  print(load_model("exp/E").score("a.wav", "b.wav"))"""
    if os.path.isdir(model):
        model = os.path.join(model, "models", "avg_model.pt")
    if not os.path.isfile(model):
        raise UserError(f"{model}: no such model file")
    return Embedder(model, device=device, num_threads=num_threads)
