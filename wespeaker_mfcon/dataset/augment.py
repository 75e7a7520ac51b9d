"""On-the-fly waveform augmentation for training (WeSpeaker / Kaldi recipe style).

All waveforms are 1-D float32 numpy arrays at the run's rate (the `sample_rate` of the
Augmentor, TrainConfig.sample_rate).

* :func:`add_reverb`   convolution with a room impulse response, aligned on the direct path
* :func:`speed_perturb` Kaldi/sox-style speed change (duration scales by 1/factor, pitch moves)
* :class:`Augmentor`   picks one of {reverb, noise, music, babble} per chunk with probability
  ``aug_prob``, reading MUSAN / RIRS_NOISES style lists lazily with a bounded per-worker cache.

Audio is read with :func:`wespeaker_mfcon.utils.audio.load_wav` (channel 0, resampled to
``sample_rate``, one warning per file); speed perturbation uses its ``resample``.

Noise list (``noise_scp``) lines are ``key path [type]``; the type (noise, music, speech/babble)
is the third column when present, otherwise the prefix of the key before the first ``-``
(``noise-free-sound-0001``, ``music-fma-0003``, ``speech-librivox-0042``). Speech files are used
for babble: several of them are summed, each at its own SNR (Kaldi's ``--bg-snrs``).
RIR list (``rir_scp``) lines are ``key path``.
"""

import logging
import math
import os
from collections import OrderedDict
from fractions import Fraction

import numpy as np
from scipy.signal import fftconvolve

from wespeaker_mfcon.utils.audio import audio_info, load_wav, resample
from wespeaker_mfcon.config import AUG_TYPES, aug_args_from
from wespeaker_mfcon.config.schema import SAMPLE_RATE
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_table

logger = logging.getLogger(__name__)

NOISE_TYPES = ("noise", "music", "babble")
# names accepted in a noise list (key prefix or third column) -> augmentation type
_TYPE_ALIASES = {"noise": "noise", "music": "music", "speech": "babble", "babble": "babble"}

_EPS = 1e-20


# --------------------------------------------------------------------------- signal functions

def _as_wave(x, name="wave"):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D waveform, got shape {x.shape}")
    return x


def _power(x):
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def fit_length(noise, length, rng):
    """Crop (at a random offset) or loop (from a random start) `noise` to `length` samples."""
    noise = _as_wave(noise, "noise")
    n = noise.shape[0]
    if n == 0:
        raise ValueError("noise: empty array")
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return noise[start:start + length]
    start = int(rng.integers(0, n))
    return noise[(start + np.arange(length)) % n]


def _noise_gain(speech_power, noise_power, snr_db):
    """Gain that puts noise of `noise_power` at `snr_db` below `speech_power`."""
    if noise_power <= _EPS or speech_power <= _EPS:
        return 0.0
    return math.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))


def add_reverb(speech, rir):
    """Convolve `speech` with `rir`, keeping the length, time alignment and energy.

    The RIR is normalized to unit energy; the output is cropped to the input length starting at
    the RIR's direct-path peak (so a delayed impulse is an identity, as in Kaldi's
    wav-reverberate), then rescaled to the input's energy so reverb never blows the level up.
    """
    speech = _as_wave(speech, "speech")
    rir = _as_wave(rir, "rir").astype(np.float64)
    if speech.size == 0:
        return speech.copy()
    energy = float(np.sum(rir * rir))
    if not np.isfinite(energy) or energy <= _EPS:
        raise ValueError("rir: silent or non-finite impulse response")
    rir = rir / math.sqrt(energy)
    peak = int(np.argmax(np.abs(rir)))
    n = speech.shape[0]
    out = fftconvolve(speech.astype(np.float64), rir, mode="full")[peak:peak + n]
    e_in, e_out = float(np.sum(np.square(speech, dtype=np.float64))), float(np.sum(out * out))
    if e_out > _EPS:
        out *= math.sqrt(e_in / e_out)
    return out.astype(np.float32)


def _ratio(factor):
    frac = Fraction(float(factor)).limit_denominator(1000)
    if frac <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    return frac


def speed_perturb(wave, factor):
    """Play `wave` `factor` times faster (sox `speed`): length becomes ceil(len / factor).

    Implemented as polyphase resampling by 1/factor (scipy.signal.resample_poly), so pitch and
    formants move with the speed, as in Kaldi/WeSpeaker speed perturbation.
    """
    wave = _as_wave(wave)
    frac = _ratio(factor)
    if frac == 1 or wave.size == 0:
        return wave.copy()
    # n samples played `factor` = p/q times faster: resample from rate p to rate q
    return resample(wave, frac.numerator, frac.denominator)


# ------------------------------------------------------------------------------- list reading

def _read_list(path, kind):
    """Read a noise/RIR list -> list of (key, path, type, lineno); validate paths exist."""
    if not os.path.isfile(path):
        raise UserError(f"{kind} list {path}: no such file")
    rows = read_table(path, min_fields=2)
    # recover line numbers (read_table skips blank lines)
    linenos = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.split():
                linenos.append(lineno)
    entries = []
    for (key, fields), lineno in zip(rows, linenos):
        where = f"{path}:{lineno}"
        typ = None
        if kind == "noise":
            if len(fields) >= 2 and fields[-1].lower() in _TYPE_ALIASES:
                typ = _TYPE_ALIASES[fields[-1].lower()]
                fields = fields[:-1]
            else:
                prefix = key.split("-", 1)[0].lower()
                if prefix not in _TYPE_ALIASES:
                    raise UserError(
                        f"{where}: cannot tell the noise type of {key!r}: prefix the key with "
                        f"noise-/music-/speech- or add a third column (noise|music|speech)")
                typ = _TYPE_ALIASES[prefix]
        wav = " ".join(fields)
        if not os.path.isfile(wav):
            raise UserError(f"{where}: {kind} file {wav} does not exist")
        entries.append((key, wav, typ, where))
    if not entries:
        raise UserError(f"{kind} list {path} is empty")
    return entries


class _ArrayCache:
    """LRU cache of numpy arrays bounded by total bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._d = OrderedDict()

    def get(self, key):
        arr = self._d.get(key)
        if arr is not None:
            self._d.move_to_end(key)
        return arr

    def put(self, key, arr):
        if arr.nbytes > self.max_bytes or key in self._d:
            return
        self._d[key] = arr
        self.nbytes += arr.nbytes
        while self.nbytes > self.max_bytes:
            _, old = self._d.popitem(last=False)
            self.nbytes -= old.nbytes

    def __len__(self):
        return len(self._d)


# ----------------------------------------------------------------------------------- Augmentor

class Augmentor:
    """Random reverb / noise / music / babble augmentation of training chunks.

    ``Augmentor(config)(wave, rng)`` returns a float32 array of the same length: the input
    unchanged with probability ``1 - aug_prob``, otherwise one augmentation type drawn uniformly
    from those the lists provide (reverb needs ``rir_scp``; noise/music/babble need entries of
    that type in ``noise_scp``). All randomness comes from `rng`, so a seed reproduces a run.
    `config` is config.AugArgs or a mapping of its keys (the defaults are there); `sample_rate`
    is the run's (TrainConfig.sample_rate). Lists are validated here (files must exist); audio is
    read on first use and kept in a per-worker LRU cache of at most ``cache_mb`` MB. Noise files
    longer than ``max_cache_seconds`` are never loaded whole: a random segment of the needed
    length is read with load_wav start/stop. Unreadable, empty or silent audio raises UserError
    naming the file and its list line.
    """

    def __init__(self, config=None, sample_rate=SAMPLE_RATE):
        args = aug_args_from(config or {})
        self.aug_prob, self.sample_rate = args.aug_prob, sample_rate
        self.snr = {t: tuple(getattr(args.noise_snr, t)) for t in NOISE_TYPES}
        self.babble_speakers = tuple(args.babble_speakers)
        self.max_cache_seconds = args.max_cache_seconds
        self.rirs = _read_list(args.rir_scp, "rir") if args.rir_scp else []
        noises = _read_list(args.noise_scp, "noise") if args.noise_scp else []
        self.noises = {t: [e for e in noises if e[2] == t] for t in NOISE_TYPES}

        available = (["reverb"] if self.rirs else []) + [t for t in NOISE_TYPES if self.noises[t]]
        wanted = args.aug_types
        if wanted is not None:
            missing = [t for t in wanted if t not in available]
            if missing:
                raise UserError(f"augmentation config: aug_types {missing} requested but the "
                                f"lists provide no such files (available: {available})")
            available = [t for t in AUG_TYPES if t in wanted]
        self.types = available
        if self.aug_prob > 0 and not self.types:
            logger.warning("augmentation: aug_prob=%g but no noise_scp/rir_scp given; "
                           "chunks pass through unchanged", self.aug_prob)
        self.last_type = None
        self._cache = _ArrayCache(args.cache_mb * 2 ** 20)
        self._info = {}
        self._warned = set()

    # DataLoader workers get a pickled copy: start each with an empty cache
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = _ArrayCache(self._cache.max_bytes)
        state["_info"] = {}
        state["_warned"] = set()
        return state

    def __repr__(self):
        counts = {t: len(self.noises[t]) for t in NOISE_TYPES}
        return (f"Augmentor(aug_prob={self.aug_prob}, types={self.types}, rirs={len(self.rirs)}, "
                f"noises={counts})")

    # ------------------------------------------------------------------ audio access
    def _audio_info(self, path, where):
        """(frames, sample_rate) of a listed file; errors name the list line."""
        info = self._info.get(path)
        if info is None:
            try:
                info = audio_info(path)[:2]
            except UserError as e:
                raise UserError(f"{where}: {e}") from None
            self._info[path] = info
        return info

    def _read(self, path, where, start=0, stop=None):
        """Frames start:stop (at the file's rate) as float32 at sample_rate, via load_wav."""
        try:
            wave = load_wav(path, self.sample_rate, start, stop, warn=path not in self._warned)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        self._warned.add(path)             # channel/rate warnings: once per file and worker
        return wave

    def _load_full(self, path, where):
        wave = self._cache.get(path)
        if wave is None:
            self._audio_info(path, where)
            wave = self._read(path, where)
            if not np.any(wave):
                raise UserError(f"{where}: {path}: audio is silent (all zeros)")
            self._cache.put(path, wave)
        return wave

    def _noise_segment(self, entry, length, rng):
        """`length` samples of noise from `entry`, at a random offset (looped if short)."""
        _, path, _, where = entry
        frames, sr = self._audio_info(path, where)
        if frames <= self.max_cache_seconds * sr:
            return fit_length(self._load_full(path, where), length, rng)
        need = int(math.ceil(length * sr / self.sample_rate)) + 1
        if need >= frames:
            return fit_length(self._load_full(path, where), length, rng)
        start = int(rng.integers(0, frames - need + 1))
        seg = self._read(path, where, start, start + need)
        if seg.shape[0] < length:       # truncated file or resampling rounding: loop
            seg = fit_length(seg, length, rng)
        return seg[:length]

    # ------------------------------------------------------------------ augmentation
    def _reverb(self, wave, rng):
        _, path, _, where = self.rirs[int(rng.integers(len(self.rirs)))]
        rir = self._load_full(path, where)
        return add_reverb(wave, rir)

    def _additive(self, wave, typ, rng):
        entries = self.noises[typ]
        lo, hi = self.snr[typ]
        if typ == "babble":
            k = int(rng.integers(self.babble_speakers[0], self.babble_speakers[1] + 1))
            idx = rng.choice(len(entries), size=k, replace=len(entries) < k)
        else:
            idx = [int(rng.integers(len(entries)))]
        p_speech = _power(wave)
        mix = wave.astype(np.float64)
        for i in idx:
            seg = self._noise_segment(entries[int(i)], wave.shape[0], rng)
            snr = float(rng.uniform(lo, hi))
            mix += _noise_gain(p_speech, _power(seg), snr) * seg
        return mix.astype(np.float32)

    def __call__(self, wave, rng):
        """Augment one chunk; returns a new float32 array of the same length."""
        wave = _as_wave(wave)
        self.last_type = None
        if rng.random() >= self.aug_prob or not self.types or wave.size == 0:
            return wave.copy()
        typ = self.types[int(rng.integers(len(self.types)))]
        if typ == "reverb":
            out = self._reverb(wave, rng)
        else:
            out = self._additive(wave, typ, rng)
        peak = float(np.max(np.abs(out)))
        if peak > 1.0:              # keep in [-1, 1] like the input (WeSpeaker normalizes too)
            out /= peak
        self.last_type = typ
        return out
