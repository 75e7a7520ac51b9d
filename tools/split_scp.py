#!/usr/bin/env python3
"""Split a Kaldi table into N contiguous parts of near-equal line counts (blank lines dropped).

    tools/split_scp.py data/wav.scp split/wav.1.scp split/wav.2.scp ...

Lines are copied verbatim and in order, so the parts concatenate back to the input. Fails if
there are fewer non-blank lines than parts (a part would be empty).
"""

import argparse
import io
import os
import sys


def split_lines(lines, num_parts):
    """Contiguous split; the first len % num_parts parts get one line more."""
    base, extra = divmod(len(lines), num_parts)
    parts, start = [], 0
    for i in range(num_parts):
        end = start + base + (1 if i < extra else 0)
        parts.append(lines[start:end])
        start = end
    return parts


def read_lines(path):
    """Non-blank lines of a UTF-8 file, each ending in one newline ("\\r\\n" and "\\r" read as
    "\\n", as text-mode open() does); UnicodeDecodeError if it is not UTF-8."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return [line if line.endswith("\n") else line + "\n"
            for line in io.StringIO(text, newline=None) if line.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description="Split a Kaldi table (e.g. wav.scp) into N "
                                "contiguous parts of near-equal size.")
    p.add_argument("input", help="table to split")
    p.add_argument("outputs", nargs="+", help="one output file per part")
    args = p.parse_args(argv)
    try:
        lines = read_lines(args.input)
    except OSError as e:
        print(f"error: {args.input}: {e.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as e:
        lineno = e.object[:e.start].count(b"\n") + 1
        print(f"error: {args.input}:{lineno}: not UTF-8 text ({e.reason})", file=sys.stderr)
        return 1
    if len(lines) < len(args.outputs):
        print(f"error: {args.input}: {len(lines)} lines cannot be split into "
              f"{len(args.outputs)} non-empty parts", file=sys.stderr)
        return 1
    for path, part in zip(args.outputs, split_lines(lines, len(args.outputs))):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
