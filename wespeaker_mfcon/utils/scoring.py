"""Scoring back end: trials/score I/O, cosine scoring, AS-norm / S-norm.

Everything is vectorized: embeddings are mean-subtracted and L2-normalized once, a trial
score is a row-wise dot product, and the cohort statistics of AS-norm / S-norm are computed
once per utterance with a (utterances x cohort) matrix product, never per trial.
"""

import logging
import os

import numpy as np

from wespeaker_mfcon.utils.embeddings import speaker_means
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write

LABELS = {"target": 1, "nontarget": 0}
NORM_METHODS = ("asnorm", "snorm")


def _first_few(items, n=5):
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (", ..." if len(items) > n else "")


# ----------------------------------------------------------------------------- I/O

def _read_columns(path, n_fields, what):
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    cols = [[] for _ in range(n_fields)]
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_fields:
                raise UserError(f"{path}:{lineno}: expected {n_fields} fields ({what}), got "
                                f"{len(fields)}: {line.strip()[:80]!r}")
            for c, v in zip(cols, fields):
                c.append(v)
            if fields[-1] not in LABELS:
                raise UserError(f"{path}:{lineno}: label must be 'target' or 'nontarget', got "
                                f"{fields[-1]!r}")
    if not cols[0]:
        raise UserError(f"{path}: no trials")
    return cols


def _labels_array(col):
    return np.fromiter((LABELS[v] for v in col), dtype=np.int8, count=len(col))


def read_trials(path):
    """Kaldi trials "enroll test target|nontarget" -> (enroll, test, labels int8 array)."""
    enroll, test, lab = _read_columns(path, 3, "enroll test target|nontarget")
    return enroll, test, _labels_array(lab)


def read_scores(path):
    """Score file "enroll test score target|nontarget" -> (enroll, test, scores, labels)."""
    enroll, test, sc, lab = _read_columns(path, 4, "enroll test score target|nontarget")
    try:
        scores = np.array(sc, dtype=np.float64)
    except ValueError:
        for lineno, v in enumerate(sc, 1):
            try:
                float(v)
            except ValueError:
                raise UserError(f"{path}: trial {lineno} ({enroll[lineno - 1]} "
                                f"{test[lineno - 1]}): score {v!r} is not a number") from None
        raise
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{path}: {bad.size} scores are NaN/Inf, first at trial {i + 1} "
                        f"({enroll[i]} {test[i]})")
    return enroll, test, scores, _labels_array(lab)


def write_scores(path, enroll, test, scores, labels):
    """Write a score file atomically; labels are 0/1 (or None to omit the column)."""
    names = ("nontarget", "target")
    with atomic_write(path) as f:
        if labels is None:
            f.writelines(f"{e} {t} {s:.6f}\n" for e, t, s in zip(enroll, test, scores.tolist()))
        else:
            f.writelines(f"{e} {t} {s:.6f} {names[int(l)]}\n"
                         for e, t, s, l in zip(enroll, test, scores.tolist(), labels.tolist()))


def trial_name(path):
    """Name of a trial list / score file: basename without .kaldi / .score / .txt."""
    base = os.path.basename(path)
    for ext in (".kaldi", ".score", ".txt"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def trial_lists(data_dir):
    """[(name, path)] of DATA/test/trials/NAME.kaldi, sorted by name (stage 0 writes them);
    an error when there are none."""
    folder = os.path.join(data_dir, "test", "trials")
    names = sorted(f[:-len(".kaldi")] for f in (os.listdir(folder) if os.path.isdir(folder)
                                                 else []) if f.endswith(".kaldi"))
    if not names:
        raise UserError(f"{folder}: no trial lists (*.kaldi); run stage 0 for {data_dir}")
    return [(n, os.path.join(folder, n + ".kaldi")) for n in names]


def parse_score_name(path):
    """'a.score' -> ('a', 'cosine'); 'a.asnorm.score' -> ('a', 'asnorm')."""
    name = trial_name(path)
    stem, dot, system = name.rpartition(".")
    if dot and system in NORM_METHODS:
        return stem, system
    return name, "cosine"


# ----------------------------------------------------------------------------- indexing

def trial_indices(enroll, test, key_index, trials_path="trials", emb_path="embeddings"):
    """Map trial utterances to embedding rows; UserError if any utterance has no embedding."""
    ei = np.fromiter((key_index.get(k, -1) for k in enroll), dtype=np.int64, count=len(enroll))
    ti = np.fromiter((key_index.get(k, -1) for k in test), dtype=np.int64, count=len(test))
    bad = (ei < 0) | (ti < 0)
    if bad.any():
        missing = []
        seen = set()
        for i in np.flatnonzero(bad):
            for k, j in ((enroll[i], ei[i]), (test[i], ti[i])):
                if j < 0 and k not in seen:
                    seen.add(k)
                    missing.append(k)
        n_utt = f"{len(missing)} utterance" + ("s" if len(missing) > 1 else "")
        raise UserError(f"{trials_path}: {n_utt} in {int(bad.sum())} of "
                        f"{len(enroll)} trials have no embedding in {emb_path}: "
                        f"{_first_few(missing)}")
    return ei, ti


# ----------------------------------------------------------------------------- math

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
