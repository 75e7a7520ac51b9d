"""Trial lists and score files (Kaldi form), and the trial lists of a data dir.

  trials:  "enroll test target|nontarget"
  scores:  "enroll test score [target|nontarget]"; NAME.score (cosine), NAME.<norm>.score
"""

import os

import numpy as np

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write

NORM_METHODS = ("asnorm", "snorm")      # the score normalizations (scoring/score_norm.py)

LABELS = {"target": 1, "nontarget": 0}


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
    if data_dir is None:
        raise UserError("which trial lists? give the data dir (--data) or the lists (--trials)")
    folder = os.path.join(data_dir, "test", "trials")
    names = sorted(f[:-len(".kaldi")] for f in (os.listdir(folder) if os.path.isdir(folder)
                                                 else []) if f.endswith(".kaldi"))
    if not names:
        raise UserError(f"{folder}: no trial lists (*.kaldi); run stage 0 for {data_dir}")
    return [(n, os.path.join(folder, n + ".kaldi")) for n in names]


def resolve_trials(data_dir, trials=None):
    """[(name, path)] of the trial lists to score, the one place that resolves their names.

    trials: entries that are Kaldi trial files, or names NAME (or NAME.kaldi) of
    DATA/test/trials/NAME.kaldi; none: every list of data_dir (trial_lists). UserError for an
    entry that is neither, or for two lists of one name (their score files would collide)."""
    if not trials:
        return trial_lists(data_dir)
    out = []
    for entry in trials:
        path = entry
        if not os.path.isfile(entry) and data_dir is not None:
            stem = entry[:-len(".kaldi")] if entry.endswith(".kaldi") else entry
            path = os.path.join(data_dir, "test", "trials", stem + ".kaldi")
        if not os.path.isfile(path):
            raise UserError(f"no trial list {path}")
        out.append((trial_name(path), path))
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"trial lists with the same name would overwrite each other: {dup}")
    return out


def trial_names(data_dir, trials=None):
    """Names of trial lists: those of `trials` (names or paths, as resolve_trials takes
    them), else of every list of data_dir; for steps that read score files, not the lists."""
    if trials:
        return [trial_name(t) for t in trials]
    return [name for name, _ in trial_lists(data_dir)]


def score_path(score_dir, name, system="cosine"):
    """The stage-4 score file of a trial list: NAME.score (cosine), NAME.SYSTEM.score."""
    suffix = ".score" if system == "cosine" else f".{system}.score"
    return os.path.join(score_dir, name + suffix)


def score_files(score_dir, data_dir, trials=None, systems=("cosine",)):
    """The score files in score_dir of the trial lists (trial_names) for each system, list by
    list."""
    return [score_path(score_dir, name, system) for name in trial_names(data_dir, trials)
            for system in systems]


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
