"""Score calibration (stage 7): scores -> log-likelihood ratios, Cllr, min Cllr, actual DCF.

Metrics (LLRs in nats, Cllr in bits, labels 1 = target, 0 = nontarget)::

    Cllr      = 0.5 * ( mean_tar log2(1 + exp(-llr)) + mean_non log2(1 + exp(llr)) )
    min Cllr  = Cllr of the best monotone map of the scores to LLRs: PAV (isotonic regression)
                of the labels on the scores gives posteriors P(tar | score) under the empirical
                prior pi = N_tar / N; llr = logit(P) - logit(pi). Tied scores form one block
                (a function of the score maps them to one value). PAV gives llr = -inf only to
                blocks of nontargets and +inf only to blocks of targets, where the cost is
                exactly 0, so the infinities are kept (np.logaddexp handles them) rather than
                clipped. 1 bit = a useless system that always says llr = 0.
    actDCF(p) = (c_miss p P_miss(t) + c_fa (1 - p) P_fa(t)) / min(c_miss p, c_fa (1 - p))
                at the Bayes threshold t = log(c_fa (1 - p) / (c_miss p)) (= -logit(p) for unit
                costs): a target with llr < t is a miss, a nontarget with llr >= t a false
                alarm (BOSARIS). Normalized as minDCF in utils/metrics.py, so actDCF >= minDCF.

Calibration: llr = w . x + b, an affine map of a feature vector x (K,) per trial, fitted by
logistic regression with prior-weighted cross-entropy (BOSARIS' train_llr_fusion, the
"quality measure function" (QMF) of WeSpeaker when x holds quality measures)::

    C(w, b) = p   * mean_tar softplus(-(llr + logit p))
            + (1-p) * mean_non softplus(  llr + logit p ) + l2 * |w_std|^2

with p = p_train (0.5 by default): targets and nontargets weigh as if their prior were p,
whatever their counts, so the output is an LLR that holds for any prior. It is solved with
scipy L-BFGS on standardized features (zero mean, unit std over the trials); the means and
scales are folded into the stored raw-feature weights and bias. Stored as plain JSON
(Calibration.to_dict): {"names": [...], "weights": [...], "bias": b, ...metadata}.

Quality features and the calibration trials drawn from the training set: calibration_trials.py.
"""

import json
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import isotonic_regression, minimize
from scipy.special import expit

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.scoring.metrics import act_dcf_key, evaluate

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- metrics

def _split(values, labels):
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    tar, non = values[labels], values[~labels]
    if tar.size == 0 or non.size == 0:
        raise ValueError(f"need both target and nontarget trials, got {tar.size} / {non.size}")
    return tar, non


def cllr(llrs, labels):
    """Cllr in bits of LLRs (N,) in nats against 0/1 labels (N,)."""
    tar, non = _split(llrs, labels)
    c_tar = np.logaddexp(0.0, -tar).mean()
    c_non = np.logaddexp(0.0, non).mean()
    return float(0.5 * (c_tar + c_non) / math.log(2.0))


def pav_llrs(scores, labels):
    """LLRs (N,) of the optimal monotone map of scores (N,): PAV posteriors, prior removed.

    Ties share one value; the result may hold -inf (nontarget-only blocks) and +inf
    (target-only blocks)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.float64)
    tar, non = _split(scores, labels)
    uniq, inv = np.unique(scores, return_inverse=True)  # ascending, ties pooled
    counts = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    means = np.bincount(inv, weights=labels, minlength=uniq.size) / counts
    post = isotonic_regression(means, weights=counts, increasing=True).x
    post = np.clip(post, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        log_odds = np.log(post) - np.log1p(-post)
    prior_log_odds = math.log(tar.size / non.size)
    return (log_odds - prior_log_odds)[inv]


def min_cllr(scores, labels):
    """Cllr (bits) after the best monotone transform of the scores (N,)."""
    return cllr(pav_llrs(scores, labels), labels)


def bayes_threshold(p_target, c_miss=1.0, c_fa=1.0):
    """LLR threshold of the Bayes decision: log(c_fa (1 - p) / (c_miss p))."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    return math.log(c_fa * (1.0 - p_target) / (c_miss * p_target))


def actual_dcf(llrs, labels, p_target, c_miss=1.0, c_fa=1.0):
    """Normalized DCF of Bayes decisions on LLRs (N,) at p_target."""
    tar, non = _split(llrs, labels)
    t = bayes_threshold(p_target, c_miss, c_fa)
    p_miss = np.mean(tar < t)
    p_fa = np.mean(non >= t)
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return float(dcf / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def evaluate_llrs(llrs, labels, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
    """utils/metrics.evaluate (EER %, minDCF) plus cllr, min_cllr and act_dcf_<p>."""
    res = evaluate(np.asarray(llrs, dtype=np.float64), np.asarray(labels), p_targets,
                   c_miss, c_fa)
    res["cllr"] = round(cllr(llrs, labels), 6)
    res["min_cllr"] = round(min_cllr(llrs, labels), 6)
    for p in p_targets:
        res[act_dcf_key(p)] = round(actual_dcf(llrs, labels, p, c_miss, c_fa), 6)
    return res


# ----------------------------------------------------------------------------- the model

@dataclass
class Calibration:
    """llr = features @ weights + bias, features (N, K) in the order of `names`."""
    names: list
    weights: list
    bias: float
    meta: dict = field(default_factory=dict)

    def llr(self, features):
        """features: (N, K) array, a dict name -> (N,) array, or (N,) when K == 1 -> (N,)."""
        if isinstance(features, dict):
            features = np.stack([np.asarray(features[n], dtype=np.float64) for n in self.names],
                                axis=1)
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1 and len(self.names) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise ValueError(f"expected (N, {len(self.names)}) features {self.names}, "
                             f"got shape {x.shape}")
        return x @ np.asarray(self.weights, dtype=np.float64) + float(self.bias)

    def to_dict(self):
        return {**self.meta, "names": list(self.names),
                "weights": [float(w) for w in self.weights], "bias": float(self.bias)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict; ValueError on a malformed dict. Other keys go to meta."""
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        names, weights, bias = d.get("names"), d.get("weights"), d.get("bias")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError("'names' must be a non-empty list of strings")
        if not isinstance(weights, list) or len(weights) != len(names):
            raise ValueError(f"'weights' must be a list of {len(names)} numbers")
        nums = list(weights) + [bias]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in nums):
            raise ValueError("'weights' and 'bias' must be finite numbers")
        meta = {k: v for k, v in d.items() if k not in ("names", "weights", "bias")}
        return cls(list(names), [float(w) for w in weights], float(bias), meta)

    def save(self, path):
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, path):
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: not a calibration file ({e})") from None


def _objective(theta, z, y, p_train, l2):
    """Prior-weighted cross-entropy (nats) and its gradient; theta = [w (K), b]."""
    w, b = theta[:-1], theta[-1]
    a = z @ w + b + math.log(p_train / (1.0 - p_train))  # posterior log-odds (N,)
    n_tar, n_non = y.sum(), (1 - y).sum()
    cw = np.where(y == 1, p_train / n_tar, (1.0 - p_train) / n_non)  # per-trial weight
    sign = np.where(y == 1, -1.0, 1.0)
    loss = np.sum(cw * np.logaddexp(0.0, sign * a)) + l2 * np.dot(w, w)
    g_a = cw * sign * expit(sign * a)  # d loss / d a
    grad = np.concatenate([z.T @ g_a + 2.0 * l2 * w, [g_a.sum()]])
    return loss, grad


def fit(features, labels, names, p_train=0.5, l2=1e-4, meta=None):
    """Fit llr = w . x + b on features (N, K) and 0/1 labels (N,) -> Calibration.

    Features are standardized for the solver; the returned weights and bias apply to the raw
    features. l2 regularizes the standardized weights (keeps separable data finite)."""
    x = np.asarray(features, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(labels).astype(np.int64)
    if x.shape != (len(y), len(names)):
        raise ValueError(f"features {x.shape} do not match {len(y)} labels x names {names}")
    _split(y, y)  # both classes present
    if not 0.0 < p_train < 1.0:
        raise ValueError(f"p_train must be in (0, 1), got {p_train}")
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    z = (x - mu) / sd
    res = minimize(_objective, np.zeros(x.shape[1] + 1), args=(z, y, p_train, l2),
                   jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    if not res.success:
        log.warning("calibration fit did not converge: %s", res.message)
    w_std, b_std = res.x[:-1], res.x[-1]
    weights = w_std / sd
    bias = b_std - float(np.dot(w_std, mu / sd))
    meta = dict(meta or {}, p_train=p_train)
    return Calibration(list(names), weights.tolist(), float(bias), meta)
