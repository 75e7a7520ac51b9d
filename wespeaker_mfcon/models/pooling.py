"""Temporal pooling layers: (B, C, T) frame features -> (B, 2C) utterance statistics.

ASP is the context-aware attentive statistics pooling of ECAPA-TDNN (Desplanques et al. 2020),
laid out as in the SpeechBrain module the MFA-Conformer authors used:

    h_t = [x_t ; mean(x) ; std(x)]                       (global context, 3C)
    e_t = W2 tanh(BN(ReLU(W1 h_t + b1))) + b2            (per channel scores, C)
    a_t = softmax_t(e_t)
    mu = sum_t a_t x_t,  sigma = sqrt(sum_t a_t (x_t - mu)^2)
    out = [mu ; sigma]                                   (2C)

forward(x, mask) with mask (B, T) bool (True = real frame) pools over the real frames only:
padded frames get weight 0 in every mean, std and softmax. mask=None: all frames.
"""

import torch
import torch.nn as nn

VAR_FLOOR = 1e-10


def uniform_weights(x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
    """1/T on every frame of x (B, C, T), or 1/(real frames) on the real frames of mask (B, T)
    and 0 on padding: (B, 1, T)."""
    if mask is None:
        return torch.ones_like(x[:, :1, :]) / x.size(2)
    w = mask[:, None, :].to(x.dtype)                           # (B, 1, T)
    return w / w.sum(dim=2, keepdim=True)


def weighted_stats(x: torch.Tensor, w: torch.Tensor) -> tuple:
    """Weighted mean and std over time. x (B, C, T), w (B, C|1, T) summing to 1 over T."""
    mean = (w * x).sum(dim=2, keepdim=True)                    # (B, C, 1)
    var = (w * (x - mean).pow(2)).sum(dim=2, keepdim=True)     # (B, C, 1)
    return mean, var.clamp(min=VAR_FLOOR).sqrt()


class StatsPool(nn.Module):
    """Plain temporal mean + standard deviation (TSTP)."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        # x: (B, C, T), mask: (B, T) bool or None
        w = uniform_weights(x, mask)                           # (B, 1, T)
        mean, std = weighted_stats(x, w)                       # (B, C, 1) each
        return torch.cat([mean, std], dim=1).squeeze(2)        # (B, 2C)


class AttentiveStatsPool(nn.Module):
    """Context-aware attentive statistics pooling (ASP)."""

    def __init__(self, in_dim: int, attention_channels: int = 128, global_context: bool = True):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.global_context = global_context
        ctx_dim = 3 * in_dim if global_context else in_dim
        self.attention = nn.Sequential(
            nn.Conv1d(ctx_dim, attention_channels, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(attention_channels),
            nn.Tanh(),
            nn.Conv1d(attention_channels, in_dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        # x: (B, C, T), mask: (B, T) bool or None
        h = x
        if self.global_context:
            w = uniform_weights(x, mask)                       # (B, 1, T)
            mean, std = weighted_stats(x, w)                   # (B, C, 1) each
            h = torch.cat([x, mean.expand_as(x), std.expand_as(x)], dim=1)  # (B, 3C, T)
        scores = self.attention(h)                             # (B, C, T)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        alpha = torch.softmax(scores, dim=2)                   # (B, C, T)
        mean, std = weighted_stats(x, alpha)                   # (B, C, 1) each
        return torch.cat([mean, std], dim=1).squeeze(2)        # (B, 2C)


def build_pooling(pooling: str, in_dim: int) -> nn.Module:
    """"ASP" (attentive statistics) or "TSTP" (mean + std)."""
    name = pooling.upper()
    if name == "ASP":
        return AttentiveStatsPool(in_dim)
    if name in ("TSTP", "STATS"):
        return StatsPool(in_dim)
    raise ValueError(f"unknown pooling {pooling!r}; expected 'ASP' or 'TSTP'")
