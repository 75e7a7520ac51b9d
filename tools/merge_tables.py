#!/usr/bin/env python3
"""Merge the per-job parts of a Kaldi table into one file, written atomically.

    tools/merge_tables.py [--sort] [--expect N] OUT PART1 PART2 ...

Lines are copied verbatim (blank lines dropped); with --sort they are ordered by key (byte
order, as `LC_ALL=C sort -k1,1`). A key found twice, or a line count other than --expect, is a
one-line error and OUT is not written. OUT appears complete or not at all, so a recipe can
take its presence as the mark of a finished stage.
"""

import argparse
import os

from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write


def read_parts(paths):
    """[(key, line)] of every non-blank line; a repeated key is a UserError naming both."""
    rows, seen = [], {}
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such file (did its job finish?)")
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                key = line.split(maxsplit=1)[0]
                if key in seen:
                    raise UserError(f"{path}:{lineno}: duplicate key {key!r} (also {seen[key]})")
                seen[key] = f"{path}:{lineno}"
                rows.append((key, line if line.endswith("\n") else line + "\n"))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sort", action="store_true", help="order the lines by key")
    p.add_argument("--expect", type=int, default=None, help="the number of lines there must be")
    p.add_argument("out")
    p.add_argument("parts", nargs="+")
    args = p.parse_args(argv)
    rows = read_parts(args.parts)
    if args.expect is not None and len(rows) != args.expect:
        raise UserError(f"{args.out}: the parts hold {len(rows)} entries, expected {args.expect}")
    if args.sort:
        rows.sort(key=lambda row: row[0].encode("utf-8"))
    with atomic_write(args.out) as f:
        f.writelines(line for _, line in rows)


if __name__ == "__main__":
    run_main(main)
