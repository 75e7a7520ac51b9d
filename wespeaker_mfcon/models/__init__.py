"""Speaker embedding models.

Every model maps feats (B, T, F) to (embeds (B, E), blocks), where blocks is the list of
per-block outputs (B, T', C_k), and has attributes `block_dims` (the C_k) and `embed_dim`.
"""

import dataclasses

import torch.nn as nn

from wespeaker_mfcon.config.schema import MODEL_ARGS

from wespeaker_mfcon.models.ecapa_tdnn import ECAPATDNN
from wespeaker_mfcon.models.mfa_conformer import MFAConformer
from wespeaker_mfcon.models.projections import build_projection

MODELS = {
    "mfa_conformer": MFAConformer,
    "ecapa_tdnn": ECAPATDNN,
}


def build_model(model_type: str, model_args=None) -> nn.Module:
    """model_type in {"mfa_conformer", "ecapa_tdnn"}; model_args: the config's dataclass
    (config/schema.py MODEL_ARGS), or a dict of some of its keys (the rest: its defaults)."""
    key = model_type.lower()
    if key not in MODELS:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {sorted(MODELS)}")
    if not dataclasses.is_dataclass(model_args):
        model_args = MODEL_ARGS[key](**(model_args or {}))
    model_args.check(None)
    return MODELS[key](**dataclasses.asdict(model_args))


__all__ = ["MODELS", "MFAConformer", "ECAPATDNN", "build_model", "build_projection"]
