"""Loading the training config: YAML + `--a.b value` overrides -> a validated TrainConfig.

    conf = load_train_config("conf/x.yaml", overrides=parse_overrides(["--mfcon_args.weight", "1"]))
    conf.mfcon_args.weight          # 1.0, a float
    save_config(conf, "exp/E/config.yaml")   # complete; loads back through the same checks

The schema (config/schema.py) is a tree of dataclasses: every key, its type, its default and
its range live there and nowhere else. An unknown key at any depth, a value of the wrong type or out of range is a
UserError of one line that names where it came from (the YAML file or the `--a.b` override),
the key path and, for a misspelling, the closest valid key:

    conf/x.yaml: mfcon_args.wieght: unknown key (did you mean 'weight'?)

model_args are read as the dataclass of the chosen model (schema.MODEL_ARGS), optimizer_args
as that of the optimizer. The sample rate is one key, `sample_rate`; older configs that gave
it as fbank_args.sample_rate or aug_args.sample_rate (and WeSpeaker's
dataset_args.resample_rate) load into it. Values derived from several keys (number of speed
classes, feature dimension) are properties of TrainConfig, computed in one place.
"""

import copy
import dataclasses
import difflib
import typing
from typing import List, Literal

import yaml

from wespeaker_mfcon.config.schema import (MODEL_ARGS, OPTIMIZER_ARGS, AugArgs, ConfigError,
                                           TrainConfig)
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write


# ----------------------------------------------------------- one sample rate, old keys


def _one_sample_rate(raw):
    """The rate given once, as `sample_rate`: the places older configs (and WeSpeaker's) gave
    it are read into it, and must agree with each other."""
    found = []
    for parent, key in (("fbank_args", "sample_rate"), ("dataset_args", "resample_rate")):
        node = raw.get(parent)
        if isinstance(node, dict) and key in node:
            found.append((f"{parent}.{key}", node.pop(key)))
    ds = raw.get("dataset_args")
    aug = ds.get("aug_args") if isinstance(ds, dict) else None
    if isinstance(aug, dict) and "sample_rate" in aug:
        found.append(("dataset_args.aug_args.sample_rate", aug.pop("sample_rate")))
    if "sample_rate" in raw:
        found.insert(0, ("sample_rate", raw["sample_rate"]))
    for where, value in found[1:]:
        if value != found[0][1]:
            raise ConfigError(where, f"{value} differs from {found[0][0]} {found[0][1]}; give "
                                     "the sample rate once, as sample_rate")
    if found:
        raw["sample_rate"] = found[0][1]
    return raw


def _fbank_bins(raw, model_args):
    """fbank_args.num_mel_bins, if given, must be model_args.input_dim (it is not a key of
    its own: the model's input dimension is the number of bins)."""
    fb = raw.get("fbank_args")
    if not isinstance(fb, dict) or "num_mel_bins" not in fb:
        return
    bins = fb.pop("num_mel_bins")
    if bins != model_args.input_dim:
        raise ConfigError("fbank_args.num_mel_bins", f"{bins} differs from model_args.input_dim "
                          f"{model_args.input_dim}; leave it out to use the model's input_dim")


# Keys that configs saved by earlier versions hold at values that are now fixed (a log-energy
# column is not a feature of any model here): read and dropped at these values, refused at others.
_FIXED_FBANK_KEYS = {"use_energy": False, "energy_floor": 0.0}


def _fixed_fbank_keys(raw):
    fb = raw.get("fbank_args")
    if not isinstance(fb, dict):
        return
    for key, fixed in _FIXED_FBANK_KEYS.items():
        if key in fb and fb.pop(key) != fixed:
            raise ConfigError(f"fbank_args.{key}", f"only {fixed} is supported (the models "
                                                   "take log-mel bins without an energy column)")


# ------------------------------------------------------------------ generic checking


def _suggest(name, valid):
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid keys: {', '.join(sorted(valid))})"


def _describe(value):
    return f"{type(value).__name__} {value!r}" if value is not None else "null"


def _convert(hint, value, key):
    """Check `value` against a type hint; returns it converted (int -> float, dict -> dataclass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin is typing.Union:                       # Optional[X]
        if value is None:
            return None
        return _convert([a for a in args if a is not type(None)][0], value, key)
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(key, f"must be one of {', '.join(map(str, args))}; got "
                                   f"{value!r}{hint}")
        return value
    if origin in (list, List) or hint is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"must be a list, got {_describe(value)}")
        item = args[0] if args else typing.Any
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, key)
    return _scalar(hint, value, key)


def _scalar(hint, value, key):
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is dict:
        ok = isinstance(value, dict) or value is None
        value = value or {}
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ConfigError(key, f"must be {hint.__name__}, got {_describe(value)}")
    return value


def _from_dict(cls, data, key=""):
    """A dataclass instance from a mapping, every key and type checked (not ranges)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(key, f"must be a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        where = f"{key}.{name}" if key else str(name)
        if name not in fields:
            raise ConfigError(where, "unknown key" + _suggest(name, fields))
        values[name] = _convert(hints[name], value, where)
    return cls(**values)


def _check_ranges(node, conf, key=""):
    """Run every dataclass's check(conf) depth first; errors get the full key path."""
    for f in dataclasses.fields(node):
        child = getattr(node, f.name)
        if dataclasses.is_dataclass(child):
            _check_ranges(child, conf, f"{key}{f.name}.")
    if hasattr(node, "check"):
        try:
            node.check(conf)
        except ConfigError as e:
            raise ConfigError(key + e.key, e.message) from None


# --------------------------------------------------------------- WeSpeaker key names

# WeSpeaker's names for the same settings; renamed on load so its configs keep working.
WESPEAKER_ALIASES = {
    ("dataset_args", "num_frms"): "num_frames",
    ("model_args", "feat_dim"): "input_dim",
    ("model_args", "pooling_func"): "pooling",
    ((), "margin_update"): "margin_scheduler_args",
    ((), "model_init"): "init_from",
}


def _rename_aliases(raw):
    for (parent, old), new in WESPEAKER_ALIASES.items():
        node = raw if parent == () else raw.get(parent)
        if isinstance(node, dict) and old in node:
            if new in node:
                where = f"{parent}." if parent else ""
                raise ConfigError(f"{where}{old}", f"given together with its new name '{new}'")
            node[new] = node.pop(old)
    if raw.get("enable_amp") is not None:          # WeSpeaker: enable_amp: true -> bf16
        enable = raw.pop("enable_amp")
        raw.setdefault("amp", "bf16" if enable else "none")
    return raw


# --------------------------------------------------------------------- load and save


def validate(raw):
    """A raw mapping -> a checked, complete TrainConfig. Raises ConfigError(key, message)."""
    raw = _one_sample_rate(_rename_aliases(copy.deepcopy(raw)))
    if raw.get("amp") in (False, None):
        raw["amp"] = "none"                      # YAML `amp: null` / `amp: false`
    model_args = raw.pop("model_args", None)
    model = raw.get("model", "mfa_conformer")
    if model not in MODEL_ARGS:                  # the one-line error of an unknown model
        _from_dict(TrainConfig, {"model": model})
    model_args = _from_dict(MODEL_ARGS[model], model_args, "model_args")
    _fbank_bins(raw, model_args)
    _fixed_fbank_keys(raw)
    conf = _from_dict(TrainConfig, raw)
    conf.model_args = model_args
    opt_args = _from_dict(OPTIMIZER_ARGS[conf.optimizer], conf.optimizer_args, "optimizer_args")
    _check_ranges(opt_args, conf, "optimizer_args.")
    conf.optimizer_args = dataclasses.asdict(opt_args)
    _check_ranges(conf, conf)
    return conf


def aug_args_from(values, key="aug_args"):
    """AugArgs from a mapping (or AugArgs), keys, types and ranges checked; for Augmentor."""
    if isinstance(values, AugArgs):
        return values
    args = _from_dict(AugArgs, values, key)
    try:
        _check_ranges(args, None)
    except ConfigError as e:
        raise UserError(f"{key}.{e}") from None
    return args


def read_yaml(path):
    """A YAML mapping from a file, with one-line errors for missing or malformed files."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a YAML mapping")
    return data


def load_train_config(path, overrides=None):
    """Read, override and validate a training config. Errors name the file or the override."""
    overrides = overrides or {}
    for dotted in overrides:
        check_override_key(dotted)
    merged = apply_overrides(read_yaml(path), overrides)
    try:
        return validate(merged)
    except ConfigError as e:
        source = _override_for(e.key, overrides)
        if source is None:
            raise UserError(f"{path}: {e}") from None
        detail = e.message if e.key == source else str(e)
        raise UserError(f"override --{source}: {detail}") from None


def _override_for(key, overrides):
    """The override that set `key` (or one of its parents), if any."""
    key = key.split("[")[0]
    for dotted in overrides:
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return dotted
    return None


def check_override_key(dotted):
    """Walk `--a.b.c` down the schema; an unknown key is an error naming the override."""
    node, path = TrainConfig, []
    for name in dotted.split("."):
        path.append(name)
        if node is dict or path[:1] == ["model_args"] and len(path) > 1:
            return                                   # by model / optimizer: checked later
        fields = {f.name: f for f in dataclasses.fields(node)}
        if name not in fields:
            where = "" if len(path) == len(dotted.split(".")) else f"{'.'.join(path)}: "
            raise UserError(f"override --{dotted}: {where}unknown key" + _suggest(name, fields))
        node = _dataclass_in(typing.get_type_hints(node)[name])
        if node is None:
            if len(path) < len(dotted.split(".")):
                raise UserError(f"override --{dotted}: {'.'.join(path)} is not a mapping")
            return


def _dataclass_in(hint):
    """The dataclass (or dict) a field holds, unwrapping Optional; None for plain values."""
    if typing.get_origin(hint) is typing.Union:
        hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
    if dataclasses.is_dataclass(hint) or hint is dict:
        return hint
    return None


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
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"override --{key}: cannot parse value {value!r}") from None
    return overrides


def apply_overrides(raw, overrides):
    """Set dotted keys in a copy of the raw mapping (a null or missing parent becomes {})."""
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = raw
        for key in keys[:-1]:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                raise UserError(f"override --{dotted}: {key!r} is not a mapping")
        node[keys[-1]] = value
    return raw


def save_config(conf, path):
    """Write the complete config as YAML (atomically); it loads back with load_train_config."""
    data = conf.to_dict() if isinstance(conf, TrainConfig) else conf
    with atomic_write(path) as f:
        yaml.safe_dump(data, f, sort_keys=False)
