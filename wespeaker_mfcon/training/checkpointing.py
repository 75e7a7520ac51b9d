"""The training state in a checkpoint, and resuming from the newest one.

A checkpoint holds everything an unbroken run would still have in memory: the parts of
ModelWithHeads (with the MFCon weighting's state), optimizer, lr schedule, position (epoch,
batch in epoch, global step, and the world size these count in) and the RNG state. File
handling (atomic save, safe load, naming) is utils/checkpoint.py.

Resumed by a run with another world size (an elastic torchrun job that lost or regained a
node), the position is carried over by the share of the epoch done: b batches per process of
W processes are b * W global batches, which are b * W // W' batches per process of W' (up to
W' - 1 global batches are seen again), and the global step is recounted as epoch x
steps_per_epoch + batch of the new world size, with the lr schedule set to it: the step count
stays that of a run that had always had the new size.
"""

import os
from dataclasses import dataclass

import torch

from wespeaker_mfcon.training.model_with_heads import unwrap
from wespeaker_mfcon.utils import checkpoint as ckpt


@dataclass
class Position:
    """Where training stands: epochs done, batches done in the current epoch, global step,
    the last two counted per process of world_size processes (0: not known, as in a fresh run
    or a checkpoint from before elastic training)."""
    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    world_size: int = 0


def capture_state(net, optimizer, lr_scheduler, position):
    inner = unwrap(net)
    return {"model": inner.model.state_dict(),
            "projection": inner.projection.state_dict(),
            "mfcon": inner.mfcon.state_dict() if inner.mfcon else {},
            "weighting": inner.weighting.state_dict() if inner.weighting else {},
            "optimizer": optimizer.state_dict(), "scheduler": lr_scheduler.state_dict(),
            "epoch": position.epoch, "batch_in_epoch": position.batch_in_epoch,
            "step": position.step, "world_size": position.world_size,
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
    return Position(state["epoch"], state["batch_in_epoch"], state["step"],
                    state.get("world_size", 0))


def save_state(models_dir, name, net, optimizer, lr_scheduler, position):
    ckpt.save_checkpoint(capture_state(net, optimizer, lr_scheduler, position),
                         os.path.join(models_dir, name))


def resume_latest(models_dir, net, optimizer, lr_scheduler, device):
    """(Position, path) of the newest checkpoint loaded into the parts; (Position(), None)
    when there is none. The Position is in the world size that saved it (see in_world)."""
    latest = ckpt.latest_checkpoint(models_dir)
    if latest is None:
        return Position(), None
    state = ckpt.load_checkpoint(latest, map_location=device)
    return restore_state(state, net, optimizer, lr_scheduler), latest


def in_world(position, world_size, steps_per_epoch):
    """The position of a checkpoint saved by position.world_size processes, for a run of
    world_size processes with steps_per_epoch steps per epoch (see the module docstring)."""
    if position.world_size in (0, world_size):
        return Position(position.epoch, position.batch_in_epoch, position.step, world_size)
    batch = min(position.batch_in_epoch * position.world_size // world_size, steps_per_epoch)
    return Position(position.epoch, batch, position.epoch * steps_per_epoch + batch, world_size)


def set_schedule_step(lr_scheduler, step):
    """Put a per-step LambdaLR (builders.build_lr_scheduler) at `step`: its counter and the
    optimizer's lr, as `step` calls of lr_scheduler.step() would have left them."""
    lrs = [base * fn(step) for base, fn in zip(lr_scheduler.base_lrs, lr_scheduler.lr_lambdas)]
    for group, lr in zip(lr_scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    lr_scheduler.last_epoch = step
    lr_scheduler._last_lr = lrs
