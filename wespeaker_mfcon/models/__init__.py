"""Speaker embedding models.

Every model maps feats (B, T, F) to (embeds (B, E), blocks), where blocks is the list of
per-block outputs (B, T', C_k), and has attributes `block_dims` (the C_k) and `embed_dim`.
"""

import torch.nn as nn

from wespeaker_mfcon.models.ecapa_tdnn import ECAPATDNN
from wespeaker_mfcon.models.mfa_conformer import MFAConformer
from wespeaker_mfcon.models.projections import build_projection

MODELS = {
    "mfa_conformer": MFAConformer,
    "ecapa_tdnn": ECAPATDNN,
}


def build_model(model_type: str, model_args: dict = None) -> nn.Module:
    """model_type in {"mfa_conformer", "ecapa_tdnn"}; model_args are the constructor kwargs."""
    key = model_type.lower()
    if key not in MODELS:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {sorted(MODELS)}")
    return MODELS[key](**(model_args or {}))


__all__ = ["MODELS", "MFAConformer", "ECAPATDNN", "build_model", "build_projection"]
