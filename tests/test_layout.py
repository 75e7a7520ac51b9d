"""The package layout is its architecture: one package per job in a fixed order of layers,
each importing only from layers below it (so there are no cycles); bin/ holds entry points
only; nothing loose at the package root; one sample-rate default."""

import ast
import glob
import os
import re

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "wespeaker_mfcon")
# lowest first: a package may import from the packages before it, never from those after it
LAYERS = ["utils", "config", "frontend", "models", "losses", "dataset", "training", "scoring",
          "export", "apps", "synth", "analysis", "bin"]


def _modules():
    return sorted(glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True))


def _imported(path):
    """The wespeaker_mfcon modules a file imports (anywhere in it)."""
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("wespeaker_mfcon"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("wespeaker_mfcon"))


def test_every_package_imports_only_from_the_layers_below_it():
    upward = []
    for path in _modules():
        rel = os.path.relpath(path, PACKAGE).split(os.sep)
        if len(rel) == 1:
            continue
        here = LAYERS.index(rel[0])
        for module in _imported(path):
            parts = module.split(".")
            if len(parts) > 1 and parts[1] in LAYERS and LAYERS.index(parts[1]) > here:
                upward.append(f"{'/'.join(rel)} imports {module}")
    assert upward == []


def test_one_package_per_job_and_nothing_loose_at_the_root():
    top = {os.path.basename(p) for p in glob.glob(os.path.join(PACKAGE, "*"))} - {"__pycache__"}
    assert top == {"__init__.py", *LAYERS}


def test_bin_modules_hold_only_their_parser_and_main():
    extra = {}
    for path in glob.glob(os.path.join(PACKAGE, "bin", "*.py")):
        tree = ast.parse(open(path, encoding="utf-8").read())
        names = {n.name for n in tree.body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        if names - {"get_parser", "get_args", "main"}:
            extra[os.path.basename(path)] = sorted(names)
    assert extra == {}


def test_no_test_imports_the_entry_points():
    users = [os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "tests", "*.py"))
             if re.search(r"(from|import) wespeaker_mfcon\.bin\b",
                          open(p, encoding="utf-8").read())]
    assert users == []


def test_the_sample_rate_default_is_written_once():
    found = [f"{os.path.relpath(p, PACKAGE)}:{i}" for p in _modules()
             for i, line in enumerate(open(p, encoding="utf-8"), 1) if "16000" in line]
    assert found == ["config/schema.py:12"]
