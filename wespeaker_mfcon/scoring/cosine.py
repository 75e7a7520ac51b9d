"""Cosine scoring of embeddings: mean subtraction, L2 normalization, row-wise dot products;
and stage 4's first step, score_trial_lists: Kaldi trial lists into cosine score files.

Everything is vectorized: embeddings are mean-subtracted and L2-normalized once, and a trial
score is a row-wise dot product of two rows, chunked for memory.
"""

import logging
import time

import numpy as np

from wespeaker_mfcon.scoring.embeddings import index_of, load_embeddings, speaker_means
from wespeaker_mfcon.scoring.trials import read_trials, score_path, trial_indices, write_scores
from wespeaker_mfcon.utils.errors import UserError

log = logging.getLogger(__name__)


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


def load_cohort(cohort_scp, dim, eval_scp):
    """(keys (C,), raw (C, D)) of the cohort (training) embeddings; UserError unless D is the
    dimension `dim` of the embeddings of eval_scp."""
    keys, raw = load_embeddings(cohort_scp)
    if raw.shape[1] != dim:
        raise UserError(f"{cohort_scp}: dimension {raw.shape[1]} differs from {eval_scp} "
                        f"({dim})")
    return keys, raw


def _read_lists(lists, index, eval_scp):
    """[(name, path, enroll, test, labels, ei, ti)] of every list; UserError, before anything
    is written, if a list is malformed or names an utterance without an embedding."""
    loaded = []
    for name, path in lists:
        enroll, test, labels = read_trials(path)
        ei, ti = trial_indices(enroll, test, index, path, eval_scp)
        loaded.append((name, path, enroll, test, labels, ei, ti))
    return loaded


def score_trial_lists(lists, eval_scp, out_dir, cohort_scp=None, mean_sub=True):
    """Cosine scores of the trial lists [(name, path)] (scoring/trials.resolve_trials) into
    out_dir/NAME.score, "enroll test score target|nontarget", in list order.

    The mean of the cohort embeddings (cohort_scp, the training set) is subtracted from every
    embedding of eval_scp first (mean_sub). Every list is read and checked before any score
    file is written."""
    keys, raw = load_embeddings(eval_scp)
    mean = None
    if mean_sub:
        if not cohort_scp:
            raise UserError("mean subtraction needs --cohort_scp (or pass --no_mean_sub)")
        mean = load_cohort(cohort_scp, raw.shape[1], eval_scp)[1].mean(axis=0, dtype=float)
    emb = prepare(raw, mean)
    log.info("%d eval embeddings (dim %d)%s", len(keys), emb.shape[1],
             ", cohort mean subtracted" if mean_sub else "")
    for name, path, enroll, test, labels, ei, ti in _read_lists(lists, index_of(keys),
                                                               eval_scp):
        t0 = time.time()
        out = score_path(out_dir, name)
        write_scores(out, enroll, test, cosine_scores(emb, ei, ti), labels)
        log.info("%s: %d trials -> %s (%.1f s)", path, len(enroll), out, time.time() - t0)
