"""The training config's schema: a tree of dataclasses, each key with its type, default and
range check. Values derived from several keys are properties of TrainConfig, computed here
and nowhere else. Loading, overrides and type checking are config/loading.py.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import List, Literal, Optional, Union

from wespeaker_mfcon.utils.errors import UserError

SAMPLE_RATE = 16000     # Hz: the default of TrainConfig.sample_rate, the one sample rate of a run
NUM_MEL_BINS = 80       # the default feature dimension (model_args.input_dim)


class ConfigError(UserError):
    """A bad config value; `key` is its dotted path, so the caller can say where it came from."""

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}" if key else message)
        self.key, self.message = key, message




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
class FbankArgs:
    """Log-mel fbank (frontend/fbank.py, Kaldi semantics). These defaults are sherpa-onnx's
    speaker-embedding front end, so an exported model sees the same features there. The
    number of bins is model_args.input_dim and the rate is the top-level sample_rate."""
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0              # Hz, lowest mel bin edge
    high_freq: float = -400.0           # Hz; <= 0 counts down from Nyquist (7600 at 16 kHz)
    snip_edges: bool = False            # False: frames centred, the signal reflected at the ends
    window_type: Literal["povey", "hanning", "hamming", "sine", "blackman",
                         "rectangular"] = "povey"
    preemphasis: float = 0.97
    remove_dc_offset: bool = True

    def check(self, _conf):
        _above(self, "frame_length_ms", 0.0), _above(self, "frame_shift_ms", 0.0)
        _at_least(self, "low_freq", 0.0), _in_range(self, "preemphasis", 0.0, 1.0)


@dataclass
class MFAConformerArgs:
    """model: mfa_conformer (models/mfa_conformer.py). Defaults: the paper's model (~19.8 M)."""
    input_dim: int = NUM_MEL_BINS
    num_blocks: int = 6
    output_size: int = 256              # d, the width of every block
    attention_heads: int = 4
    linear_units: int = 2048            # FFN width
    cnn_module_kernel: int = 15         # depthwise convolution, odd
    dropout_rate: float = 0.1
    positional_dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    subsampling: Literal[2, 4] = 2      # time reduction of the Conv2d front (paper: 1/2)
    embed_dim: int = 192
    pooling: Literal["ASP", "TSTP"] = "ASP"

    def check(self, _conf):
        for name in ("input_dim", "num_blocks", "output_size", "attention_heads",
                     "linear_units", "cnn_module_kernel", "embed_dim"):
            _at_least(self, name, 1)
        if self.output_size % self.attention_heads:
            raise ConfigError("attention_heads", f"{self.attention_heads} does not divide "
                                                 f"output_size {self.output_size}")
        if self.cnn_module_kernel % 2 == 0:
            raise ConfigError("cnn_module_kernel", f"must be odd, got {self.cnn_module_kernel}")
        _in_range(self, "dropout_rate", 0.0, 1.0, high_open=True)
        _in_range(self, "positional_dropout_rate", 0.0, 1.0, high_open=True)
        _in_range(self, "attention_dropout_rate", 0.0, 1.0, high_open=True)

    @property
    def block_count(self):
        """Blocks whose outputs MFCon can use."""
        return self.num_blocks


@dataclass
class ECAPATDNNArgs:
    """model: ecapa_tdnn (models/ecapa_tdnn.py). Defaults: C=512 (~6.2 M)."""
    input_dim: int = NUM_MEL_BINS
    channels: int = 512
    embed_dim: int = 192
    scale: int = 8                      # Res2Net scale; divides channels
    dilations: List[int] = field(default_factory=lambda: [2, 3, 4])   # one SE-Res2Block each
    kernel_size: int = 3
    mfa_channels: int = 1536
    se_channels: int = 128
    pooling: Literal["ASP", "TSTP"] = "ASP"

    def check(self, _conf):
        for name in ("input_dim", "channels", "embed_dim", "scale", "kernel_size",
                     "mfa_channels", "se_channels"):
            _at_least(self, name, 1)
        if self.channels % self.scale:
            raise ConfigError("channels", f"{self.channels} is not divisible by the Res2 scale "
                                          f"{self.scale}")
        if not self.dilations or min(self.dilations) < 1:
            raise ConfigError("dilations", f"needs positive dilations, got {self.dilations}")

    @property
    def block_count(self):
        """Blocks whose outputs MFCon can use: one SE-Res2Block per dilation."""
        return len(self.dilations)


MODEL_ARGS = {"mfa_conformer": MFAConformerArgs, "ecapa_tdnn": ECAPATDNNArgs}


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
    cache_mb: float = 256.0             # per-worker cache of decoded noise/RIR arrays
    max_cache_seconds: float = 60.0     # longer noise files are read as random segments

    def check(self, _conf):
        _in_range(self, "aug_prob", 0.0, 1.0)
        _ordered_pair(self, "babble_speakers")
        if self.babble_speakers[0] < 1:
            raise ConfigError("babble_speakers", f"needs at least 1 talker, got "
                                                 f"{self.babble_speakers}")
        _at_least(self, "cache_mb", 0)
        _above(self, "max_cache_seconds", 0)


@dataclass
class ShardArgs:
    """data_type shard: the streaming reader's bounded buffers (in samples, per loader worker;
    a sample holds its encoded audio until its batch is cut)."""
    shuffle_size: int = 1000            # sample shuffle buffer after the shard shuffle
    buffer_size: int = 1500             # P x K batcher: samples bucketed by speaker
    retries: int = 6                    # URL / pipe: shards: failures in a row retried
    retry_wait: float = 1.0             # seconds before a first retry, doubled for each next

    def check(self, conf):
        _at_least(self, "shuffle_size", 1), _at_least(self, "retries", 0)
        _above(self, "retry_wait", 0)
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
        _in_range(self, "ratio_momentum", 0.0, 1.0, high_open=True)
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
    # Hz: audio is read (resampled) at this rate; the fbank, augmentation, shard decoding and
    # the ONNX metadata use it
    sample_rate: int = SAMPLE_RATE
    # feat: stage-1 fbank; raw: wavs, fbank on the fly; shard: tar shards (shard.list) of wavs
    data_type: Literal["feat", "raw", "shard"] = "feat"
    dataset_args: DatasetArgs = field(default_factory=DatasetArgs)
    dataloader_args: DataloaderArgs = field(default_factory=DataloaderArgs)
    fbank_args: FbankArgs = field(default_factory=FbankArgs)   # stage 1 and raw/shard training
    model: Literal["mfa_conformer", "ecapa_tdnn"] = "mfa_conformer"
    # the chosen model's arguments (its section below)
    model_args: Union[MFAConformerArgs, ECAPATDNNArgs] = field(default_factory=MFAConformerArgs)
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
        _at_least(self, "sample_rate", 1000)
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
        return self.model_args.input_dim

    @property
    def num_blocks(self):
        return self.model_args.block_count

    def fbank_kwargs(self):
        """The keyword arguments of frontend.fbank.Fbank / fbank for this config."""
        return {"sample_rate": self.sample_rate, "num_mel_bins": self.feat_dim,
                **dataclasses.asdict(self.fbank_args)}

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


# --------------------------------------------------------------------- range checks


def _at_least(node, name, low):
    if getattr(node, name) < low:
        raise ConfigError(name, f"must be >= {low}, got {getattr(node, name)}")


def _above(node, name, low):
    if getattr(node, name) <= low:
        raise ConfigError(name, f"must be > {low}, got {getattr(node, name)}")


def _in_range(node, name, low, high, low_open=False, high_open=False):
    value = getattr(node, name)
    if not (low < value if low_open else low <= value) or \
            not (value < high if high_open else value <= high):
        bracket = ("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]")
        raise ConfigError(name, f"must be in {bracket}, got {value}")


def _ordered_pair(node, name):
    pair = getattr(node, name)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ConfigError(name, f"must be [low, high], got {pair}")
