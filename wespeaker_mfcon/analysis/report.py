"""Docs tables from result JSON: every EER, Cllr or speed figure in docs/ is rendered from the
JSON file that the run or benchmark wrote, never typed by hand.

    python -m wespeaker_mfcon.analysis.report            # re-render every block of docs/*.md
                                                         #   and of the README beside docs/
    python -m wespeaker_mfcon.analysis.report --check    # exit 1 if a block is out of date

A docs page marks each generated block with the renderer and its JSON (relative to the page):

    <!-- report: lambda_speakers results/lambda_speakers.json -->
    ... generated markdown, replaced on every run ...
    <!-- /report -->

A renderer is a function (data: dict) -> markdown, registered by name in
analysis/tables.renderers().
"""

import argparse
import glob
import json
import os
import re

from wespeaker_mfcon.analysis import tables
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write

BLOCK = re.compile(r"(<!-- report: (?P<name>[\w.-]+) (?P<source>[^\s>]+) -->\n)"
                   r"(?P<body>.*?)(<!-- /report -->)", re.S)


def render_page(text, page_dir, renderers=None):
    """The page text with every report block re-rendered from its JSON."""
    renderers = renderers if renderers is not None else tables.renderers()

    def one(match):
        name, source = match.group("name"), match.group("source")
        if name not in renderers:
            raise UserError(f"report block {name!r}: no such renderer "
                            f"({', '.join(sorted(renderers))})")
        path = os.path.join(page_dir, source)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: cannot read the JSON of report {name!r}: {e}") from None
        body = renderers[name](data).rstrip("\n") + "\n"
        return match.group(1) + body + match.group(5)

    return BLOCK.sub(one, text)


def render_docs(docs_dir, check=False, renderers=None):
    """Re-render every page under docs_dir, and the README beside it; returns the pages that
    changed (or would)."""
    changed = []
    readme = os.path.join(os.path.dirname(os.path.abspath(docs_dir)), "README.md")
    pages = sorted(glob.glob(os.path.join(docs_dir, "**", "*.md"), recursive=True))
    for page in pages + ([readme] if os.path.isfile(readme) else []):
        with open(page, encoding="utf-8") as f:
            text = f.read()
        try:
            new = render_page(text, os.path.dirname(page), renderers)
        except UserError as e:
            raise UserError(f"{page}: {e}") from None
        if new != text:
            changed.append(page)
            if not check:
                with atomic_write(page) as f:
                    f.write(new)
    return changed


def get_parser():
    p = argparse.ArgumentParser(prog="python -m wespeaker_mfcon.analysis.report",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default=os.path.join(os.path.dirname(__file__), "..", "..", "docs"),
                   help="docs dir (default: the checkout's docs/)")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 when a page is out of date")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    docs = os.path.normpath(args.docs)
    if not os.path.isdir(docs):
        raise UserError(f"{docs}: no docs dir")
    changed = render_docs(docs, check=args.check)
    for page in changed:
        print(f"{page}: {'out of date' if args.check else 'rendered'}")
    if args.check and changed:
        raise UserError(f"{len(changed)} page(s) out of date; run python -m "
                        "wespeaker_mfcon.analysis.report")
    return 0


if __name__ == "__main__":
    run_main(main)
