"""Speaker classification heads: embeddings (B, E) + labels (B,) -> logits (B, num_classes).

The caller applies cross-entropy to the logits. Margin heads:

    am_softmax   (CosFace / AM-softmax)  target logit s * (cos(theta) - m)
    arc_margin   (ArcFace / AAM)         target logit s * cos(theta + m)
    softmax      plain linear layer, no margin

Every head has a `margin` attribute and `update(margin)`, driven by MarginScheduler.
With labels=None the heads return the margin-free scaled cosines (for evaluation).
Logits are computed in float32 even under autocast (sqrt(1 - cos^2) is not bf16-safe).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def cosine_logits(embeds: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cosine between every embedding and every class centre, float32. (B, E), (C, E) -> (B, C)."""
    with torch.autocast(device_type=embeds.device.type, enabled=False):
        return F.linear(F.normalize(embeds.float(), dim=1), F.normalize(weight.float(), dim=1))


class AMSoftmaxProjection(nn.Module):
    """Additive margin softmax: logits = s * (cos - m * onehot)."""

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 30.0,
                 margin: float = 0.2):
        super().__init__()
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)

    def update(self, margin: float) -> None:
        self.margin = float(margin)

    def forward(self, embeds: torch.Tensor, labels: torch.Tensor = None) -> torch.Tensor:
        cos = cosine_logits(embeds, self.weight)                       # (B, C)
        if labels is None:
            return self.scale * cos
        onehot = F.one_hot(labels, cos.size(1)).to(cos.dtype)          # (B, C)
        return self.scale * (cos - self.margin * onehot)


class ArcMarginProjection(nn.Module):
    """Additive angular margin (ArcFace): target logit s * cos(theta + m).

    Where theta + m would pass pi, cos(theta + m) is no longer monotone in theta; unless
    easy_margin is set the target logit then continues as cos(theta) - (1 + cos(pi - m)),
    which meets cos(theta + m) = -1 at theta = pi - m.
    """

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 32.0,
                 margin: float = 0.2, easy_margin: bool = False):
        super().__init__()
        self.scale = scale
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)
        self.update(margin)

    def update(self, margin: float) -> None:
        self.margin = float(margin)
        self.cos_m = math.cos(self.margin)
        self.sin_m = math.sin(self.margin)
        self.th = math.cos(math.pi - self.margin)          # cos(theta) > th  <=>  theta + m < pi
        self.mmm = 1.0 + math.cos(math.pi - self.margin)

    def forward(self, embeds: torch.Tensor, labels: torch.Tensor = None) -> torch.Tensor:
        cos = cosine_logits(embeds, self.weight)                       # (B, C)
        if labels is None:
            return self.scale * cos
        sin = (1.0 - cos.pow(2)).clamp(min=1e-12).sqrt()
        phi = cos * self.cos_m - sin * self.sin_m                      # cos(theta + m)
        if self.easy_margin:
            phi = torch.where(cos > 0, phi, cos)
        else:
            phi = torch.where(cos > self.th, phi, cos - self.mmm)
        onehot = F.one_hot(labels, cos.size(1)).to(torch.bool)         # (B, C)
        return self.scale * torch.where(onehot, phi, cos)


class SoftmaxProjection(nn.Module):
    """Plain linear classifier; margin is always 0."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.margin = 0.0
        self.fc = nn.Linear(embed_dim, num_classes)

    def update(self, margin: float) -> None:
        pass

    def forward(self, embeds: torch.Tensor, labels: torch.Tensor = None) -> torch.Tensor:
        return self.fc(embeds)


def build_projection(project_type: str, embed_dim: int, num_classes: int, **args) -> nn.Module:
    """project_type in {"am_softmax", "arc_margin", "softmax"}; args go to the head."""
    heads = {
        "am_softmax": AMSoftmaxProjection,
        "add_margin": AMSoftmaxProjection,
        "arc_margin": ArcMarginProjection,
        "softmax": SoftmaxProjection,
    }
    if project_type not in heads:
        raise ValueError(f"unknown project_type {project_type!r}; "
                         f"expected one of {sorted(heads)}")
    return heads[project_type](embed_dim, num_classes, **args)
