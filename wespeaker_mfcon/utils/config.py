"""The training config: a typed schema, validated when loaded and when overridden.

    conf = load_train_config("conf/x.yaml", overrides=parse_overrides(["--mfcon_args.weight", "1"]))
    conf.mfcon_args.weight          # 1.0, a float
    save_config(conf, "exp/E/config.yaml")   # complete; loads back through the same checks

The schema is a tree of dataclasses: every key, its type, its default and its range live here
and nowhere else. An unknown key at any depth, a value of the wrong type or out of range is a
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
from dataclasses import dataclass, field
from typing import List, Literal, Optional

import yaml

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write


class ConfigError(UserError):
    """A bad config value; `key` is its dotted path, so the caller can say where it came from."""

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}" if key else message)
        self.key, self.message = key, message


# --------------------------------------------------------------------------- the schema


@dataclass
class SpecAugArgs:
    num_t_mask: int = 1
    num_f_mask: int = 1
    max_t: int = 10
    max_f: int = 8
    prob: float = 0.6

    def check(self, _conf):
        _at_least(self, "num_t_mask", 0), _at_least(self, "num_f_mask", 0)
        _at_least(self, "max_t", 0), _at_least(self, "max_f", 0)
        _in_range(self, "prob", 0.0, 1.0)


@dataclass
class NoiseSNR:
    """SNR ranges in dB, drawn uniformly; babble: the SNR of each summed talker."""
    noise: List[float] = field(default_factory=lambda: [0.0, 15.0])
    music: List[float] = field(default_factory=lambda: [5.0, 15.0])
    babble: List[float] = field(default_factory=lambda: [13.0, 20.0])

    def check(self, _conf):
        for name in ("noise", "music", "babble"):
            _ordered_pair(self, name)


AUG_TYPES = ("reverb", "noise", "music", "babble")


@dataclass
class AugArgs:
    """On-the-fly noise / music / babble / reverberation (data_type raw)."""
    aug_prob: float = 0.6
    noise_scp: Optional[str] = None     # "{data}" stands for the parent of the training data dir
    rir_scp: Optional[str] = None
    noise_snr: NoiseSNR = field(default_factory=NoiseSNR)
    babble_speakers: List[int] = field(default_factory=lambda: [3, 7])
    aug_types: Optional[List[Literal[AUG_TYPES]]] = None   # None = every type the lists provide
    sample_rate: int = 16000
    cache_mb: float = 256.0             # per-worker cache of decoded noise/RIR arrays
    max_cache_seconds: float = 60.0     # longer noise files are read as random segments

    def check(self, _conf):
        _in_range(self, "aug_prob", 0.0, 1.0)
        _ordered_pair(self, "babble_speakers")
        if self.babble_speakers[0] < 1:
            raise ConfigError("babble_speakers", f"needs at least 1 talker, got "
                                                 f"{self.babble_speakers}")
        _at_least(self, "sample_rate", 1), _at_least(self, "cache_mb", 0)
        _above(self, "max_cache_seconds", 0)


@dataclass
class ShardArgs:
    """data_type shard: the streaming reader's bounded buffers (in samples, per loader worker;
    a sample holds its encoded audio until its batch is cut)."""
    shuffle_size: int = 1000            # sample shuffle buffer after the shard shuffle
    buffer_size: int = 1500             # P x K batcher: samples bucketed by speaker

    def check(self, conf):
        _at_least(self, "shuffle_size", 1)
        _at_least(self, "buffer_size", 2 * conf.dataset_args.spk_per_batch
                  * conf.dataset_args.utts_per_spk)


@dataclass
class DatasetArgs:
    num_frames: int = 200               # training chunk length (10 ms frames)
    sampler: Literal["pk", "random"] = "pk"
    spk_per_batch: int = 16             # P
    utts_per_spk: int = 4               # K (batch = P x K, x 2 with two_crops)
    two_crops: bool = False             # two independently cropped views per utterance
    spec_aug: bool = False
    spec_aug_args: SpecAugArgs = field(default_factory=SpecAugArgs)
    speed_perturb: bool = False         # raw, shard: each speed's copies are new speakers
    speeds: List[float] = field(default_factory=lambda: [1.0, 0.9, 1.1])
    aug_args: Optional[AugArgs] = None  # raw and shard only
    shard_args: Optional[ShardArgs] = None   # shard only (null = the defaults)

    def check(self, conf):
        _at_least(self, "num_frames", 20)
        _at_least(self, "spk_per_batch", 1), _at_least(self, "utts_per_spk", 1)
        if not self.speeds or self.speeds[0] != 1.0 or min(self.speeds) <= 0:
            raise ConfigError("speeds", f"must start with 1.0 and be positive, got {self.speeds}")
        if (conf.mfcon_args.enable and self.sampler == "pk" and self.utts_per_spk < 2
                and not self.two_crops):
            raise ConfigError("utts_per_spk", "MFCon with sampler pk needs K >= 2 utterances "
                                              "per speaker (or two_crops: true) to have "
                                              f"positives, got {self.utts_per_spk}")
        if conf.data_type == "feat" and (self.speed_perturb or self.aug_args is not None):
            key = "speed_perturb" if self.speed_perturb else "aug_args"
            raise ConfigError(key, "needs data_type raw or shard (waveforms); data_type is "
                                   "feat")
        if conf.data_type != "shard" and self.shard_args is not None:
            raise ConfigError("shard_args", f"needs data_type shard; data_type is "
                                            f"{conf.data_type}")
        if conf.data_type == "shard" and self.shard_args is None:
            self.shard_args = ShardArgs()   # written out complete in exp/NAME/config.yaml
            try:
                self.shard_args.check(conf)
            except ConfigError as e:
                raise ConfigError(f"shard_args.{e.key}", f"{e.message} (the default; set "
                                                         "it for this P x K)") from None


@dataclass
class DataloaderArgs:
    num_workers: int = 0
    prefetch_factor: int = 2
    pin_memory: bool = False

    def check(self, _conf):
        _at_least(self, "num_workers", 0), _at_least(self, "prefetch_factor", 1)


@dataclass
class ProjectionArgs:
    """Classification head: am_softmax (= WeSpeaker's add_margin) | arc_margin | softmax."""
    project_type: Literal["am_softmax", "add_margin", "arc_margin", "softmax"] = "am_softmax"
    scale: float = 30.0
    margin: float = 0.2
    easy_margin: bool = False           # arc_margin only

    def check(self, _conf):
        _above(self, "scale", 0), _at_least(self, "margin", 0.0)

    def head_kwargs(self):
        """Constructor arguments of the chosen head (models/projections.py)."""
        if self.project_type == "softmax":
            return {}
        kwargs = {"scale": self.scale, "margin": self.margin}
        if self.project_type == "arc_margin":
            kwargs["easy_margin"] = self.easy_margin
        return kwargs


@dataclass
class MarginSchedulerArgs:
    """WeSpeaker's margin schedule (losses/margin_scheduler.py); epochs count from 1."""
    initial_margin: float = 0.0
    final_margin: float = 0.2
    increase_start_epoch: int = 20
    fix_start_epoch: int = 40
    increase_type: Literal["exp", "linear"] = "exp"
    update_margin: bool = True

    def check(self, _conf):
        _at_least(self, "initial_margin", 0.0), _at_least(self, "final_margin", 0.0)
        _at_least(self, "increase_start_epoch", 1)
        _at_least(self, "fix_start_epoch", self.increase_start_epoch)


@dataclass
class MFConArgs:
    """L = L_cls + weight * sum_k w_k SupCon(z_k) / L over the chosen blocks."""
    enable: bool = False
    weight: float = 0.01                # lambda
    temperature: float = 0.07           # tau
    blocks: Optional[List[int]] = None  # None = every block; negative indices count from the end
    block_weights: Optional[List[float]] = None   # None = uniform; one per chosen block
    embed_dim: Optional[int] = None     # None = the model's embed_dim
    # How lambda is set (losses/weighting.py): constant = weight throughout; grad_ratio: MFCon
    # gradient on the last chosen block = target_ratio x the classification gradient there
    # (EMA ratio_momentum; starts at weight); loss_ratio: lambda = target_ratio x L_cls / L_mfcon
    # (detached); uncertainty: learned log-variances (Kendall et al.; starts at weight);
    # schedule: weight x min(1, step / ramp_steps)
    weighting: Literal["constant", "grad_ratio", "loss_ratio", "uncertainty",
                       "schedule"] = "constant"
    target_ratio: float = 1.0           # grad_ratio, loss_ratio
    ratio_momentum: float = 0.9         # grad_ratio
    ramp_steps: int = 100               # schedule

    def check(self, conf):
        _at_least(self, "weight", 0.0), _above(self, "temperature", 0.0)
        _above(self, "target_ratio", 0.0), _at_least(self, "ramp_steps", 1)
        if not 0.0 <= self.ratio_momentum < 1.0:
            raise ConfigError("ratio_momentum", f"must be in [0, 1), got {self.ratio_momentum}")
        if self.weighting in ("grad_ratio", "uncertainty") and self.weight <= 0:
            raise ConfigError("weight", f"weighting {self.weighting} starts at lambda = weight, "
                                        f"which must be > 0, got {self.weight}")
        num_blocks = conf.num_blocks
        if self.blocks is not None:
            if not self.blocks:
                raise ConfigError("blocks", "needs at least one block (or null for all)")
            bad = [k for k in self.blocks if not -num_blocks <= k < num_blocks]
            if bad:
                raise ConfigError("blocks", f"indices {bad} out of range for {num_blocks} blocks "
                                            f"(0..{num_blocks - 1}, or negative from the end)")
        chosen = num_blocks if self.blocks is None else len(self.blocks)
        if self.block_weights is not None:
            if len(self.block_weights) != chosen:
                raise ConfigError("block_weights", f"{len(self.block_weights)} weights for "
                                                   f"{chosen} chosen blocks")
            if min(self.block_weights) < 0:
                raise ConfigError("block_weights", f"must be >= 0, got {self.block_weights}")
        if self.embed_dim is not None:
            _at_least(self, "embed_dim", 1)


@dataclass
class AdamArgs:
    lr: float = 0.001
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-8

    def check(self, _conf):
        _above(self, "lr", 0.0), _at_least(self, "weight_decay", 0.0), _above(self, "eps", 0.0)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError("betas", f"must be two values in [0, 1), got {self.betas}")


@dataclass
class SGDArgs:
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    dampening: float = 0.0

    def check(self, _conf):
        _above(self, "lr", 0.0), _at_least(self, "weight_decay", 0.0)
        _in_range(self, "momentum", 0.0, 1.0), _in_range(self, "dampening", 0.0, 1.0)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ConfigError("nesterov", "needs momentum > 0 and dampening 0")


OPTIMIZER_ARGS = {"adam": AdamArgs, "sgd": SGDArgs}


@dataclass
class SchedulerArgs:
    """Per-step lr factor: linear warm-up, then step / exponential / no decay."""
    warmup_steps: int = 0
    decay: Literal["step", "exponential", "none"] = "step"
    step_epochs: int = 4                # decay "step": multiply by gamma every step_epochs
    gamma: float = 0.5
    final_lr_ratio: float = 0.01        # decay "exponential": lr ratio at the end of the run

    def check(self, _conf):
        _at_least(self, "warmup_steps", 0), _at_least(self, "step_epochs", 1)
        _in_range(self, "gamma", 0.0, 1.0, low_open=True)
        _in_range(self, "final_lr_ratio", 0.0, 1.0, low_open=True)


@dataclass
class TrainConfig:
    seed: int = 42
    num_epochs: int = 12
    # feat: stage-1 fbank; raw: wavs, fbank on the fly; shard: tar shards (shard.list), the same
    data_type: Literal["feat", "raw", "shard"] = "feat"
    dataset_args: DatasetArgs = field(default_factory=DatasetArgs)
    dataloader_args: DataloaderArgs = field(default_factory=DataloaderArgs)
    fbank_args: dict = field(default_factory=dict)      # raw/shard; checked against Fbank()
    model: Literal["mfa_conformer", "ecapa_tdnn"] = "mfa_conformer"
    model_args: dict = field(default_factory=dict)      # checked against the model constructor
    projection_args: ProjectionArgs = field(default_factory=ProjectionArgs)
    margin_scheduler_args: Optional[MarginSchedulerArgs] = None
    mfcon_args: MFConArgs = field(default_factory=MFConArgs)
    optimizer: Literal["adam", "sgd"] = "adam"
    optimizer_args: dict = field(default_factory=dict)  # AdamArgs or SGDArgs, by optimizer
    scheduler_args: SchedulerArgs = field(default_factory=SchedulerArgs)
    amp: Literal["none", "bf16", "fp16"] = "none"       # bf16 runs on CPU too; fp16 needs CUDA
    grad_clip: float = 0.0              # max gradient norm; 0 = off
    log_batch_interval: int = 50
    save_interval_steps: int = 0        # mid-epoch checkpoints (0 = at epoch ends only)
    # Every N steps, the MFCon and classification gradients at the backbone, per block, into
    # exp/NAME/diagnostics.jsonl (training/diagnostics.py; costs L + 1 backward passes on
    # those steps; one process, MFCon on; 0 = off; training is unchanged either way)
    diagnostics_interval: int = 0
    # Fine-tuning (training/finetune.py); used only when a run starts, never on resume:
    init_from: Optional[str] = None     # a training checkpoint or an averaged avg_model.pt
    init_mfcon_heads: bool = True       # with init_from: its MFCon heads too, if both have them
    init_projection: bool = False       # with init_from: its classification head (same speakers)
    freeze_backbone_steps: int = 0      # with init_from: first N steps train only the heads
    # Written by training into exp/NAME/config.yaml (not set by hand):
    num_classes: Optional[int] = None   # speakers x speeds of the training data
    train_data: Optional[str] = None    # absolute path of the training data dir

    def check(self, _conf):
        _at_least(self, "num_epochs", 1), _at_least(self, "grad_clip", 0.0)
        _at_least(self, "log_batch_interval", 1), _at_least(self, "save_interval_steps", 0)
        _at_least(self, "diagnostics_interval", 0)
        if self.num_classes is not None:
            _at_least(self, "num_classes", 2)
        self._check_finetuning()

    def _check_finetuning(self):
        _at_least(self, "freeze_backbone_steps", 0)
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError("init_from", "must be a checkpoint path or null, got ''")
        if self.init_from is None:
            if self.init_projection:
                raise ConfigError("init_projection", "needs init_from (a checkpoint whose "
                                                     "classification head to keep)")
            if self.freeze_backbone_steps:
                raise ConfigError("freeze_backbone_steps", "needs init_from (freezing a "
                                  "randomly initialized backbone trains nothing useful)")

    # Derived values: computed here and nowhere else.
    @property
    def speeds(self):
        """The speeds the loader draws from ([1.0] without speed perturbation)."""
        return list(self.dataset_args.speeds) if self.dataset_args.speed_perturb else [1.0]

    @property
    def feat_dim(self):
        return self.model_args["input_dim"]

    @property
    def num_blocks(self):
        if self.model == "ecapa_tdnn":
            return len(self.model_args["dilations"])
        return self.model_args["num_blocks"]

    @property
    def batch_size(self):
        ds = self.dataset_args
        return ds.spk_per_batch * ds.utts_per_spk * (2 if ds.two_crops else 1)

    def check_against_data(self, num_speakers, source):
        """Checks that need the training set: P <= number of speakers."""
        if self.dataset_args.spk_per_batch > num_speakers:
            raise UserError(f"{source}: dataset_args.spk_per_batch: P = "
                            f"{self.dataset_args.spk_per_batch} is larger than the "
                            f"{num_speakers} speakers of the training data")

    def classes_for(self, num_speakers):
        """Classes of a training set: every speed-perturbed copy of a speaker is a new one."""
        return num_speakers * len(self.speeds)

    def to_dict(self):
        return dataclasses.asdict(self)


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


def _at_least(node, name, low):
    if getattr(node, name) < low:
        raise ConfigError(name, f"must be >= {low}, got {getattr(node, name)}")


def _above(node, name, low):
    if getattr(node, name) <= low:
        raise ConfigError(name, f"must be > {low}, got {getattr(node, name)}")


def _in_range(node, name, low, high, low_open=False):
    value = getattr(node, name)
    if not (low < value if low_open else low <= value) or value > high:
        bracket = "(" if low_open else "["
        raise ConfigError(name, f"must be in {bracket}{low}, {high}], got {value}")


def _ordered_pair(node, name):
    pair = getattr(node, name)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ConfigError(name, f"must be [low, high], got {pair}")


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
