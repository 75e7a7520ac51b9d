"""How the MFCon term is weighted against the classification loss (mfcon_args.weighting).

Every scheme turns (L_cls, L_mfcon) into the training loss L; lambda_t is its effective weight.

  constant     L = L_cls + lambda * L_mfcon                        lambda = mfcon_args.weight
  loss_ratio   L = L_cls + lambda_t * L_mfcon,  lambda_t = r * sg(L_cls) / sg(L_mfcon)
               (sg = stop-gradient): the weighted MFCon term is r times L_cls in value in
               every batch, and its gradient is lambda_t * dL_mfcon.
  grad_ratio   L = L_cls + lambda_t * L_mfcon, lambda_t chosen so that on the last feature
               map both losses share (the output h of the last chosen block: it feeds the
               MFA concatenation and the last MFCon head)
                   ||lambda_t * dL_mfcon/dh|| = r * ||dL_cls/dh||          (GradNorm-style)
               Both gradients are read by hooks during the ordinary backward (no second
               backward): dL_mfcon/dh on an alias of h that only the MFCon head uses, the
               total on h itself, dL_cls/dh = total - MFCon part. Their norm ratio is smoothed
               by an EMA (momentum m, bias-corrected) and sets lambda for the next step;
               step 0 uses lambda_0 = mfcon_args.weight.
  uncertainty  L = exp(-s_c) L_cls + s_c + exp(-s_m) L_mfcon + s_m       (Kendall et al. 2018)
               s_c, s_m learned log-variances (parameters, so in the optimizer and the
               checkpoint); s_m starts at -log(mfcon_args.weight), s_c at 0. At their optimum
               exp(-s) = 1/L, so the effective weight exp(s_c - s_m) tends to L_cls / L_mfcon.
  schedule     L = L_cls + lambda_t * L_mfcon, lambda_t = weight * min(1, (t + 1) / ramp_steps)
               with t the training step counted by the scheme itself (a linear ramp-up).

State (EMA, step counter, log-variances) lives in buffers and parameters of the module, so a
checkpoint of ModelWithHeads holds it and a resumed run continues bit-identically.
"""

import contextlib
import math

import torch
import torch.nn as nn

WEIGHTINGS = ("constant", "grad_ratio", "loss_ratio", "uncertainty", "schedule")

# The rule of the lambda study (docs/lambda_study.md), fixed before its held-out check: a
# constant lambda that makes the MFCon gradient START_RATIO_TARGET times the classification
# gradient at the backbone at the start of training, as analysis/paper_gradients.py measures it
# (step 0, synthetic speakers of the config's shape). 9.4 = lambda 30 (the best constant at 200
# training speakers, tied best at 40) x 0.313 (the small config's raw ratio at step 0, mean over
# heads of 40, 200 and 1,211 classes).
START_RATIO_TARGET = 9.4


def rule_weight(raw_ratio_start: float, target: float = START_RATIO_TARGET) -> float:
    """The rule's lambda for a config whose raw gradient ratio at step 0 is raw_ratio_start."""
    return target / raw_ratio_start


class MFConWeighting(nn.Module):
    """Base: forward(L_cls, L_mfcon) -> L (scalars); weight = mfcon_args.weight."""
    adaptive = True             # lambda changes during training (it goes in the epoch log)

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def tap(self, blocks: list, block_ids: list) -> list:
        """The block outputs [(B, T', C_k)] the MFCon heads see: the model's own tensors for
        every scheme but grad_ratio."""
        return blocks

    def effective_weight(self) -> torch.Tensor:
        """lambda of the last forward, a detached scalar (for the log)."""
        return torch.tensor(float(self.weight))

    @contextlib.contextmanager
    def hooks_paused(self):
        """Backward passes run inside leave the scheme's state alone (training/diagnostics.py
        reads gradients with extra passes); only grad_ratio has hooks to pause."""
        yield


class ConstantWeighting(MFConWeighting):
    """L = L_cls + lambda * L_mfcon with a fixed float lambda (the historical behaviour)."""
    adaptive = False

    def forward(self, loss_cls: torch.Tensor, loss_mfcon: torch.Tensor) -> torch.Tensor:
        return loss_cls + self.weight * loss_mfcon


class LossRatioWeighting(MFConWeighting):
    """lambda_t = r * L_cls / L_mfcon, both detached: the weighted term is r * L_cls."""

    def __init__(self, target_ratio: float):
        super().__init__(0.0)
        self.target_ratio = target_ratio
        self.register_buffer("last_weight", torch.zeros(()), persistent=False)

    def forward(self, loss_cls, loss_mfcon):
        lam = self.target_ratio * loss_cls.detach().float() / \
            loss_mfcon.detach().float().clamp(min=1e-8)
        self.last_weight = lam.detach()
        return loss_cls + lam * loss_mfcon

    def effective_weight(self):
        return self.last_weight.detach().cpu()


class ScheduleWeighting(MFConWeighting):
    """lambda_t = weight * min(1, (t + 1) / ramp_steps); t counted in training forwards."""

    def __init__(self, weight: float, ramp_steps: int):
        super().__init__(weight)
        self.ramp_steps = ramp_steps
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_weight", torch.zeros(()), persistent=False)

    def forward(self, loss_cls, loss_mfcon):
        lam = self.weight * min(1.0, (int(self.step) + 1) / self.ramp_steps)
        if self.training and torch.is_grad_enabled():
            self.step += 1
        self.last_weight = torch.tensor(lam)
        return loss_cls + lam * loss_mfcon

    def effective_weight(self):
        return self.last_weight.detach().cpu()


class UncertaintyWeighting(MFConWeighting):
    """Kendall et al.: exp(-s_c) L_cls + s_c + exp(-s_m) L_mfcon + s_m, s learned."""

    def __init__(self, weight: float):
        super().__init__(weight)
        # [s_cls, s_mfcon]; exp(-s_mfcon) = weight at the start
        self.log_vars = nn.Parameter(torch.tensor([0.0, -math.log(weight)]))

    def forward(self, loss_cls, loss_mfcon):
        s_cls, s_mfcon = self.log_vars[0], self.log_vars[1]
        return (torch.exp(-s_cls) * loss_cls + s_cls
                + torch.exp(-s_mfcon) * loss_mfcon + s_mfcon)

    def effective_weight(self):
        """MFCon weight relative to L_cls: exp(s_c - s_m)."""
        s = self.log_vars.detach().cpu()
        return torch.exp(s[0] - s[1])


class GradRatioWeighting(MFConWeighting):
    """lambda_t so that ||lambda dL_mfcon/dh|| = r ||dL_cls/dh|| on the last chosen block h."""

    def __init__(self, weight: float, target_ratio: float, momentum: float):
        super().__init__(weight)
        self.target_ratio, self.momentum = target_ratio, momentum
        self.register_buffer("lam", torch.tensor(float(weight)))
        self.register_buffer("ema_ratio", torch.zeros(()))     # EMA of ||g_cls|| / ||g_mfcon||
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._lam_used = None       # lambda of the current forward (a detached copy)
        self._grad_mfcon = None     # dL/dh through the MFCon head, in this backward
        self._paused = False        # hooks_paused(): extra backward passes are not measured

    def tap(self, blocks, block_ids):
        """Replace the last chosen block's output by an alias for the MFCon heads and hook
        both: the alias sees lambda * dL_mfcon/dh, the original the total gradient."""
        k = max(block_ids)
        h = blocks[k]
        if not (self.training and torch.is_grad_enabled() and h.requires_grad):
            return blocks
        alias = h.view_as(h)
        alias.register_hook(self._keep_mfcon_grad)
        h.register_hook(self._update_from_total_grad)
        return blocks[:k] + [alias] + blocks[k + 1:]

    def forward(self, loss_cls, loss_mfcon):
        self._lam_used = self.lam.detach().clone()
        return loss_cls + self._lam_used * loss_mfcon

    def effective_weight(self):
        return self.lam.detach().cpu()

    @contextlib.contextmanager
    def hooks_paused(self):
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def _keep_mfcon_grad(self, grad):
        if not self._paused:
            self._grad_mfcon = grad

    @torch.no_grad()
    def _update_from_total_grad(self, grad_total):
        """dL_cls/dh = total - MFCon part; update the EMA of the norm ratio and lambda."""
        if self._paused:
            return
        grad_mfcon = self._grad_mfcon
        self._grad_mfcon = None
        if grad_mfcon is None:
            return
        norm_cls = (grad_total.float() - grad_mfcon.float()).norm()
        norm_mfcon = grad_mfcon.float().norm() / self._lam_used.clamp(min=1e-12)
        if not (torch.isfinite(norm_cls) and torch.isfinite(norm_mfcon)) or norm_mfcon <= 0:
            return                                   # an overflowed fp16 step: skip it
        ratio = norm_cls / norm_mfcon
        self.num_updates += 1
        self.ema_ratio.mul_(self.momentum).add_((1.0 - self.momentum) * ratio)
        debiased = self.ema_ratio / (1.0 - self.momentum ** self.num_updates.double()).float()
        self.lam.copy_(self.target_ratio * debiased)


def build_weighting(mfcon_args) -> nn.Module:
    """The weighting module of mfcon_args (utils/config.MFConArgs)."""
    kind = mfcon_args.weighting
    if kind == "constant":
        return ConstantWeighting(mfcon_args.weight)
    if kind == "loss_ratio":
        return LossRatioWeighting(mfcon_args.target_ratio)
    if kind == "grad_ratio":
        return GradRatioWeighting(mfcon_args.weight, mfcon_args.target_ratio,
                                  mfcon_args.ratio_momentum)
    if kind == "uncertainty":
        return UncertaintyWeighting(mfcon_args.weight)
    if kind == "schedule":
        return ScheduleWeighting(mfcon_args.weight, mfcon_args.ramp_steps)
    raise ValueError(f"unknown MFCon weighting {kind!r}; one of {', '.join(WEIGHTINGS)}")
