"""Kaldi-style plain-text tables ("key value ...") with errors that name file and line."""

import os
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


def read_lists(path):
    """Read "key v1 v2 ..." (spk2utt) into a dict key -> list."""
    return {key: fields for key, fields in read_table(path, min_fields=2)}


@contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """Write to a temp file beside `path` and rename on success: no half-written output."""
    dirname = os.path.dirname(os.path.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_table(path, rows):
    """Write rows of (key, value-or-list) atomically."""
    with atomic_write(path) as f:
        for key, value in rows:
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n")
