"""What one training step computes and how an epoch runs.

SpeakerTrainer bundles the three trained parts, so one DDP wrapper covers them:
  feats (B, T, F) -> model -> embeds (B, E), blocks [(B, T', C_k)]
  embeds -> projection (AM/AAM-softmax) -> logits -> cross-entropy      = L_cls
  blocks -> MFCon heads -> z_k -> SupCon per block, averaged           = L_mfcon
  loss = L_cls + lambda * L_mfcon
"""

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from wespeaker_mfcon.dataset.processing import spec_augment
from wespeaker_mfcon.frontend.fbank import apply_cmn


class SpeakerTrainer(nn.Module):
    def __init__(self, model, projection, mfcon=None, mfcon_weight=0.0):
        super().__init__()
        self.model, self.projection, self.mfcon = model, projection, mfcon
        self.mfcon_weight = mfcon_weight

    def forward(self, feats, labels):
        embeds, blocks = self.model(feats)
        logits = self.projection(embeds, labels)
        loss_cls = F.cross_entropy(logits, labels)
        loss_mfcon = torch.zeros((), device=feats.device)
        if self.mfcon is not None:
            loss_mfcon, _ = self.mfcon(blocks, labels)
        loss = loss_cls + self.mfcon_weight * loss_mfcon
        return loss, loss_cls.detach(), loss_mfcon.detach(), logits.detach()


def prepare_batch(chunks, frontend, spec_aug_args, device):
    """Loader output -> normalized fbank batch on device.

    chunks: (B, T, F) fbank, or (B, N) int16-scale waveforms when frontend is given.
    """
    chunks = chunks.to(device, non_blocking=True)
    feats = frontend(chunks) if frontend is not None else chunks
    feats = apply_cmn(feats)
    if spec_aug_args:
        feats = spec_augment(feats, **spec_aug_args)
    return feats


class EpochRunner:
    """Runs epochs of optimizer steps with logging; checkpoints are the caller's business."""

    def __init__(self, trainer, optimizer, lr_scheduler, margin_scheduler, frontend,
                 spec_aug_args, device, amp_dtype=None, grad_clip=0.0, log_interval=50,
                 is_main=True):
        self.trainer, self.optimizer = trainer, optimizer
        self.lr_scheduler, self.margin_scheduler = lr_scheduler, margin_scheduler
        self.frontend, self.spec_aug_args = frontend, spec_aug_args
        self.device, self.amp_dtype, self.grad_clip = device, amp_dtype, grad_clip
        self.log_interval, self.is_main = log_interval, is_main
        use_scaler = amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None

    def step(self, chunks, labels, global_step):
        if self.margin_scheduler is not None:
            self.margin_scheduler.step(global_step)
        feats = prepare_batch(chunks, self.frontend, self.spec_aug_args, self.device)
        labels = labels.to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            loss, loss_cls, loss_mfcon, logits = self.trainer(feats, labels)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.trainer.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        acc = (logits.argmax(-1) == labels).float().mean()
        return torch.stack([loss.detach(), loss_cls, loss_mfcon, acc]).float().cpu()

    def run_epoch(self, loader, epoch, global_step, on_step=None):
        """One pass over loader; on_step(global_step) is called after every step."""
        self.trainer.train()
        totals, count = torch.zeros(4), 0
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=None if self.is_main else True,
                   leave=False,
                   mininterval=2.0, dynamic_ncols=True)
        for chunks, labels in bar:
            stats = self.step(chunks, labels, global_step)
            global_step += 1
            totals, count = totals + stats, count + 1
            if self.is_main and count % self.log_interval == 0:
                logging.info("epoch %d step %d %s", epoch, global_step,
                             self.describe(totals / count))
            bar.set_postfix(loss=f"{stats[0]:.3f}", acc=f"{stats[3]:.3f}")
            if on_step is not None:
                on_step(global_step)
        return global_step, (totals / max(count, 1))

    def describe(self, mean_stats):
        loss, loss_cls, loss_mfcon, acc = mean_stats.tolist()
        margin = self.margin_scheduler.get_margin() if self.margin_scheduler else \
            getattr(_unwrap(self.trainer).projection, "margin", 0.0)
        lr = self.optimizer.param_groups[0]["lr"]
        return (f"loss {loss:.4f} cls {loss_cls:.4f} mfcon {loss_mfcon:.4f} acc {acc:.4f} "
                f"lr {lr:.3e} margin {float(margin):.3f}")


def _unwrap(module):
    return module.module if hasattr(module, "module") else module
