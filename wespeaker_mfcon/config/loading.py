"""Loading the training config: YAML + `--a.b value` overrides -> a validated TrainConfig.

    conf = load_train_config("conf/x.yaml", overrides=parse_overrides(["--mfcon_args.weight", "1"]))
    conf.mfcon_args.weight          # 1.0, a float
    save_config(conf, "exp/E/config.yaml")   # complete; loads back through the same checks

The schema (config/schema.py) is a tree of dataclasses: every key, its type, its default and
its range live there and nowhere else. An unknown key at any depth, a value of the wrong type or out of range is a
UserError of one line that names where it came from (the YAML file or the `--a.b` override),
the key path and, for a misspelling, the closest valid key:

    conf/x.yaml: mfcon_args.wieght: unknown key (did you mean 'weight'?)

Model and feature arguments are checked against the constructor of the chosen model and of
the front end (their signatures hold the defaults). Values derived from several keys (number
of speed classes, feature dimension) are properties of TrainConfig, computed in one place.
"""

import copy
import dataclasses
import difflib
import inspect
import typing
from typing import List, Literal

import yaml

from wespeaker_mfcon.config.schema import OPTIMIZER_ARGS, AugArgs, ConfigError, TrainConfig
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write


# ----------------------------------------------------- model and front end arguments


def _signature_args(constructor, skip=()):
    """{name: default} of a constructor's keyword arguments: the schema of model_args."""
    return {name: p.default for name, p in inspect.signature(constructor).parameters.items()
            if name not in skip and name != "self" and p.default is not inspect.Parameter.empty}


def _model_arg_defaults(model):
    from wespeaker_mfcon.models import MODELS
    return _signature_args(MODELS[model])


def _fbank_arg_defaults():
    from wespeaker_mfcon.frontend.fbank import Fbank
    # dither is on in training (set there); num_mel_bins is model_args.input_dim
    return _signature_args(Fbank, skip=("dither", "num_mel_bins"))


def _check_kwargs(values, defaults, key):
    """Validate a {name: value} dict against constructor defaults; return it completed."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(key, f"must be a mapping, got {_describe(values)}")
    out = dict(defaults)
    for name, value in values.items():
        if name not in defaults:
            raise ConfigError(f"{key}.{name}", "unknown key" + _suggest(name, defaults))
        default = defaults[name]
        hint = type(default) if default is not None else typing.Any
        if isinstance(default, tuple):
            hint = List[type(default[0])] if default else list
        out[name] = _convert(hint, value, f"{key}.{name}")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _check_model_args(conf):
    args = conf.model_args
    if conf.model == "mfa_conformer":
        _positive_ints(args, ("input_dim", "num_blocks", "output_size", "attention_heads",
                              "linear_units", "cnn_module_kernel", "embed_dim"))
        if args["output_size"] % args["attention_heads"]:
            raise ConfigError("model_args.attention_heads", f"{args['attention_heads']} does not "
                              f"divide output_size {args['output_size']}")
        if args["cnn_module_kernel"] % 2 == 0:
            raise ConfigError("model_args.cnn_module_kernel",
                              f"must be odd, got {args['cnn_module_kernel']}")
        if args["subsampling"] not in (2, 4):
            raise ConfigError("model_args.subsampling", f"must be 2 or 4, got "
                                                        f"{args['subsampling']}")
        for name in ("dropout_rate", "positional_dropout_rate", "attention_dropout_rate"):
            if not 0.0 <= args[name] < 1.0:
                raise ConfigError(f"model_args.{name}", f"must be in [0, 1), got {args[name]}")
    else:
        _positive_ints(args, ("input_dim", "channels", "embed_dim", "scale", "kernel_size",
                              "mfa_channels", "se_channels"))
        if args["channels"] % args["scale"]:
            raise ConfigError("model_args.channels", f"{args['channels']} is not divisible by "
                                                     f"the Res2 scale {args['scale']}")
        if not args["dilations"] or min(args["dilations"]) < 1:
            raise ConfigError("model_args.dilations", f"needs positive dilations, got "
                                                      f"{args['dilations']}")
    if args["pooling"] not in ("ASP", "TSTP"):
        raise ConfigError("model_args.pooling", f"must be ASP or TSTP, got {args['pooling']!r}")


def _positive_ints(args, names):
    for name in names:
        if args[name] < 1:
            raise ConfigError(f"model_args.{name}", f"must be >= 1, got {args[name]}")


def _check_fbank_args(conf):
    """fbank_args completed from Fbank's defaults; num_mel_bins, if given, must be input_dim."""
    args = dict(conf.fbank_args)
    num_mel_bins = args.pop("num_mel_bins", conf.feat_dim)
    if num_mel_bins != conf.feat_dim:
        raise ConfigError("fbank_args.num_mel_bins", f"{num_mel_bins} differs from "
                          f"model_args.input_dim {conf.feat_dim}; leave it out to use the "
                          "model's input_dim")
    args = _check_kwargs(args, _fbank_arg_defaults(), "fbank_args")
    for name in ("sample_rate", "frame_length_ms", "frame_shift_ms"):
        if args[name] <= 0:
            raise ConfigError(f"fbank_args.{name}", f"must be > 0, got {args[name]}")
    return args


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
    raw = _rename_aliases(copy.deepcopy(raw))
    if raw.get("amp") in (False, None):
        raw["amp"] = "none"                      # YAML `amp: null` / `amp: false`
    conf = _from_dict(TrainConfig, raw)
    conf.model_args = _check_kwargs(conf.model_args, _model_arg_defaults(conf.model),
                                    "model_args")
    conf.fbank_args = _check_fbank_args(conf)
    opt_args = _from_dict(OPTIMIZER_ARGS[conf.optimizer], conf.optimizer_args, "optimizer_args")
    _check_ranges(opt_args, conf, "optimizer_args.")
    conf.optimizer_args = dataclasses.asdict(opt_args)
    _check_model_args(conf)
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
        if node is dict:
            return                                   # model/fbank/optimizer args: checked later
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
