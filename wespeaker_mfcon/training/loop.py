"""One optimizer step and one epoch.

  loader batch: chunks (B, T, F) fbank, or (B, N) waveforms for data_type raw; labels (B,)
  -> prepare_batch: on-the-fly fbank (raw), per-utterance mean normalization, SpecAugment
  -> ModelWithHeads under autocast (amp bf16/fp16) -> loss -> backward -> optimizer step
  -> lr schedule step; the margin schedule is set from the global step before the forward.
While global_step < freeze_backbone_steps (fine-tuning), the backbone's gradients are dropped
before the optimizer step: only the heads learn.

Checkpoints are the caller's business (run.py): run_epoch calls on_step after every step.
With diagnostics_interval > 0 (one process, MFCon on), the gradients of both losses are read
on every N-th step before the backward (training/diagnostics.py); training is unchanged.
"""

import logging
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from tqdm import tqdm

from wespeaker_mfcon.dataset.processing import spec_augment
from wespeaker_mfcon.frontend.fbank import apply_cmn
from wespeaker_mfcon.training.diagnostics import GradientDiagnostics
from wespeaker_mfcon.training.model_with_heads import unwrap


def prepare_batch(chunks, frontend, spec_aug_args, device):
    """Loader output -> normalized fbank batch (B, T, F) on device.

    chunks: (B, T, F) fbank, or (B, N) int16-scale waveforms when frontend is given.
    """
    chunks = chunks.to(device, non_blocking=True)
    feats = frontend(chunks) if frontend is not None else chunks
    feats = apply_cmn(feats)                     # the mean normalization of training
    if spec_aug_args:
        feats = spec_augment(feats, **spec_aug_args)
    return feats


@dataclass
class StepOptions:
    """How a step runs, beyond the network and its optimizer."""
    device: torch.device
    frontend: Optional[nn.Module] = None         # fbank on the fly (data_type raw)
    spec_aug_args: Optional[dict] = None         # None = no SpecAugment
    amp_dtype: Optional[torch.dtype] = None      # autocast dtype; None = float32
    grad_clip: float = 0.0
    log_interval: int = 50
    is_main: bool = True                         # rank 0: logs and the progress bar
    freeze_backbone_steps: int = 0               # steps 0..N-1 update only the heads
    diagnostics_interval: int = 0                # gradient diagnostics every N steps; 0 = off


class EpochRunner:
    """Runs epochs of optimizer steps with logging."""

    def __init__(self, net, optimizer, lr_scheduler, margin_scheduler, options):
        self.net, self.optimizer = net, optimizer
        self.lr_scheduler, self.margin_scheduler = lr_scheduler, margin_scheduler
        self.opts = options
        use_scaler = options.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        with_mfcon = unwrap(net).mfcon is not None
        self.diagnostics = (GradientDiagnostics(options.diagnostics_interval)
                            if options.diagnostics_interval and with_mfcon else None)

    def step(self, chunks, labels, global_step):
        """One optimizer step; returns [loss, L_cls, L_mfcon, accuracy, MFCon weight] as a float
        tensor (the weight is lambda_t of the MFCon weighting, 0 without MFCon)."""
        opts = self.opts
        if self.margin_scheduler is not None:
            self.margin_scheduler.step(global_step)
        feats = prepare_batch(chunks, opts.frontend, opts.spec_aug_args, opts.device)
        labels = labels.to(opts.device)
        with torch.autocast(opts.device.type, dtype=opts.amp_dtype or torch.float32,
                            enabled=opts.amp_dtype is not None):
            loss, loss_cls, loss_mfcon, logits, block_losses = self.net(feats, labels)
        if self.diagnostics is not None:
            self._diagnose(loss_cls, block_losses, labels.numel(), global_step)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if global_step < opts.freeze_backbone_steps:
            self._drop_backbone_grads()
        if opts.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), opts.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        acc = (logits.argmax(-1) == labels).float().mean()
        lam = torch.tensor(unwrap(self.net).mfcon_weight(), device=acc.device)
        return torch.stack([loss.detach().float(), loss_cls.detach().float(),
                            loss_mfcon.float(), acc, lam]).cpu()

    def _diagnose(self, loss_cls, block_losses, batch_size, global_step):
        """SupCon vs chance every step; both losses' gradients on every N-th (diagnostics.py)."""
        self.diagnostics.record_losses(block_losses.detach(), batch_size)
        if self.diagnostics.wants(global_step):
            inner = unwrap(self.net)
            terms = inner.mfcon.weights * block_losses / len(inner.mfcon.block_ids)
            self.diagnostics.measure(inner, loss_cls, terms, inner.mfcon_weight())

    def _drop_backbone_grads(self):
        """Warm-up of a fine-tuning run: the optimizer skips parameters without a gradient,
        so the backbone gets no update (no weight decay, no optimizer state) while the heads
        learn. Gradients are still computed and all-reduced, so DDP sees every parameter."""
        for p in unwrap(self.net).model.parameters():
            p.grad = None

    def run_epoch(self, loader, epoch, global_step, on_step=None):
        """One pass over loader; on_step(global_step) is called after every step.
        Returns (global_step, mean [loss, L_cls, L_mfcon, accuracy, MFCon weight])."""
        self.net.train()
        if self.diagnostics is not None:
            self.diagnostics.reset()
        totals, count = torch.zeros(5), 0
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=None if self.opts.is_main else True,
                   leave=False, mininterval=2.0, dynamic_ncols=True)
        for chunks, labels in bar:
            stats = self.step(chunks, labels, global_step)
            global_step += 1
            totals, count = totals + stats, count + 1
            if self.opts.is_main and count % self.opts.log_interval == 0:
                logging.info("epoch %d step %d %s", epoch, global_step,
                             self.describe(totals / count))
            bar.set_postfix(loss=f"{stats[0]:.3f}", acc=f"{stats[3]:.3f}")
            if self.opts.is_main and global_step == self.opts.freeze_backbone_steps:
                logging.info("step %d: the backbone is unfrozen", global_step)
            if on_step is not None:
                on_step(global_step)
        return global_step, (totals / max(count, 1))

    def describe(self, mean_stats):
        loss, loss_cls, loss_mfcon, acc, lam = mean_stats.tolist()
        inner = unwrap(self.net)
        margin = self.margin_scheduler.get_margin() if self.margin_scheduler else \
            getattr(inner.projection, "margin", 0.0)
        lr = self.optimizer.param_groups[0]["lr"]
        adaptive = inner.weighting is not None and inner.weighting.adaptive
        return (f"loss {loss:.4f} cls {loss_cls:.4f} mfcon {loss_mfcon:.4f} acc {acc:.4f} "
                f"lr {lr:.3e} margin {float(margin):.3f}"
                + (f" lambda {lam:.4g}" if adaptive else ""))
