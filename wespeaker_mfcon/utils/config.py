"""YAML configs: load, apply command-line overrides ("--a.b value"), save."""

import copy

import yaml

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write


def load_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(conf, dict):
        raise UserError(f"{path}: a config must be a YAML mapping")
    return conf


def parse_overrides(args):
    """["--a.b", "3", "--c=x"] -> {"a.b": 3, "c": "x"} (values parsed as YAML)."""
    overrides, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise UserError(f"unexpected argument {arg!r} (overrides look like --key.sub value)")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise UserError(f"override {arg} needs a value")
            key, value = arg[2:], args[i + 1]
            i += 2
        overrides[key] = yaml.safe_load(value)
    return overrides


def apply_overrides(conf, overrides):
    """Set dotted keys in a copy of conf. The top-level key must already exist."""
    conf = copy.deepcopy(conf)
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        if keys[0] not in conf:
            raise UserError(f"unknown config key {keys[0]!r} in override --{dotted}")
        node = conf
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UserError(f"override --{dotted}: {key!r} is not a mapping")
        node[keys[-1]] = value
    return conf


def save_config(conf, path):
    with atomic_write(path) as f:
        yaml.safe_dump(conf, f, sort_keys=False)
