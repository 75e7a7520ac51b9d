"""Learning-rate schedule: linear warm-up, then step or exponential decay (per step)."""

import math


def lr_factor(step, steps_per_epoch, total_steps, *, warmup_steps, decay, step_epochs, gamma,
              final_lr_ratio):
    """Multiplier of the base lr at optimizer step `step` (0-based).

    decay="step": multiply by gamma every step_epochs epochs (paper: halve every 4);
    decay="exponential": geometric from 1 to final_lr_ratio over the whole run;
    decay="none": constant after warm-up.
    The arguments after total_steps are config scheduler_args (defaults: utils/config.py).
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay == "step":
        return warm * gamma ** ((step // steps_per_epoch) // step_epochs)
    if decay == "exponential":
        return warm * math.exp(math.log(final_lr_ratio) * min(1.0, step / max(1, total_steps)))
    if decay == "none":
        return warm
    raise ValueError(f"unknown lr decay {decay!r} (step, exponential, none)")
