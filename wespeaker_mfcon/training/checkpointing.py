"""The training state in a checkpoint, and resuming from the newest one.

A checkpoint holds everything an unbroken run would still have in memory: the parts of
ModelWithHeads (with the MFCon weighting's state), optimizer, lr schedule, position (epoch,
batch in epoch, global step) and the RNG state. File handling (atomic save, safe load,
naming) is utils/checkpoint.py.
"""

import os
from dataclasses import dataclass

import torch

from wespeaker_mfcon.training.model_with_heads import unwrap
from wespeaker_mfcon.utils import checkpoint as ckpt


@dataclass
class Position:
    """Where training stands: epochs done, batches done in the current epoch, global step."""
    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0


def capture_state(net, optimizer, lr_scheduler, position):
    inner = unwrap(net)
    return {"model": inner.model.state_dict(),
            "projection": inner.projection.state_dict(),
            "mfcon": inner.mfcon.state_dict() if inner.mfcon else {},
            "weighting": inner.weighting.state_dict() if inner.weighting else {},
            "optimizer": optimizer.state_dict(), "scheduler": lr_scheduler.state_dict(),
            "epoch": position.epoch, "batch_in_epoch": position.batch_in_epoch,
            "step": position.step,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}


def restore_state(state, net, optimizer, lr_scheduler):
    """Load a capture_state dict into the parts; returns its Position."""
    inner = unwrap(net)
    inner.model.load_state_dict(state["model"])
    inner.projection.load_state_dict(state["projection"])
    if inner.mfcon is not None:
        inner.mfcon.load_state_dict(state["mfcon"])
        # checkpoints from before mfcon_args.weighting have no "weighting" (constant: no state)
        inner.weighting.load_state_dict(state.get("weighting", {}))
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return Position(state["epoch"], state["batch_in_epoch"], state["step"])


def save_state(models_dir, name, net, optimizer, lr_scheduler, position):
    ckpt.save_checkpoint(capture_state(net, optimizer, lr_scheduler, position),
                         os.path.join(models_dir, name))


def resume_latest(models_dir, steps_per_epoch, net, optimizer, lr_scheduler, device):
    """(Position, path) of the newest checkpoint loaded into the parts; (Position(), None)
    when there is none."""
    latest = ckpt.latest_checkpoint(models_dir, steps_per_epoch)
    if latest is None:
        return Position(), None
    state = ckpt.load_checkpoint(latest, map_location=device)
    return restore_state(state, net, optimizer, lr_scheduler), latest
