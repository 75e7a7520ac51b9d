"""Kaldi-style plain-text tables ("key value ...") with errors that name file and line."""

import os
import shutil
import tempfile
from contextlib import contextmanager

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
def atomic_path(path):
    """Yield a temporary name beside `path` (same extension); on success rename it to `path`.

    The one way this project writes a file or a directory that must never be left
    half-written: by Python, kaldiio, torch.save, ffmpeg or the ONNX exporter alike. On any
    failure the temporary is removed and an existing `path` is left as it was.
    """
    path = os.path.abspath(path)
    dirname, base = os.path.split(path)
    os.makedirs(dirname, exist_ok=True)
    ext = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".tmp_{base}.", suffix=ext)
    os.close(fd)
    os.remove(tmp)  # the writer creates it (some writers refuse an existing file)
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.remove(tmp)
        raise


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
