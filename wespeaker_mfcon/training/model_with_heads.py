"""The network that training optimizes: backbone + classification head + MFCon heads.

One module, so that one DDP wrapper and one optimizer cover all of it:

  feats (B, T, F) -> model -> embeds (B, E), blocks [(B, T', C_k)]
  embeds -> projection (AM/AAM-softmax) -> logits (B, C) -> cross-entropy     = L_cls
  blocks -> MFCon heads -> z_k (B, D) -> SupCon per block, averaged          = L_mfcon
  loss = weighting(L_cls, L_mfcon)       (L_cls + lambda * L_mfcon for weighting constant;
                                          the schemes are in losses/weighting.py)

Only `model` is deployed (inference.py, export); the heads and the weighting exist for
training. The weighting's learned or running state (uncertainty log-variances, grad_ratio
EMA) is part of this module, hence of the optimizer and the checkpoint.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelWithHeads(nn.Module):
    def __init__(self, model, projection, mfcon=None, weighting=None):
        super().__init__()
        self.model, self.projection, self.mfcon = model, projection, mfcon
        if mfcon is not None and weighting is None:
            raise ValueError("ModelWithHeads: MFCon heads need a weighting "
                             "(losses/weighting.py)")
        self.weighting = weighting if mfcon is not None else None

    def forward(self, feats, labels):
        """feats (B, T, F), labels (B,) -> (loss, L_cls, L_mfcon, logits (B, C), per-block
        SupCon (L_chosen,) or None without MFCon). L_mfcon and the logits are detached; L_cls
        and the per-block values keep their graphs (training/diagnostics.py reads them)."""
        embeds, blocks = self.model(feats)
        logits = self.projection(embeds, labels)
        loss_cls = F.cross_entropy(logits.float(), labels)
        if self.mfcon is None:
            loss_mfcon, block_losses = torch.zeros((), device=feats.device), None
            loss = loss_cls
        else:
            blocks = self.weighting.tap(blocks, self.mfcon.block_ids)
            loss_mfcon, block_losses = self.mfcon(blocks, labels)
            loss = self.weighting(loss_cls, loss_mfcon)
        return loss, loss_cls, loss_mfcon.detach(), logits.detach(), block_losses

    def mfcon_weight(self):
        """The effective MFCon weight of the last forward (0 without MFCon), a float."""
        return float(self.weighting.effective_weight()) if self.weighting is not None else 0.0


def unwrap(module):
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") else module
