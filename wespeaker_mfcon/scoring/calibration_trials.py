"""Calibration trials from the training set and the quality features of a trial (stage 7).

Quality features of a trial (enroll e, test t), symmetric in e and t because trial lists
pair utterances in no fixed order (each side's value enters as the min and the max of the two)::

    score                 the score being calibrated (cosine or AS-norm)
    min_logdur max_logdur min / max of log(duration in s) of e and t (utt2dur, or
                          utt2num_frames / 100 at the 10 ms frame shift)
    min_imp    max_imp    min / max of the AS-norm imposter means: the mean of the top-N cosine
                          scores of an utterance against the cohort (one mean embedding per
                          training speaker, cohort mean subtracted), as scoring/score_norm.py
                          computes them once per utterance (S-norm: the mean of all of them)
    min_norm   max_norm   min / max of the L2 norm of the raw embeddings (before mean
                          subtraction), a known quality correlate

For calibration trials drawn from the training set, the cohort of an utterance leaves out its
own speaker (imposter_stats(own=...)), so its top-N never holds its own speaker's mean, as
for a test utterance whose speaker is not in the cohort.

Calibration trials of a HELD-OUT set (speakers not in the training set, a dev set) are scored
by score_eval_trials as stage 4 scores a test list (scoring/cosine.py, scoring/score_norm.py):
cosine after subtracting the training (cohort) mean, AS-norm / S-norm against all the training
speakers, with the same functions; nothing is left out of the cohort.

Calibration trials (make_training_trials): utterance ids are spk/session/utt (VoxCeleb
layout); targets pair one speaker's utterances from DIFFERENT sessions, nontargets any two
speakers; a seeded, deterministic sample without repeated pairs (scoring/trial_pairs.py).
"""

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_table
from wespeaker_mfcon.scoring import trial_pairs as pairs
from wespeaker_mfcon.scoring.cosine import cosine_scores, prepare, speaker_cohort
from wespeaker_mfcon.scoring.score_norm import cohort_stats, normalize_scores

log = logging.getLogger(__name__)

FEATURES = ("score", "min_logdur", "max_logdur", "min_imp", "max_imp", "min_norm", "max_norm")
QMF_DEFAULT = ("score", "min_logdur", "max_logdur", "min_imp", "max_imp")
ABLATION = {  # feature sets compared by the stage
    "score": ("score",),
    "+dur": ("score", "min_logdur", "max_logdur"),
    "+imp": ("score", "min_imp", "max_imp"),
    "+norm": ("score", "min_norm", "max_norm"),
    "+dur+imp": QMF_DEFAULT,
    "+dur+imp+norm": FEATURES,
}
FRAME_SHIFT_S = 0.01


# ----------------------------------------------------------------------------- features

def read_durations(data_dir):
    """Durations in seconds from <data_dir>/utt2dur, else utt2num_frames x 10 ms -> dict."""
    for name, scale in (("utt2dur", 1.0), ("utt2num_frames", FRAME_SHIFT_S)):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            break
    else:
        raise UserError(f"{data_dir}: neither utt2dur nor utt2num_frames (needed for the "
                        f"duration features)")
    out = {}
    for key, fields in read_table(path, min_fields=2, max_fields=2):
        try:
            value = float(fields[0]) * scale
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{path}: {key}: duration must be a positive number, got "
                            f"{fields[0]!r}")
        out[key] = value
    return out


def log_durations(keys, durations, source):
    """log(duration in s) of each key (N,); UserError naming `source` if any is missing."""
    missing = [k for k in keys if k not in durations]
    if missing:
        raise UserError(f"{source}: no duration for {len(missing)} utterances, e.g. "
                        f"{missing[0]!r}")
    return np.log(np.fromiter((durations[k] for k in keys), dtype=np.float64, count=len(keys)))


def imposter_stats(emb, cohort, top_n, own=None):
    """Mean, std (N,) of each utterance's top_n cohort scores (top_n None: all = S-norm).

    emb (N, D) prepared as for scoring, cohort (C, D) normalized. own (N,): the cohort row of
    each utterance's own speaker, left out of its cohort (-1: none)."""
    if own is None:
        return cohort_stats(emb, cohort, top_n)
    own = np.asarray(own)
    mean, std = np.empty(len(emb)), np.empty(len(emb))
    for c in np.unique(own):
        rows = np.flatnonzero(own == c)
        coh = cohort if c < 0 else np.delete(cohort, c, axis=0)
        n = None if top_n is None else min(top_n, len(coh))
        mean[rows], std[rows] = cohort_stats(emb[rows], coh, n)
    return mean, std


def trial_features(names, score, ei, ti, per_utt):
    """Feature matrix (N, K) of trials.

    score (N,); ei, ti (N,) rows of the enroll and test utterances in the per-utterance
    arrays per_utt = {"logdur": (U,), "imp": (U,), "norm": (U,)}; "min_X" / "max_X" are the
    min / max of per_utt[X] over the two sides."""
    cols = []
    for name in names:
        if name == "score":
            cols.append(np.asarray(score, dtype=np.float64))
            continue
        op, _, what = name.partition("_")
        if op not in ("min", "max") or what not in per_utt:
            raise ValueError(f"unknown feature {name!r} (known: {', '.join(FEATURES)})")
        a, b = per_utt[what][ei], per_utt[what][ti]
        cols.append(np.minimum(a, b) if op == "min" else np.maximum(a, b))
    return np.stack(cols, axis=1)


# ----------------------------------------------------------------------------- trials

def session_of(utt):
    """'spk/session/utt' -> 'spk/session' (the utterance id without its last part)."""
    head, sep, _ = utt.rpartition("/")
    return head if sep else None


def _trial_tables(utt2spk, source):
    """Sorted keys (U,), speaker index (U,), session index (U,) of an utt2spk dict."""
    keys = sorted(utt2spk)
    sessions = [session_of(k) for k in keys]
    if None in sessions:
        bad = keys[sessions.index(None)]
        raise UserError(f"{source}: utterance id {bad!r} is not spk/session/utt: calibration "
                        f"trials need the session to pair targets across sessions")
    _, spk = np.unique([utt2spk[k] for k in keys], return_inverse=True)
    _, sess = np.unique(sessions, return_inverse=True)
    return keys, spk.astype(np.int64), sess.astype(np.int64)


def make_training_trials(utt2spk, num_trials, seed=0, target_fraction=0.5, source="utt2spk"):
    """Calibration trials from a dict utt -> speaker with ids spk/session/utt.

    round(num_trials * target_fraction) targets (one speaker, two different sessions) and the
    rest nontargets (two speakers), each pair at most once, fewer when fewer exist (missing
    targets are made up with nontargets). Deterministic in (utt2spk, num_trials, seed,
    target_fraction). Returns (enroll (T,), test (T,), labels (T,) int8 1 = target), sorted by
    (enroll, test); the enroll id sorts before the test id."""
    keys, spk, sess = _trial_tables(utt2spk, source)
    avail_tar, avail_non = pairs.count_pairs(spk, sess)
    n_tar = min(int(round(num_trials * target_fraction)), avail_tar)
    n_non = min(num_trials - n_tar, avail_non)
    if n_tar == 0 or n_non == 0:
        raise UserError(f"{source}: {avail_tar} cross-session target and {avail_non} nontarget "
                        f"pairs: calibration needs both")
    if n_tar + n_non < num_trials:
        log.warning("%s: %d trials asked for, only %d available (%d target, %d nontarget)",
                    source, num_trials, n_tar + n_non, n_tar, n_non)
    rng = np.random.default_rng(seed)
    tar = pairs.target_pairs(rng, spk, sess, n_tar, avail_tar, pairs.CALIBRATION)
    non = pairs.nontarget_pairs(rng, spk, n_non, avail_non, pairs.CALIBRATION)
    both = np.concatenate([tar, non])
    labels = np.concatenate([np.ones(len(tar), np.int8), np.zeros(len(non), np.int8)])
    order = np.lexsort((both[:, 1], both[:, 0]))
    enroll = [keys[i] for i in both[order, 0]]
    test = [keys[j] for j in both[order, 1]]
    return enroll, test, labels[order]


# ----------------------------------------------------------------------------- trial sets

@dataclass
class TrialSet:
    """Trials with their scores and the per-utterance quality measures.

    enroll, test: ids (T,); labels (T,) 0/1; ei, ti (T,): rows of the two sides in the
    per-utterance arrays; scores: system -> (T,) ("raw_cosine", "cosine", "asnorm", ...);
    per_utt: "logdur", "imp", "norm" -> (U,)."""
    enroll: list
    test: list
    labels: np.ndarray
    ei: np.ndarray
    ti: np.ndarray
    scores: dict
    per_utt: dict

    def features(self, names, system):
        """(T, K) features of `names` with the score of `system`."""
        return trial_features(names, self.scores[system], self.ei, self.ti, self.per_utt)


def _utterances(enroll, test, keys):
    """Sorted used ids (U,), their rows in `keys`, and ei, ti (T,) rows into the used ids."""
    used, inv = np.unique(np.array(list(enroll) + list(test), dtype=object), return_inverse=True)
    index = {k: i for i, k in enumerate(keys)}
    rows = np.fromiter((index[k] for k in used), dtype=np.int64, count=len(used))
    return list(used), rows, inv[:len(enroll)], inv[len(enroll):]


def _quality(used, raw, imposters, durations, dur_source="durations"):
    """Per-utterance quality arrays of the used ids (U,): raw (U, D) embeddings,
    imposters = (mean, std) (U,) of their cohort scores, durations: id -> seconds
    (read from dur_source, named in the error if one is missing)."""
    return {"logdur": log_durations(used, durations, dur_source),
            "imp": imposters[0],
            "norm": np.linalg.norm(np.asarray(raw, dtype=np.float64), axis=1)}


def score_training_trials(*, enroll, test, labels, keys, raw, utt2spk, durations, top_n,
                          method="asnorm"):
    """Score calibration trials of the cohort (training) set as stage 4 scores test trials.

    keys (N,), raw (N, D): the cohort embeddings, which also hold every trial utterance;
    utt2spk: dict; durations: dict id -> seconds; top_n: AS-norm top N (None for S-norm).
    Scores: "raw_cosine" (no mean subtraction), "cosine" (cohort mean subtracted) and
    `method` (AS-norm / S-norm with each utterance's own speaker left out of its cohort)."""
    mean = raw.mean(axis=0, dtype=np.float64)
    speakers, cohort = speaker_cohort(keys, raw, utt2spk, mean)
    used, rows, ei, ti = _utterances(enroll, test, keys)
    row_of = {s: i for i, s in enumerate(speakers)}
    own = np.fromiter((row_of[utt2spk[k]] for k in used), dtype=np.int64, count=len(used))
    emb = prepare(raw[rows], mean)
    imp = imposter_stats(emb, cohort, None if method == "snorm" else top_n, own)
    cos = cosine_scores(emb, ei, ti)
    scores = {"raw_cosine": cosine_scores(prepare(raw[rows]), ei, ti), "cosine": cos,
              method: normalize_scores(cos, ei, ti, *imp)}
    per_utt = _quality(used, raw[rows], imp, durations)
    return TrialSet(list(enroll), list(test), np.asarray(labels), ei, ti, scores, per_utt)


def eval_trial_set(*, enroll, test, labels, scores, keys, raw, cohort_mean, cohort, durations,
                   top_n, dur_source="durations"):
    """TrialSet of an evaluation list whose scores (system -> (T,)) come from stage 4.

    keys (N,), raw (N, D): evaluation embeddings; cohort_mean (D,), cohort (C, D): as
    scoring/cosine.speaker_cohort makes them from the training set; top_n None for S-norm;
    dur_source: the file the durations came from (for the error when one is missing)."""
    used, rows, ei, ti = _utterances(enroll, test, keys)
    emb = prepare(raw[rows], cohort_mean)
    imp = imposter_stats(emb, cohort, top_n)
    per_utt = _quality(used, raw[rows], imp, durations, dur_source)
    return TrialSet(list(enroll), list(test), np.asarray(labels), ei, ti, dict(scores), per_utt)


def score_eval_trials(*, enroll, test, labels, keys, raw, cohort_mean, cohort, durations,
                      top_n, method="asnorm", dur_source="durations"):
    """Score trials of a held-out set as stage 4 scores a test list -> TrialSet.

    keys (N,), raw (N, D): the held-out embeddings, holding every trial utterance;
    cohort_mean (D,), cohort (C, D): as scoring/cosine.speaker_cohort makes them from the
    training set; top_n: AS-norm top N (None for S-norm). Scores: "raw_cosine" (no mean
    subtraction), "cosine" (scoring/cosine.py) and `method` (the normalization of
    scoring/score_norm.score_norm, from the imposter statistics that are also quality
    features)."""
    used, rows, ei, ti = _utterances(enroll, test, keys)
    emb = prepare(raw[rows], cohort_mean)
    imp = imposter_stats(emb, cohort, top_n)
    cos = cosine_scores(emb, ei, ti)
    scores = {"raw_cosine": cosine_scores(prepare(raw[rows]), ei, ti), "cosine": cos,
              method: normalize_scores(cos, ei, ti, *imp)}
    per_utt = _quality(used, raw[rows], imp, durations, dur_source)
    return TrialSet(list(enroll), list(test), np.asarray(labels), ei, ti, scores, per_utt)
