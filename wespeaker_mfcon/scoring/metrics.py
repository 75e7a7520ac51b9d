"""Verification metrics: EER and minDCF, as WeSpeaker defines them."""

import numpy as np


def _error_rates(scores, labels):
    """False-negative and false-positive rates at every threshold (scores sorted ascending).

    Returns (fnr, fpr, thresholds); index i means "accept scores > thresholds[i]"
    with the first entry accepting everything.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_tar, n_non = int(labels.sum()), int((1 - labels).sum())
    if n_tar == 0 or n_non == 0:
        raise ValueError(f"need both target and nontarget trials, got {n_tar} / {n_non}")
    order = np.argsort(scores, kind="mergesort")
    sorted_labels = labels[order]
    # After rejecting the i lowest scores:
    miss = np.concatenate([[0], np.cumsum(sorted_labels)])
    false_accept = n_non - np.concatenate([[0], np.cumsum(1 - sorted_labels)])
    thresholds = np.concatenate([[-np.inf], scores[order]])
    return miss / n_tar, false_accept / n_non, thresholds


def compute_eer(scores, labels):
    """Equal error rate (fraction), linearly interpolated where FNR crosses FPR.

    FNR rises and FPR falls as the threshold rises; between the last point with
    FNR < FPR and the first with FNR >= FPR the two lines are intersected
    (WeSpeaker's definition). Returns (eer, threshold at the crossing point).
    """
    fnr, fpr, thresholds = _error_rates(scores, labels)
    diff = fnr - fpr
    hi = int(np.flatnonzero(diff >= 0)[0])
    if hi == 0:
        return float(fnr[0]), float(thresholds[0])
    lo = hi - 1
    a = (fpr[lo] - fnr[lo]) / ((fnr[hi] - fnr[lo]) - (fpr[hi] - fpr[lo]))
    eer = fnr[lo] + a * (fnr[hi] - fnr[lo])
    return float(eer), float(thresholds[hi])


def compute_min_dcf(scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0):
    """Normalized minimum detection cost (NIST SRE definition)."""
    fnr, fpr, _ = _error_rates(scores, labels)
    dcf = c_miss * fnr * p_target + c_fa * fpr * (1 - p_target)
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(dcf.min() / c_def)


def det_curve(scores, labels):
    """(fpr, fnr) arrays for a DET plot."""
    fnr, fpr, _ = _error_rates(scores, labels)
    return fpr, fnr


def dcf_key(p):
    return f"min_dcf_{p:g}"


def act_dcf_key(p):
    """results.json key of the actual DCF at p_target p (stage 7, calibrated LLRs)."""
    return f"act_dcf_{p:g}"


def evaluate(scores, labels, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
    """Metrics of one score set: EER in percent, minDCF per p_target."""
    n_tar = int(labels.sum())
    n_non = len(labels) - n_tar
    if n_tar == 0 or n_non == 0:
        raise ValueError(f"need both target and nontarget trials, got {n_tar} target / "
                         f"{n_non} nontarget")
    eer, thr = compute_eer(scores, labels)
    res = {"eer": round(eer * 100, 6)}
    for p in p_targets:
        res[dcf_key(p)] = round(compute_min_dcf(scores, labels, p, c_miss, c_fa), 6)
    res.update(eer_threshold=round(thr, 6), num_trials=len(labels), num_target=n_tar,
               num_nontarget=n_non)
    return res
