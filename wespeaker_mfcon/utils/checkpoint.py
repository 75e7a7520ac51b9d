"""Checkpoints: atomic saves, safe loads (weights_only), finding the latest, averaging.

Layout under exp/NAME/models/: model_<epoch>.pt after each epoch (full training state),
step_<global_step>.pt for the latest mid-epoch save (older ones removed), avg_model.pt.
"""

import glob
import os
import re

import torch

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path


def save_checkpoint(state, path):
    """torch.save through atomic_path: a killed save never leaves a partial file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu"):
    """Load with weights_only=True; a corrupt or truncated file is a UserError naming it."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: "
                        f"{str(e)[:120]}); remove it to fall back to the previous one") from None


def _numbered(models_dir, prefix):
    found = []
    for path in glob.glob(os.path.join(models_dir, f"{prefix}_*.pt")):
        m = re.fullmatch(rf"{prefix}_(\d+)\.pt", os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def epoch_checkpoints(models_dir):
    """[(epoch, path)] of the per-epoch checkpoints, oldest first."""
    return _numbered(models_dir, "model")


def latest_checkpoint(models_dir, steps_per_epoch):
    """Path of the most advanced checkpoint (epoch-end or mid-epoch), or None."""
    candidates = [(e * steps_per_epoch, p) for e, p in epoch_checkpoints(models_dir)]
    candidates += _numbered(models_dir, "step")
    return max(candidates)[1] if candidates else None


def remove_older_step_checkpoints(models_dir, keep_step):
    for step, path in _numbered(models_dir, "step"):
        if step < keep_step:
            os.remove(path)


def average_state_dicts(paths):
    """Element-wise mean of the "model" state dicts in paths (integer buffers kept from the last)."""
    if not paths:
        raise UserError("no checkpoints to average")
    return mean_state_dicts(load_checkpoint(path)["model"] for path in paths)


def mean_state_dicts(state_dicts):
    """Element-wise mean of state dicts, one at a time (float64 sums; integer buffers are
    kept from the last)."""
    total, count = None, 0
    for state in state_dicts:
        count += 1
        if total is None:
            total = {k: v.clone().double() if v.is_floating_point() else v.clone()
                     for k, v in state.items()}
            continue
        for k, v in state.items():
            total[k] = total[k] + v.double() if v.is_floating_point() else v.clone()
    return {k: (v / count).float() if v.is_floating_point() else v for k, v in total.items()}
