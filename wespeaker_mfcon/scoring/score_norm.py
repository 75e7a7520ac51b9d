"""Score normalization: AS-norm (top-N cohort) and S-norm (whole cohort); and stage 4's
second step, normalize_score_files: cosine score files into normalized ones.

The cohort is one mean embedding per training speaker (after subtracting the cohort mean, as
the cosine scoring does, then L2-normalized). The cohort statistics are computed once per
utterance with a (utterances x cohort) matrix product, never per trial; the normalized score
is the mean of the enroll and test z-scores: 0.5*((s - mu_e)/sd_e + (s - mu_t)/sd_t).
"""

import logging
import os
import time

import numpy as np

from wespeaker_mfcon.scoring.cosine import load_cohort, prepare, speaker_cohort
from wespeaker_mfcon.scoring.embeddings import index_of, load_embeddings
from wespeaker_mfcon.scoring.trials import (NORM_METHODS, parse_score_name, read_scores,
                                            score_path, trial_indices, write_scores)

log = logging.getLogger(__name__)


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


def _read_score_files(score_files, method, out_dir, index, eval_scp):
    """[(path, out, enroll, test, scores, labels, ei, ti)]: each cosine score file, where its
    normalized scores go (NAME.<method>.score in out_dir, default beside it), its trials."""
    loaded = []
    for path in score_files:
        name, system = parse_score_name(path)
        if system != "cosine":
            log.warning("%s looks already normalized (%s); normalizing it anyway", path, system)
            name = f"{name}.{system}"
        out = score_path(out_dir or os.path.dirname(path), name, method)
        enroll, test, scores, labels = read_scores(path)
        ei, ti = trial_indices(enroll, test, index, path, eval_scp)
        loaded.append((path, out, enroll, test, scores, labels, ei, ti))
    return loaded


def normalize_score_files(score_files, eval_scp, cohort_scp, cohort_utt2spk, method="asnorm",
                          top_n=300, out_dir=None, mean_sub=True):
    """AS-norm / S-norm of cosine score files (NAME.score -> NAME.<method>.score).

    eval_scp: the embeddings the trials name; cohort_scp, cohort_utt2spk: the training set, one
    cohort entry per speaker; top_n: AS-norm's (clamped to the number of speakers); mean_sub:
    subtract the cohort mean, as the cosine scores had it. The statistics are computed once
    per utterance over all the files together."""
    keys, eval_raw = load_embeddings(eval_scp)
    cohort_keys, cohort_raw = load_cohort(cohort_scp, eval_raw.shape[1], eval_scp)
    mean = cohort_raw.mean(axis=0, dtype=np.float64) if mean_sub else None
    emb = prepare(eval_raw, mean)
    speakers, cohort = speaker_cohort(cohort_keys, cohort_raw, cohort_utt2spk, mean)
    top_n = clamp_top_n(top_n, len(speakers), log) if method == "asnorm" else len(speakers)
    log.info("%d eval embeddings, cohort of %d speakers from %d utterances, %s%s",
             len(keys), len(speakers), len(cohort_keys), method,
             f" top_n={top_n}" if method == "asnorm" else "")
    loaded = _read_score_files(score_files, method, out_dir, index_of(keys), eval_scp)
    t0 = time.time()
    normed = score_norm(np.concatenate([x[4] for x in loaded]),
                        np.concatenate([x[6] for x in loaded]),
                        np.concatenate([x[7] for x in loaded]), emb, cohort, method, top_n)
    log.info("%s of %d trials in %.2f s", method, len(normed), time.time() - t0)
    start = 0
    for path, out, enroll, test, scores, labels, _, _ in loaded:
        write_scores(out, enroll, test, normed[start:start + len(scores)], labels)
        start += len(scores)
        log.info("%s -> %s", path, out)
