"""Embeddings from a trained model: a .pt checkpoint (PyTorch) or an exported .onnx file.

  feats (B, T, 80) log-mel fbank -> [mean normalization inside] -> embs (B, E)

EmbeddingNet is the deployable network (also what export_onnx exports). Embedder wraps
either backend behind one interface and turns wav files into embeddings and scores.
"""

import os

import numpy as np
import torch
import torch.nn as nn

from wespeaker_mfcon.frontend.fbank import apply_cmn, fbank
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.utils.config import load_train_config
from wespeaker_mfcon.utils.errors import UserError


MIN_FRAMES = 20  # the exported graph's minimum length (export_onnx uses the same bound)


class EmbeddingNet(nn.Module):
    """Per-utterance mean normalization followed by the model; returns only the embedding."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats):
        # feats: (B, T, F) -> embs: (B, E)
        embeds, _ = self.model(apply_cmn(feats))
        return embeds


def find_config(model_path):
    """exp/NAME/config.yaml for exp/NAME/models/X.pt (or beside the file)."""
    here = os.path.dirname(os.path.abspath(model_path))
    for candidate in (os.path.join(here, "config.yaml"),
                      os.path.join(os.path.dirname(here), "config.yaml")):
        if os.path.isfile(candidate):
            return candidate
    raise UserError(f"{model_path}: no config.yaml beside it or in its parent dir; "
                    "give --config")


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
        if self.backend == "onnx":
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(model_path, opts,
                                                providers=["CPUExecutionProvider"])
            self.num_mel_bins = self.session.get_inputs()[0].shape[2]
        else:
            self.net, conf = load_embedding_net(model_path, config)
            self.device = torch.device(device)
            self.net.to(self.device)
            self.num_mel_bins = conf.feat_dim

    def embed_feats(self, feats):
        """feats: (B, T, F) float32 numpy (same T within the batch) -> (B, E) numpy.

        Utterances shorter than MIN_FRAMES are repeated in time up to it (as training does
        for short utterances): the convolutional front of the models needs a few frames.
        """
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if feats.shape[1] < MIN_FRAMES:
            reps = -(-MIN_FRAMES // feats.shape[1])
            feats = np.ascontiguousarray(np.tile(feats, (1, reps, 1))[:, :MIN_FRAMES])
        if self.backend == "onnx":
            return self.session.run(["embs"], {"feats": feats})[0]
        with torch.inference_mode():
            return self.net(torch.from_numpy(feats).to(self.device)).float().cpu().numpy()

    def wav_feats(self, path):
        """(T, F) fbank of a wav file with the project's front end (FBANK_DEFAULTS), as stage 1
        computes it and as sherpa-onnx's SpeakerEmbeddingExtractor does."""
        from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS
        from wespeaker_mfcon.utils.audio import load_wav

        wave = torch.from_numpy(load_wav(path, FBANK_DEFAULTS["sample_rate"])) * 32768.0
        return fbank(wave, **dict(FBANK_DEFAULTS, num_mel_bins=self.num_mel_bins)).numpy()

    def embed_wav(self, path):
        return self.embed_feats(self.wav_feats(path)[None])[0]

    def score(self, path1, path2):
        """Cosine similarity of two wavs' embeddings."""
        a, b = self.embed_wav(path1), self.embed_wav(path2)
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def load_model(model, device="cpu", num_threads=1):
    """Python API: an Embedder for an experiment dir (its models/avg_model.pt), a .pt
    checkpoint or an .onnx file.  load_model("exp/E").score("a.wav", "b.wav")"""
    if os.path.isdir(model):
        model = os.path.join(model, "models", "avg_model.pt")
    if not os.path.isfile(model):
        raise UserError(f"{model}: no such model file")
    return Embedder(model, device=device, num_threads=num_threads)
