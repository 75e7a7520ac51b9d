"""MFCon: multi-scale feature contrastive loss (Dixit et al., arXiv 2410.05037).

Each chosen Conformer block k gets its own training-only head

    block_k (B, T', C_k) -> LayerNorm -> ASP -> BatchNorm1d -> Linear -> z_k (B, 192)

and a supervised contrastive loss (Khosla et al. 2020, "L_out") on z_k:

    L_MFCon = sum_k w_k * SupCon(z_k) / L          (L = number of chosen blocks)

The heads live here, not in the model, so model export never sees them.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from wespeaker_mfcon.models.pooling import AttentiveStatsPool

NEG_FILL = -1e9   # stands in for -inf on the diagonal (finite, so a lone sample gives no NaN)


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor,
                temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss on L2-normalised embeddings.

    For anchor i with positives P(i) (other samples with the same label) and A(i) = all j != i:
        l_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a in A(i)} exp(s_ia / tau) )
    with s the cosine similarity. The loss is the mean of l_i over anchors that have a
    positive, and a differentiable zero when no anchor has one.
    embeddings (N, D), labels (N,) -> scalar.
    """
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        z = F.normalize(embeddings.float(), dim=1)                      # (N, D) float32
        logits = z @ z.t() / temperature                                # (N, N)
    n = z.size(0)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, NEG_FILL)
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()   # stability
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)    # (N, N)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask             # (N, N)
    num_pos = pos.sum(dim=1)                                            # (N,)
    has_pos = (num_pos > 0).to(z.dtype)
    mean_log_prob_pos = log_prob.masked_fill(~pos, 0.0).sum(dim=1) / num_pos.clamp(min=1)
    return -(mean_log_prob_pos * has_pos).sum() / has_pos.sum().clamp(min=1.0)


class BlockHead(nn.Module):
    """LayerNorm -> ASP -> BatchNorm1d -> Linear: (B, T, C) -> (B, embed_dim)."""

    def __init__(self, in_dim: int, embed_dim: int = 192):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.pool = AttentiveStatsPool(in_dim)
        self.bn = nn.BatchNorm1d(2 * in_dim)
        self.fc = nn.Linear(2 * in_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C)
        x = self.pool(self.norm(x).transpose(1, 2))      # (B, 2C)
        return self.fc(self.bn(x))                       # (B, E)


class MFConLoss(nn.Module):
    """Weighted SupCon over per-block heads.

    block_dims: channels of every model block (model.block_dims).
    blocks: indices of the blocks to use (None = all; negative indices count from the end).
    weights: one weight per chosen block (None = all 1).
    forward(blocks, labels) takes the model's full block list and returns
    (loss, per-block SupCon values (L_chosen,)); both keep their graphs.
    """

    def __init__(self, block_dims: list, embed_dim: int = 192, temperature: float = 0.07,
                 blocks: list = None, weights: list = None):
        super().__init__()
        num_blocks = len(block_dims)
        chosen = list(range(num_blocks)) if blocks is None else list(blocks)
        if not chosen:
            raise ValueError("MFConLoss needs at least one block")
        for k in chosen:
            if not -num_blocks <= k < num_blocks:
                raise ValueError(f"block index {k} out of range for {num_blocks} blocks")
        self.block_ids = [k % num_blocks for k in chosen]
        if weights is None:
            weights = [1.0] * len(chosen)
        if len(weights) != len(chosen):
            raise ValueError(f"{len(weights)} MFCon weights for {len(chosen)} blocks")
        self.temperature = temperature
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32),
                             persistent=False)
        self.heads = nn.ModuleList([BlockHead(block_dims[k], embed_dim) for k in self.block_ids])

    def forward(self, blocks: list, labels: torch.Tensor) -> tuple:
        losses = torch.stack([
            supcon_loss(head(blocks[k]), labels, self.temperature)
            for head, k in zip(self.heads, self.block_ids)
        ])                                                           # (L_chosen,)
        loss = (self.weights * losses).sum() / len(self.block_ids)
        return loss, losses
