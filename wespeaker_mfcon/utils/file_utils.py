"""Kaldi-style plain-text tables ("key value ...") with errors that name file and line."""

import os
import shutil
import tempfile
from contextlib import contextmanager

from wespeaker_mfcon.utils import storage
from wespeaker_mfcon.utils.errors import UserError


def read_table(path, min_fields=2, max_fields=None, allow_duplicates=False):
    """Read a Kaldi table into a list of (key, [fields...]) in file order.

    Blank lines are skipped. A line with too few/many fields or a repeated key raises
    UserError naming the file and the line number.
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    rows, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < min_fields or (max_fields and len(fields) > max_fields):
                want = f"{min_fields}" if max_fields == min_fields else f">= {min_fields}"
                raise UserError(f"{path}:{lineno}: expected {want} fields, got {len(fields)}: "
                                f"{line.strip()[:80]!r}")
            key = fields[0]
            if not allow_duplicates and key in seen:
                raise UserError(f"{path}:{lineno}: duplicate id {key!r} (first at line {seen[key]})")
            seen.setdefault(key, lineno)
            rows.append((key, fields[1:]))
    return rows


def read_scp(path):
    """Read a two-column "key value" file (wav.scp, utt2spk, feats.scp) into a dict.

    The value is the rest of the line, so paths with spaces survive.
    """
    table = {}
    for key, fields in read_table(path, min_fields=2):
        table[key] = " ".join(fields)
    return table


@contextmanager
def atomic_path(path, needed=None):
    """Yield a temporary name beside `path` (same extension); on success rename it to `path`.

    The one way this project writes a file or a directory that must never be left
    half-written: by Python, kaldiio, torch.save, ffmpeg or the ONNX exporter alike. On any
    failure the temporary is removed and an existing `path` is left as it was. A failure that
    is a storage fault (a full disk, a quota, a read-only or vanished directory: see
    utils/storage.py) becomes a one-line UserError naming `path`, what happened and, given
    `needed` (bytes), how much space the write needed.
    """
    path = os.path.abspath(path)
    dirname, base = os.path.split(path)
    ext = os.path.splitext(base)[1]
    try:
        os.makedirs(dirname, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".tmp_{base}.", suffix=ext)
    except OSError as e:          # the directory cannot be made, or holds no new file
        raise UserError(storage.describe(path, storage.REASONS.get(e.errno, e.strerror),
                                         needed)) from None
    os.close(fd)
    os.remove(tmp)  # the writer creates it (some writers refuse an existing file)
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as error:
        fault = isinstance(error, Exception) and not isinstance(error, UserError)
        reason = storage.diagnose(dirname, error) if fault else None   # before the cleanup
        partial = storage.allocated_bytes(tmp)   # freed once the writer lets go of it
        _remove(tmp)
        if reason:
            raise UserError(storage.describe(path, reason, needed, freed=partial)) from None
        raise


def _remove(path):
    """Remove a file or a directory tree, if there is one; a failure to do so is not news."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        try:
            os.remove(path)
        except OSError:
            pass


@contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """open() for writing through atomic_path: the file appears complete or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f


def write_table(path, rows):
    """Write rows of (key, value-or-list) atomically."""
    with atomic_write(path) as f:
        for key, value in rows:
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n")
