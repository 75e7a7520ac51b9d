"""Cosine scoring of embeddings: mean subtraction, L2 normalization, row-wise dot products.

Everything is vectorized: embeddings are mean-subtracted and L2-normalized once, and a trial
score is a row-wise dot product of two rows, chunked for memory.
"""

import numpy as np

from wespeaker_mfcon.scoring.embeddings import speaker_means


def l2_normalize(mat, eps=1e-12):
    mat = np.asarray(mat, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, eps)


def speaker_cohort(keys, raw, utt2spk, mean=None):
    """The AS-norm cohort: speaker means of the cohort embeddings (`mean` subtracted first, if
    given), L2-normalized -> (speakers (C,), cohort (C, D) float32). utt2spk: dict or path."""
    if mean is not None:
        raw = raw - np.asarray(mean, dtype=np.float32)
    speakers, means = speaker_means(keys, raw, utt2spk)
    return speakers, l2_normalize(means)


def prepare(mat, mean=None):
    """Subtract `mean` (if given), then L2-normalize rows."""
    mat = np.asarray(mat, dtype=np.float32)
    if mean is not None:
        mat = mat - np.asarray(mean, dtype=np.float32)
    return l2_normalize(mat)


def cosine_scores(emb, ei, ti, chunk=4096):
    """Row-wise dot products emb[ei] . emb[ti] (emb already normalized), float64."""
    out = np.empty(len(ei), dtype=np.float64)
    for s in range(0, len(ei), chunk):
        a = emb[ei[s:s + chunk]]
        b = emb[ti[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", a, b)
    return out
