"""Checkpoints: atomic saves with free-space checks, safe loads (weights_only), finding the
latest, averaging.

Layout under exp/NAME/models/: model_<epoch>.pt after each epoch (full training state),
step_<global_step>.pt for the latest mid-epoch save (the others removed), avg_model.pt.
"""

import glob
import logging
import os
import re

import torch

from wespeaker_mfcon.utils import storage
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path


def save_checkpoint(state, path):
    """torch.save through atomic_path: a killed save never leaves a partial file. The free
    space is checked first (a UserError saying how much the checkpoint needs, before anything
    is written), and a warning follows when the space left would not hold one more like it."""
    needed = state_bytes(state)
    dirname = os.path.dirname(os.path.abspath(path))
    free = storage.free_bytes(dirname)
    if free is not None and free < needed:
        raise UserError(storage.describe(path, "not enough free space", needed))
    with atomic_path(path, needed=needed) as tmp:
        torch.save(state, tmp)
    warn_if_no_room(dirname, os.path.getsize(path), f"a checkpoint like {path}")


def warn_if_no_room(dirname, nbytes, what):
    """Log a warning when dirname has less than nbytes free (what: what needs them)."""
    free = storage.free_bytes(dirname)
    if free is None or free >= nbytes:
        return
    logging.warning("%s: %s free, less than %s needs (%s): free some space before the next "
                    "save, or the run stops there (nothing already written is lost)",
                    dirname, storage.size_text(free), what, storage.size_text(nbytes))


def state_bytes(state):
    """Bytes of the tensors in a (nested) checkpoint state: about what torch.save writes."""
    if isinstance(state, torch.Tensor):
        return state.untyped_storage().nbytes()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


def load_checkpoint(path, map_location="cpu", mmap=False):
    """Load with weights_only=True (mmap: tensors read on use); a corrupt or truncated file is
    a UserError naming it."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
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


def latest_checkpoint(models_dir):
    """Path of the most advanced checkpoint (epoch-end or mid-epoch), or None. Mid-epoch ones
    are ranked by the position they hold (epoch, share of it done), not by their step number:
    a step number counts steps of the world size that saved it."""
    epochs = epoch_checkpoints(models_dir)
    best, path = ((epochs[-1][0], 0.0), epochs[-1][1]) if epochs else ((0, -1.0), None)
    for _, step_path in _numbered(models_dir, "step"):
        state = load_checkpoint(step_path, mmap=True)
        done = state["batch_in_epoch"] * state.get("world_size", 1)   # global batches
        if (state["epoch"], done) > best:
            best, path = (state["epoch"], done), step_path
    return path


def remove_step_checkpoints(models_dir, keep=None):
    """Remove the mid-epoch checkpoints except the one named keep."""
    for _, path in _numbered(models_dir, "step"):
        if os.path.basename(path) != keep:
            os.remove(path)


def remove_partial_saves(models_dir):
    """Remove the temporaries of saves that were killed (SIGKILL leaves them); returns their
    names. Only while no other process of the run writes there: before training starts."""
    found = sorted(glob.glob(os.path.join(models_dir, ".tmp_*")))
    for path in found:
        os.remove(path)
    return [os.path.basename(p) for p in found]


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
