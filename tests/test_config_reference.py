"""The config reference (docs/config_reference.md) is generated from the schema: the committed
page is the generated one, every key a complete config holds is documented (and nothing else),
and the comments, types, defaults and ranges come out of a dataclass's source as written."""

import os
from dataclasses import dataclass
from typing import List, Literal, Optional

from wespeaker_mfcon.config import reference, validate
from wespeaker_mfcon.config.schema import _at_least, _in_range  # noqa: F401 (read as source)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class _Inner:
    """Inner doc."""
    a: int = 3                          # beside a


@dataclass
class _Toy:
    seed: int = 1
    # above x, line 1
    # above x, line 2
    x: float = 0.5                      # beside x
    y: Optional[List[int]] = None
    mode: Literal["p", "q"] = "p"       # p | q

    inner: Optional[_Inner] = None

    def check(self, conf):
        _at_least(self, "y", 2 * conf.k)
        _in_range(self, "x", 0.0, 1.0, low_open=True)


def test_a_dataclass_is_documented_from_its_source():
    top, inner = reference.sections(_Toy)
    assert top.title == "top level" and top.intro == ""
    assert top.rows == [
        ["seed", "int", "`1`", "", ""],
        ["x", "float", "`0.5`", "(0.0, 1.0]", "above x, line 1 above x, line 2 beside x"],
        ["y", "list of int or null", "`null`", ">= 2 * k", ""],
        ["mode", "one of p, q", "`p`", "", "p | q"],
        ["inner", "mapping: [inner](#inner) or null", "`null`", "", ""],
    ]
    assert (inner.title, inner.intro, inner.rows) == ("inner", "Inner doc.",
                                                      [["a", "int", "`3`", "", "beside a"]])


def test_anchors_follow_the_heading_slugs_of_mkdocs():
    assert reference.anchor("dataset_args.aug_args") == "dataset_argsaug_args"
    assert reference.anchor("model_args (model: ecapa_tdnn)") == "model_args-model-ecapa_tdnn"
    assert reference.anchor("top level") == "top-level"


def _documented_keys():
    return {(s.title, row[0]) for s in reference.sections() for row in s.rows}


def _config_keys(conf):
    """{(section title, key)} of a complete config as save_config writes it."""
    data, out = conf.to_dict(), set()
    selected = {"model_args": f"model_args (model: {conf.model})",
                "optimizer_args": f"optimizer_args (optimizer: {conf.optimizer})"}

    def walk(node, title):
        for key, value in node.items():
            out.add((title, key))
            child = selected.get(key, key) if title == "top level" else f"{title}.{key}"
            if isinstance(value, dict):
                walk(value, child)

    walk(data, "top level")
    return out


def test_every_key_of_a_complete_config_is_documented_and_nothing_else():
    default = validate({})
    other = validate({"data_type": "shard", "model": "ecapa_tdnn", "optimizer": "sgd",
                      "dataset_args": {"aug_args": {}}, "margin_scheduler_args": {}})
    keys = _config_keys(default) | _config_keys(other)
    assert ("dataset_args.aug_args.noise_snr", "babble") in keys     # the walk goes deep
    assert ("model_args (model: ecapa_tdnn)", "dilations") in keys
    assert keys == _documented_keys()


def test_the_committed_page_is_the_generated_one():
    with open(os.path.join(REPO, "docs", "config_reference.md"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == reference.render(), (
        "docs/config_reference.md is stale: python -m wespeaker_mfcon.config.reference "
        "> docs/config_reference.md")
