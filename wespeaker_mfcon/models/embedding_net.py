"""The deployable network: per-utterance mean normalization, then the backbone's embedding.

  feats (B, T, F) log-mel fbank [+ lengths (B,)] -> CMN over the real frames -> model -> (B, E)

This is what stage 3 runs, what stage 5 exports to ONNX (CMN inside the graph) and what the
apps load; the MFCon and classification heads of training are not part of it.
"""

import numpy as np
import torch.nn as nn

from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.frontend.fbank import apply_cmn
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.utils.checkpoint import load_checkpoint

MIN_FRAMES = 20  # the exported graph's minimum length (export_onnx uses the same bound)


class EmbeddingNet(nn.Module):
    """Per-utterance mean normalization followed by the model; returns only the embedding."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def supports_lengths(self):
        return getattr(self.model, "supports_lengths", False)

    def forward(self, feats, lengths=None):
        # feats: (B, T, F), lengths: (B,) int64 real frames (zero-padded batch) or None -> (B, E)
        if lengths is None:
            embeds, _ = self.model(apply_cmn(feats))
        else:
            embeds, _ = self.model(apply_cmn(feats, lengths), lengths)
        return embeds


def min_length(feats):
    """(T, F) -> (max(T, MIN_FRAMES), F): a short utterance repeated in time up to MIN_FRAMES
    (as training does for short utterances): the convolutional front needs a few frames."""
    if feats.shape[0] >= MIN_FRAMES:
        return feats
    reps = -(-MIN_FRAMES // feats.shape[0])
    return np.tile(feats, (reps, 1))[:MIN_FRAMES]


def load_embedding_net(checkpoint, config):
    """Rebuild the model from an experiment's config.yaml and load a checkpoint's weights:
    (EmbeddingNet in eval mode, the TrainConfig). apps/embedder.py finds the config beside
    a checkpoint."""
    conf = load_train_config(config)
    model = build_model(conf.model, conf.model_args)
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state["model"] if "model" in state else state)
    return EmbeddingNet(model).eval(), conf
