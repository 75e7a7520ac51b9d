"""Score normalization: AS-norm (top-N cohort) and S-norm (whole cohort).

The cohort statistics are computed once per utterance with a (utterances x cohort) matrix
product, never per trial; the normalized score is the mean of the enroll and test z-scores.
"""

import logging

import numpy as np

from wespeaker_mfcon.scoring.trials import NORM_METHODS


def clamp_top_n(top_n, cohort_size, log=None):
    if top_n > cohort_size:
        (log or logging.getLogger(__name__)).warning(
            "top_n=%d is larger than the cohort (%d speakers); using %d",
            top_n, cohort_size, cohort_size)
        return cohort_size
    return top_n


def cohort_stats(emb, cohort, top_n=None, chunk=1024):
    """Mean and std (ddof=0) of each row's cohort scores.

    emb (N, D) and cohort (C, D) are normalized; the scores are emb @ cohort.T. With top_n,
    only the top_n highest scores of each row count (AS-norm); with None, all (S-norm).
    One matrix product per block of `chunk` rows.
    """
    n, c = emb.shape[0], cohort.shape[0]
    if c == 0:
        raise ValueError("empty cohort")
    if top_n is not None and not 1 <= top_n <= c:
        raise ValueError(f"top_n must be in [1, {c}], got {top_n}")
    mean = np.empty(n, dtype=np.float64)
    std = np.empty(n, dtype=np.float64)
    cohort_t = np.ascontiguousarray(cohort.T, dtype=np.float32)
    for s in range(0, n, chunk):
        sc = emb[s:s + chunk] @ cohort_t  # (b, C) float32
        if top_n is not None and top_n < c:
            sc = np.partition(sc, c - top_n, axis=1)[:, c - top_n:]
        sc = sc.astype(np.float64)
        m = sc.mean(axis=1)
        mean[s:s + chunk] = m
        std[s:s + chunk] = np.sqrt(np.maximum((sc * sc).mean(axis=1) - m * m, 0.0))
    return mean, std


def normalize_scores(scores, ei, ti, mean, std, eps=1e-8):
    """0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t), with per-utterance (mean, std) rows."""
    sd = np.maximum(std, eps)
    scores = np.asarray(scores, dtype=np.float64)
    return 0.5 * ((scores - mean[ei]) / sd[ei] + (scores - mean[ti]) / sd[ti])


def score_norm(scores, ei, ti, emb, cohort, method="asnorm", top_n=300):
    """Normalize trial scores. emb: (N, D) normalized eval embeddings that ei/ti index;
    cohort: (C, D) normalized speaker means. Stats are computed only for utterances that
    appear in a trial, once each."""
    if method not in NORM_METHODS:
        raise ValueError(f"unknown score normalization {method!r}")
    used, inv = np.unique(np.concatenate([ei, ti]), return_inverse=True)
    mean, std = cohort_stats(emb[used], cohort, top_n if method == "asnorm" else None)
    return normalize_scores(scores, inv[:len(ei)], inv[len(ei):], mean, std)
