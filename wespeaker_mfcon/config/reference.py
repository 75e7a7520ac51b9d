"""The config reference page, generated from the schema so that it cannot drift from it.

    python -m wespeaker_mfcon.config.reference > docs/config_reference.md

Every dataclass reachable from TrainConfig (config/schema.py) becomes a section: each key
with its type, its default, the range that the class's range helpers (_at_least, _above,
_in_range) enforce, and the comment written beside the key, or the comment lines right above
it, in the source. A key whose schema another key selects (selected_schemas(): optimizer_args
by optimizer, model_args by model) gets one section per choice.
"""

import argparse
import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import typing
from typing import Literal

import yaml

from wespeaker_mfcon.config import loading
from wespeaker_mfcon.config.schema import MODEL_ARGS, OPTIMIZER_ARGS, TrainConfig
from wespeaker_mfcon.utils.entrypoint import run_main

HEADER = ["key", "type", "default", "checked", "meaning"]
RANGE_HELPERS = {"_at_least": ">= {}", "_above": "> {}"}


@dataclasses.dataclass
class Section:
    title: str                  # the dotted key path, e.g. dataset_args.aug_args
    intro: str                  # the class docstring, or where a constructor's arguments live
    rows: list                  # [[key, type, default, checked, meaning]] in source order


def anchor(title):
    """The id MkDocs (Python-Markdown's toc) gives a heading with this text."""
    text = re.sub(r"[^\w\s-]", "", title).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def link(title):
    return f"[{title}](#{anchor(title)})"


def selected_schemas():
    """Keys whose schema another key selects: {key: (selector, {choice: its dataclass})}."""
    return {"optimizer_args": ("optimizer", dict(OPTIMIZER_ARGS)),
            "model_args": ("model", dict(MODEL_ARGS))}


def choice_title(key, selector, choice):
    return f"{key} ({selector}: {choice})" if selector else key


# ------------------------------------------------------------------ reading the source


def _class_source(cls):
    return textwrap.dedent(inspect.getsource(cls))


def field_comments(cls):
    """{field: comment} from the source of a dataclass: the comment on the field's lines
    after the code, after the comment-only lines right above the field (joined by spaces)."""
    source = _class_source(cls)
    comments, code_lines = {}, set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    out = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, line = [], node.lineno - 1
        while line in comments and line not in code_lines:
            above.insert(0, comments[line])
            line -= 1
        beside = [comments[n] for n in range(node.lineno, node.end_lineno + 1)
                  if n in comments and n in code_lines]
        out[node.target.id] = " ".join(above + beside)
    return out


def field_ranges(cls):
    """{field: 'range'} from the range-helper calls anywhere in the class body:
    _at_least(self, "x", 1) -> '>= 1', _above -> '> 0.0', _in_range -> '[0.0, 1.0]'."""
    out = {}
    for node in ast.walk(ast.parse(_class_source(cls))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and len(node.args) >= 3 and isinstance(node.args[1], ast.Constant)):
            continue
        bounds = [re.sub(r"\b(conf|self)\.", "", ast.unparse(a)) for a in node.args[2:]]
        if node.func.id in RANGE_HELPERS:
            out[node.args[1].value] = RANGE_HELPERS[node.func.id].format(bounds[0])
        elif node.func.id == "_in_range":
            opened = {k.arg for k in node.keywords if ast.literal_eval(k.value)}
            out[node.args[1].value] = (f"{'(' if 'low_open' in opened else '['}{bounds[0]}, "
                                       f"{bounds[1]}{')' if 'high_open' in opened else ']'}")
    return out


# ------------------------------------------------------------------------ the cells


def _unwrap_optional(hint):
    """(hint without Optional, whether it was Optional)."""
    if typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return rest[0], True
    return hint, False


def type_text(hint, path):
    """A readable type: 'int', 'list of float', 'one of a, b', a link to a nested section."""
    hint, optional = _unwrap_optional(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        text = f"mapping: {link(path)}"
    elif origin is Literal:
        text = "one of " + ", ".join(str(a) for a in args)
    elif origin is list:
        text = f"list of {type_text(args[0], path)}" if args else "list"
    elif hint is dict:
        text = "mapping"
    else:
        text = getattr(hint, "__name__", str(hint))
    return f"{text} or null" if optional else text


def yaml_text(value):
    """A value as it is written in a config YAML: null, true, 0.001, [0.9, 0.999]."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return f"`{text.splitlines()[0]}`"


def default_text(f):
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "its keys' defaults"
    return yaml_text(value)


def cell(text):
    return str(text).replace("|", "\\|")


# ---------------------------------------------------------------------- the sections


def dataclass_section(cls, path):
    hints = typing.get_type_hints(cls)
    comments, ranges = field_comments(cls), field_ranges(cls)
    selected = selected_schemas()
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{path}.{f.name}" if path else f.name
        kind = type_text(hints[f.name], key)
        if f.name in selected and not path:
            selector, choices = selected[f.name]
            kind = "mapping: " + ", ".join(link(choice_title(f.name, selector, c))
                                           for c in choices)
        rows.append([f.name, kind, default_text(f), ranges.get(f.name, ""),
                     comments.get(f.name, "")])
    doc = cls.__doc__ or ""
    if doc.startswith(cls.__name__ + "("):   # dataclasses' signature docstring: not written
        doc = ""
    return Section(path or "top level", inspect.cleandoc(doc), rows)


def sections(cls=TrainConfig, path=""):
    """Every section, depth first: cls, its nested dataclasses, the selected schemas."""
    out = [dataclass_section(cls, path)]
    hints, selected = typing.get_type_hints(cls), selected_schemas()
    for f in dataclasses.fields(cls):
        hint, _ = _unwrap_optional(hints[f.name])
        key = f"{path}.{f.name}" if path else f.name
        if not path and f.name in selected:
            selector, choices = selected[f.name]
            for choice, schema in choices.items():
                out += sections(schema, choice_title(f.name, selector, choice))
        elif dataclasses.is_dataclass(hint):
            out += sections(hint, key)
    return out


def derived_values():
    """Markdown list of TrainConfig's properties: values computed from several keys."""
    lines = []
    for name, prop in inspect.getmembers(TrainConfig, lambda m: isinstance(m, property)):
        doc = inspect.cleandoc(prop.__doc__) if prop.__doc__ else ""
        lines.append(f"- `{name}`" + (f": {doc}" if doc else ""))
    return "\n".join(lines)


def aliases():
    lines = []
    for (parent, old), new in loading.WESPEAKER_ALIASES.items():
        where = f"{parent}." if parent else ""
        lines.append(f"- `{where}{old}` is read as `{where}{new}`")
    for old in ("fbank_args.sample_rate", "dataset_args.aug_args.sample_rate",
                "dataset_args.resample_rate"):
        lines.append(f"- `{old}` is read as `sample_rate` (all places given must agree)")
    return "\n".join(lines)


PREAMBLE = """<!-- Generated by `python -m wespeaker_mfcon.config.reference > docs/config_reference.md`
from wespeaker_mfcon/config/schema.py; do not edit (tests/test_config_reference.py). -->

# Config reference

Every key of a training config (`conf/*.yaml`), generated from the schema in
`wespeaker_mfcon/config/schema.py`. A config is checked against it when it is loaded and after
every `--key.sub value` override: an unknown key at any depth, a wrong type or a value out of
range is one `error:` line naming the file or override and the key (see
[Training](training.md#the-config)). `exp/NAME/config.yaml` is written complete, every default
filled in. *checked* gives the simple ranges; checks that involve several keys (for example
K >= 2 with MFCon) are in the `check()` of each class and name both keys when they fail.
"""


def render():
    """The whole page (markdown)."""
    parts = [PREAMBLE]
    for s in sections():
        parts.append(f"## {s.title}\n")
        if s.intro:
            parts.append(s.intro + "\n")
        parts.append(_table([[f"`{r[0]}`"] + [cell(c) for c in r[1:]] for r in s.rows]))
    parts.append("## Derived values\n\nComputed from several keys, in one place "
                 "(properties of `TrainConfig`); never set in a config.\n\n"
                 + derived_values() + "\n")
    parts.append("## WeSpeaker key names\n\nAccepted and renamed on load, so WeSpeaker "
                 "configs keep working:\n\n" + aliases() + "\n")
    return "\n".join(parts)


def _table(rows):
    """A markdown table under HEADER (config/ sits below analysis/, whose tables it cannot
    import)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def main(argv=None):
    argparse.ArgumentParser(prog="python -m wespeaker_mfcon.config.reference",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter
                            ).parse_args(argv)
    print(render(), end="")


if __name__ == "__main__":
    run_main(main)
