"""The network that training optimizes: backbone + classification head + MFCon heads.

One module, so that one DDP wrapper and one optimizer cover all three:

  feats (B, T, F) -> model -> embeds (B, E), blocks [(B, T', C_k)]
  embeds -> projection (AM/AAM-softmax) -> logits (B, C) -> cross-entropy     = L_cls
  blocks -> MFCon heads -> z_k (B, D) -> SupCon per block, averaged          = L_mfcon
  loss = L_cls + lambda * L_mfcon

Only `model` is deployed (inference.py, export); the heads exist for training.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelWithHeads(nn.Module):
    def __init__(self, model, projection, mfcon=None, mfcon_weight=0.0):
        super().__init__()
        self.model, self.projection, self.mfcon = model, projection, mfcon
        self.mfcon_weight = mfcon_weight

    def forward(self, feats, labels):
        """feats (B, T, F), labels (B,) -> (loss, L_cls, L_mfcon, logits (B, C)), all but the
        loss detached."""
        embeds, blocks = self.model(feats)
        logits = self.projection(embeds, labels)
        loss_cls = F.cross_entropy(logits.float(), labels)
        loss_mfcon = torch.zeros((), device=feats.device)
        if self.mfcon is not None:
            loss_mfcon, _ = self.mfcon(blocks, labels)
        loss = loss_cls + self.mfcon_weight * loss_mfcon
        return loss, loss_cls.detach(), loss_mfcon.detach(), logits.detach()


def unwrap(module):
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") else module
