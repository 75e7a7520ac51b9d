"""Embedding tables: kaldiio ``xvector.scp`` -> (keys, matrix) and back, speaker-mean
cohorts.

Every failure on user data (missing or truncated ark, mixed dimensions, NaN/Inf, duplicate
ids, utterances without a speaker) is a UserError that names the file and, where there is
one, the line.
"""

import os

import numpy as np

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, read_scp, read_table


def _first_few(items, n=5):
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (", ..." if len(items) > n else "")


def load_embeddings(scp_path):
    """Load a kaldiio ``xvector.scp`` into ``(keys, matrix)``.

    keys: list of utterance ids in file order; matrix: float32 array (N, D).
    Each entry may be a vector (D,) or a 1-row matrix (1, D).
    """
    import kaldiio

    rows = read_table(scp_path, min_fields=2)  # duplicate ids -> UserError with line numbers
    if not rows:
        raise UserError(f"{scp_path}: empty embedding list")
    scp_dir = os.path.dirname(os.path.abspath(scp_path))
    keys, vecs, dim = [], [], None
    fd_dict = {}
    try:
        for key, fields in rows:
            spec = " ".join(fields)
            if spec.endswith("|"):
                raise UserError(f"{scp_path}: entry {key!r}: piped scp entries are not supported")
            try:
                vec = kaldiio.load_mat(spec, fd_dict=fd_dict)
            except FileNotFoundError:
                # kaldiio resolves paths against the working directory; try the scp's folder.
                ark, _, offset = spec.rpartition(":")
                alt = os.path.join(scp_dir, os.path.basename(ark)) + (":" + offset if ark else "")
                try:
                    vec = kaldiio.load_mat(alt, fd_dict=fd_dict)
                except Exception:
                    raise UserError(f"{scp_path}: entry {key!r}: cannot open {spec!r}") from None
            except Exception as e:  # truncated/corrupt ark: kaldiio raises assorted errors
                raise UserError(f"{scp_path}: entry {key!r}: cannot read {spec!r} "
                                f"({type(e).__name__}: {e})") from None
            vec = np.asarray(vec)
            if vec.ndim == 2 and vec.shape[0] == 1:
                vec = vec[0]
            if vec.ndim != 1 or vec.size == 0:
                raise UserError(f"{scp_path}: entry {key!r}: expected a vector, got shape "
                                f"{tuple(vec.shape)}")
            if dim is None:
                dim = vec.shape[0]
            elif vec.shape[0] != dim:
                raise UserError(f"{scp_path}: entry {key!r}: dimension {vec.shape[0]}, "
                                f"but earlier entries have {dim} (truncated or corrupt ark?)")
            if not np.all(np.isfinite(vec)):
                raise UserError(f"{scp_path}: entry {key!r}: embedding contains NaN/Inf")
            keys.append(key)
            vecs.append(vec.astype(np.float32, copy=False))
    finally:
        for f in fd_dict.values():
            try:
                f.close()
            except Exception:
                pass
    return keys, np.stack(vecs)


def write_embeddings(ark, scp, utts, embeds):
    """kaldiio ark + scp of the float32 vectors embeds (N of (D,)) of utts (N,); each file
    complete or absent, the scp, which points into the ark, renamed into place last."""
    import kaldiio

    with atomic_path(scp) as tmp_scp:
        with atomic_path(ark) as tmp_ark:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
                for utt, emb in zip(utts, embeds):
                    writer(utt, emb.astype(np.float32))
        with open(tmp_scp, encoding="utf-8") as f:
            lines = f.read().replace(f"{tmp_ark}:", f"{ark}:")
        with open(tmp_scp, "w", encoding="utf-8") as f:
            f.write(lines)


def load_utt2spk(path):
    return read_scp(path)


def speaker_means(keys, matrix, utt2spk):
    """Average the embeddings of each speaker.

    utt2spk: dict utt -> speaker (or a path to an utt2spk file). Every key must have a speaker;
    speakers of utt2spk without any embedding are simply absent. Returns (speakers, means) with
    speakers sorted and means float32 (S, D).
    """
    if isinstance(utt2spk, (str, os.PathLike)):
        source = str(utt2spk)
        utt2spk = load_utt2spk(utt2spk)
    else:
        source = "utt2spk"
    missing = [k for k in keys if k not in utt2spk]
    if missing:
        raise UserError(f"{source}: {len(missing)} of {len(keys)} cohort embeddings have no "
                        f"speaker: {_first_few(missing)}")
    spk_of = [utt2spk[k] for k in keys]
    speakers = sorted(set(spk_of))
    index = {s: i for i, s in enumerate(speakers)}
    spk_idx = np.fromiter((index[s] for s in spk_of), dtype=np.int64, count=len(spk_of))
    order = np.argsort(spk_idx, kind="stable")
    counts = np.bincount(spk_idx, minlength=len(speakers))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.add.reduceat(matrix[order].astype(np.float64), starts, axis=0)
    return speakers, (sums / counts[:, None]).astype(np.float32)


def index_of(keys):
    """dict key -> row."""
    return {k: i for i, k in enumerate(keys)}
