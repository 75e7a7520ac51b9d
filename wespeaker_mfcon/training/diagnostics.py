"""Why one MFCon weight suits one corpus and not another: the two losses' gradients, measured.

Every `diagnostics_interval` optimizer steps (config key; 0 = off), on that step's batch and
before the ordinary backward, the gradients of each term at the backbone's parameters theta
(the parameters that both losses train) are read with torch.autograd.grad:

    g_cls = dL_cls / dtheta
    g_k   = d(w_k SupCon_k / L) / dtheta            for each chosen block k (lambda left out)
    raw_ratio_k = ||g_k|| / ||g_cls||                the block's pull against the classifier's
    raw_ratio   = ||sum_k g_k|| / ||g_cls||          the whole MFCon term's
    ratio       = lambda_t * raw_ratio               what training actually applies
    cosine      = <sum_k g_k, g_cls> / (||sum_k g_k|| ||g_cls||)   agreement of the two

These passes only read gradients (no .grad is written, no RNG is drawn, BatchNorm statistics
are untouched), so a run with diagnostics trains bit-identically to one without; they cost
L + 1 extra backward passes on the measured steps. The grad_ratio weighting's hooks are
paused while they run.

Every step, for free: SupCon_k relative to its value at chance, log(B - 1) (every similarity
equal, so each positive gets 1 / (B - 1) of the softmax), with B the batch size.
"""

import math

import torch


class GradientDiagnostics:
    """Collects the quantities above over an epoch; summary() gives their means."""

    def __init__(self, interval):
        self.interval = interval
        self.reset()

    def reset(self):
        self.sums, self.counts = {}, {}

    def _add(self, key, value):
        self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.counts[key] = self.counts.get(key, 0) + 1

    def wants(self, global_step):
        return self.interval > 0 and global_step % self.interval == 0

    def record_losses(self, block_losses, batch_size):
        """Every step: SupCon_k / log(B - 1) of each chosen block (block_losses: (L,))."""
        chance = math.log(max(batch_size - 1, 2))
        for k, value in enumerate(block_losses.tolist()):
            self._add(f"supcon_rel_chance_{k}", value / chance)

    def measure(self, net, loss_cls, block_terms, lam):
        """On a measured step: gradients of L_cls and of each w_k SupCon_k / L (block_terms,
        (L,) with their graphs) at the backbone parameters; lam = lambda_t, a float."""
        params = [p for p in net.model.parameters() if p.requires_grad]
        with net.weighting.hooks_paused():
            g_cls = _flat_grad(loss_cls, params)
            g_sum, norms = torch.zeros_like(g_cls), []
            for term in block_terms:
                g_k = _flat_grad(term, params)
                g_sum += g_k
                norms.append(g_k.norm())
        cls_norm = g_cls.norm().clamp(min=1e-30)
        self._add("grad_cls_norm", cls_norm)
        for k, norm in enumerate(norms):
            self._add(f"raw_ratio_{k}", norm / cls_norm)
        raw = g_sum.norm() / cls_norm
        self._add("raw_ratio", raw)
        self._add("ratio", lam * raw)
        self._add("cosine", torch.dot(g_sum, g_cls) / (g_sum.norm() * cls_norm).clamp(min=1e-30))

    def summary(self):
        """{quantity: mean over the epoch} (empty when nothing was recorded)."""
        return {key: self.sums[key] / self.counts[key] for key in sorted(self.sums)}


def _flat_grad(loss, params):
    """d loss / d params as one flat float32 vector (zeros where loss does not reach)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).float().reshape(-1)
                      for g, p in zip(grads, params)])


def describe(summary):
    """One log fragment: the applied ratio, per-block raw ratios, SupCon vs chance."""
    if not summary:
        return ""
    parts = []
    if "ratio" in summary:
        blocks = " ".join(f"{v:.3g}" for v in per_block(summary, "raw_ratio"))
        parts.append(f"grad ratio {summary['ratio']:.3g} (raw {summary['raw_ratio']:.3g}; "
                     f"per block {blocks}; cosine {summary['cosine']:.3f})")
    rel = per_block(summary, "supcon_rel_chance")
    if rel:
        parts.append("supcon/chance " + " ".join(f"{v:.3f}" for v in rel))
    return "; ".join(parts)


def per_block(summary, name):
    """[summary[f"{name}_0"], summary[f"{name}_1"], ...] in block order."""
    values, k = [], 0
    while f"{name}_{k}" in summary:
        values.append(summary[f"{name}_{k}"])
        k += 1
    return values
