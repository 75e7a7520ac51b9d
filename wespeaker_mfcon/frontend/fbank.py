"""Kaldi-compatible log-mel filterbank features in pure torch.

Vectorized over frames and over a batch, runs on the device of its input and exports to ONNX
with the dynamo exporter. The input is a float waveform on the int16 scale (samples * 32768,
as WeSpeaker feeds Kaldi), the output the Kaldi ``compute-fbank-feats`` result: per frame

    [dither] -> remove DC offset -> pre-emphasis -> window -> zero-pad to a power of two
    -> |FFT|^2 -> triangular mel bank (mel = 1127 ln(1 + f/700)) -> log(max(., FLT_EPSILON))

Frames are a strided view (unfold) of the waveform; every step is a batched tensor op
(torch.fft.rfft for the spectrum, one matmul for the mel bank), which exports to ONNX as
Gather/ReduceMean/DFT/MatMul. Computation happens in the dtype of the input: float32 by
default; pass a float64 waveform for a reference-quality result. Precision (float32 vs
kaldi-native-fbank, itself float32): ~1e-4 on speech-like, noise and DC-offset int16 signals;
on pure int16 tones, bins ~100 dB below the tone differ by up to ~5e-3, as much as knf differs
from a float64 reference there: float32 cannot resolve that range (see tests/test_fbank.py).

The project's settings are FBANK_DEFAULTS, the signature defaults of every function here: they
are sherpa-onnx's speaker-embedding front end (mel up to Nyquist - 400 Hz, snip_edges=False), so
an exported model sees the same features in sherpa-onnx as in training and in our inference.
Kaldi's compute-fbank-feats defaults differ in two places, high_freq=0 (Nyquist) and
snip_edges=True: pass those explicitly to reproduce Kaldi / WeSpeaker features.
"""

import dataclasses
import math

import torch
from torch import nn

from wespeaker_mfcon.config.schema import NUM_MEL_BINS, SAMPLE_RATE, FbankArgs

# std::numeric_limits<float>::epsilon(), Kaldi's floor before the log.
FLOAT_EPS = float(torch.finfo(torch.float32).eps)

# The project's front end (its values: config/schema.py FbankArgs, SAMPLE_RATE, NUM_MEL_BINS),
# identical to sherpa-onnx's speaker-embedding feature extractor
# (sherpa_onnx FeatureExtractorConfig defaults, computed by kaldi-native-fbank): stage 1
# (compute_fbank), on-the-fly fbank in raw-waveform training, and inference (Embedder, extract)
# all use exactly these. high_freq <= 0 counts down from Nyquist (Kaldi semantics: -400 is
# 7600 Hz at 16 kHz); snip_edges=False centres frame t on sample t * shift + shift / 2 and
# reflects the waveform at both ends, giving (N + shift / 2) // shift frames. Use
# dict(FBANK_DEFAULTS, key=value) for a variant; do not modify this dict.
FBANK_DEFAULTS = dict(sample_rate=SAMPLE_RATE, num_mel_bins=NUM_MEL_BINS, dither=0.0,
                      **dataclasses.asdict(FbankArgs()))
_D = FBANK_DEFAULTS


def _frame_params(sample_rate, frame_length_ms, frame_shift_ms):
    # Kaldi: static_cast<int32>(samp_freq * 0.001 * ms)
    length = int(sample_rate * 0.001 * frame_length_ms)
    shift = int(sample_rate * 0.001 * frame_shift_ms)
    if length <= 0 or shift <= 0:
        raise ValueError(f"frame length {length} / shift {shift} samples must be positive")
    return length, shift


def _padded_size(length):
    return 1 << (length - 1).bit_length()  # round_to_power_of_two


def num_frames(num_samples, sample_rate=_D["sample_rate"], frame_length_ms=_D["frame_length_ms"],
               frame_shift_ms=_D["frame_shift_ms"], snip_edges=_D["snip_edges"]):
    """Number of frames Kaldi produces for `num_samples` samples.

    `num_samples` may be an int or an integer tensor of lengths (returned as a tensor).
    snip_edges=True: (N - length) // shift + 1 (0 below one frame length);
    snip_edges=False: (N + shift // 2) // shift.
    """
    length, shift = _frame_params(sample_rate, frame_length_ms, frame_shift_ms)
    if snip_edges:
        # Floor division keeps this right for num_samples < length: the result is <= 0.
        n = (num_samples - length) // shift + 1
        return n.clamp(min=0) if torch.is_tensor(num_samples) else max(0, n)
    return (num_samples + shift // 2) // shift


def mel_banks(num_mel_bins=_D["num_mel_bins"], sample_rate=_D["sample_rate"],
              padded_window_size=512, low_freq=_D["low_freq"], high_freq=_D["high_freq"],
              dtype=torch.float64):
    """Kaldi triangular mel filters as a (padded_window_size // 2, num_mel_bins) matrix.

    Rows are the FFT bins 0 .. padded/2 - 1: Kaldi's mel banks never use the Nyquist bin.
    `high_freq` <= 0 counts down from Nyquist (Kaldi: high_freq += nyquist).
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < high_freq <= nyquist):
        raise ValueError(f"bad mel range: low_freq={low_freq}, high_freq={high_freq}, "
                         f"nyquist={nyquist}")
    num_fft_bins = padded_window_size // 2

    def mel(f):
        return 1127.0 * torch.log1p(f / 700.0)

    mel_low, mel_high = mel(torch.tensor(low_freq, dtype=torch.float64)), \
        mel(torch.tensor(high_freq, dtype=torch.float64))
    delta = (mel_high - mel_low) / (num_mel_bins + 1)
    b = torch.arange(num_mel_bins, dtype=torch.float64)[None, :]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    freqs = torch.arange(num_fft_bins, dtype=torch.float64)[:, None] * (sample_rate /
                                                                          padded_window_size)
    m = mel(freqs)
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    weights = torch.where(m <= center, up, down)
    weights = torch.where((m > left) & (m < right), weights, torch.zeros_like(weights))
    return weights.to(dtype)


def window_function(length, window_type=_D["window_type"], blackman_coeff=0.42,
                    dtype=torch.float64):
    """Kaldi analysis windows."""
    n = torch.arange(length, dtype=torch.float64)
    a = 2.0 * math.pi / (length - 1) if length > 1 else 0.0
    if window_type == "povey":
        w = (0.5 - 0.5 * torch.cos(a * n)).pow(0.85)
    elif window_type == "hanning":
        w = 0.5 - 0.5 * torch.cos(a * n)
    elif window_type == "hamming":
        w = 0.54 - 0.46 * torch.cos(a * n)
    elif window_type == "sine":
        w = torch.sin(0.5 * a * n)
    elif window_type == "blackman":
        w = blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    elif window_type == "rectangular":
        w = torch.ones(length, dtype=torch.float64)
    else:
        raise ValueError(f"unknown window_type {window_type!r}")
    return w.to(dtype)


def reflect_index(idx, n):
    """Kaldi's edge handling for snip_edges=False: integer sample indices mapped into [0, n) by
    reflecting at both ends, edge sample repeated (-1 -> 0, -2 -> 1, n -> n - 1), as often as
    needed (feature-window.cc ExtractWindow). `n` may be an int or a tensor broadcasting
    against `idx`, and must be >= 1."""
    # m = idx mod 2n, spelled as a floor division: the ONNX exporter cannot turn `%` with a
    # symbolic (dynamic-length) int divisor into Mod.
    m = idx - torch.div(idx, 2 * n, rounding_mode="floor") * (2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


def _edge_index(n, length, shift, device, lengths=None):
    """Sample indices of the snip_edges=False layout as one contiguous run, so that its
    snip_edges=True frames (unfold) are Kaldi's snip_edges=False frames of a length-n waveform:
    frame t starts at t * shift + shift // 2 - length // 2 (Kaldi FirstSampleOfFrame).
    (M,) for an int n, or (B, M) when per-row `lengths` (B,) reflect each row at its own end."""
    t = (n + shift // 2) // shift
    idx = torch.arange((t - 1) * shift + length, device=device) + (shift // 2 - length // 2)
    if lengths is None:
        return reflect_index(idx, n)
    return reflect_index(idx[None, :], lengths.clamp(min=1)[:, None])


def pad_edges(waveform, sample_rate=_D["sample_rate"], frame_length_ms=_D["frame_length_ms"],
              frame_shift_ms=_D["frame_shift_ms"]):
    """snip_edges=False as explicit padding: the (..., N) waveform reflected at both ends so that
    fbank(pad_edges(x), snip_edges=True) == fbank(x, snip_edges=False), frame for frame.
    Lets a caller cut the result into overlapping snip_edges=True pieces (compute_fbank)."""
    length, shift = _frame_params(sample_rate, frame_length_ms, frame_shift_ms)
    n = waveform.shape[-1]
    if num_frames(n, sample_rate, frame_length_ms, frame_shift_ms, snip_edges=False) == 0:
        return waveform[..., :0]
    return waveform[..., _edge_index(n, length, shift, waveform.device)]


def _extract_frames(waveform, length, shift, snip_edges, lengths=None):
    """(..., N) -> (..., T, length) frames, Kaldi's frame layout (a strided view of the
    waveform, after the snip_edges=False edge reflection)."""
    if not snip_edges:
        idx = _edge_index(waveform.shape[-1], length, shift, waveform.device, lengths)
        waveform = waveform[..., idx] if lengths is None else waveform.gather(-1, idx)
    return waveform.unfold(-1, length, shift)


def _check_lengths(waveform, lengths, snip_edges):
    if lengths is None or snip_edges:  # zero padding is exact with snip_edges=True
        return None
    if waveform.dim() != 2:
        raise ValueError("lengths needs a (B, N) waveform")
    lengths = torch.as_tensor(lengths, device=waveform.device).long()
    if lengths.shape != waveform.shape[:1]:
        raise ValueError(f"lengths of shape {tuple(lengths.shape)} for a batch of "
                         f"{waveform.shape[0]}")
    return lengths


def _fbank_core(waveform, window, mel, *, length, shift, padded, dither, preemphasis,
                remove_dc_offset, snip_edges, generator, use_energy=False, energy_floor=0.0,
                lengths=None):
    device_type = waveform.device.type
    if torch.is_autocast_enabled(device_type):
        # Mel energies reach ~1e14: fp16 overflows and bf16 costs ~1e-2 in the log. The front
        # end always runs in the input's (float32) precision, even inside an autocast region.
        with torch.autocast(device_type, enabled=False):
            return _fbank_core(waveform, window, mel, length=length, shift=shift,
                               padded=padded, dither=dither, preemphasis=preemphasis,
                               remove_dc_offset=remove_dc_offset, snip_edges=snip_edges,
                               generator=generator, use_energy=use_energy,
                               energy_floor=energy_floor, lengths=lengths)
    if waveform.shape[-1] < (length if snip_edges else shift - shift // 2):  # no frames
        return waveform.new_zeros(waveform.shape[:-1] + (0, mel.shape[1] + int(use_energy)))
    frames = _extract_frames(waveform, length, shift, snip_edges,
                             _check_lengths(waveform, lengths, snip_edges))
    if dither > 0.0:
        frames = frames + dither * torch.randn(frames.shape, generator=generator,
                                               dtype=frames.dtype, device=frames.device)
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if use_energy:  # raw log energy: after DC removal, before pre-emphasis (Kaldi raw_energy)
        energy = frames.square().sum(dim=-1, keepdim=True).clamp(min=FLOAT_EPS).log()
        if energy_floor > 0.0:
            energy = energy.clamp(min=math.log(energy_floor))
    if preemphasis != 0.0:  # y[i] = x[i] - c x[i-1], y[0] = x[0] - c x[0]
        frames = torch.cat([frames[..., :1] * (1.0 - preemphasis),
                            frames[..., 1:] - preemphasis * frames[..., :-1]], dim=-1)
    spec = torch.fft.rfft(frames * window, n=padded)
    # Kaldi's mel banks never use the Nyquist bin; the mel matrix covers bins 0 .. padded/2-1.
    power = spec.real.square() + spec.imag.square()
    feats = torch.matmul(power[..., :padded // 2], mel).clamp(min=FLOAT_EPS).log()
    if use_energy:
        feats = torch.cat([energy, feats], dim=-1)
    return feats


def fbank(waveform, sample_rate=_D["sample_rate"], num_mel_bins=_D["num_mel_bins"],
          frame_length_ms=_D["frame_length_ms"], frame_shift_ms=_D["frame_shift_ms"],
          dither=_D["dither"], preemphasis=_D["preemphasis"],
          remove_dc_offset=_D["remove_dc_offset"], window_type=_D["window_type"],
          low_freq=_D["low_freq"], high_freq=_D["high_freq"], energy_floor=0.0,
          snip_edges=_D["snip_edges"], generator=None, use_energy=False, lengths=None):
    """Kaldi log-mel fbank of a (N,) or (B, N) float waveform on the int16 scale.

    Returns (T, num_mel_bins) or (B, T, num_mel_bins) in the input's dtype and device
    (num_mel_bins + 1 columns, log energy first, with use_energy=True; `energy_floor` only
    applies to that column, as in Kaldi). `dither` > 0 adds Gaussian noise of that scale to
    every frame sample (training only); `generator` makes it reproducible. Defaults are
    FBANK_DEFAULTS (sherpa-onnx's front end); Kaldi's compute-fbank-feats defaults are
    high_freq=0.0, snip_edges=True.

    A batch must be padded to one length N. The first num_frames(len_i) frames of row i equal
    those of the unpadded row: with snip_edges=True always; with snip_edges=False only when
    `lengths` (B,) (ints or a tensor) gives the true lengths, since the last frames reflect the
    waveform at its end (without `lengths`, the frames that reach past len_i, the last one or
    two at 25/10 ms, see the padding instead). Frames past num_frames(len_i) are padding.
    """
    if not torch.is_floating_point(waveform):
        raise TypeError(f"fbank expects a float waveform, got {waveform.dtype}")
    if waveform.dim() not in (1, 2):
        raise ValueError(f"fbank expects (N,) or (B, N), got shape {tuple(waveform.shape)}")
    length, shift = _frame_params(sample_rate, frame_length_ms, frame_shift_ms)
    padded = _padded_size(length)
    window = window_function(length, window_type).to(waveform.device, waveform.dtype)
    mel = mel_banks(num_mel_bins, sample_rate, padded, low_freq, high_freq).to(waveform.device,
                                                                               waveform.dtype)
    return _fbank_core(waveform, window, mel, length=length, shift=shift, padded=padded,
                       dither=dither, preemphasis=preemphasis,
                       remove_dc_offset=remove_dc_offset, snip_edges=snip_edges,
                       generator=generator, use_energy=use_energy, energy_floor=energy_floor,
                       lengths=lengths)


class Fbank(nn.Module):
    """nn.Module form of :func:`fbank` with the matrices as buffers (ONNX-exportable).

    forward((N,) or (B, N) waveform on the int16 scale, generator=None, lengths=None)
    -> (T, F) or (B, T, F). Defaults are FBANK_DEFAULTS. Dither, if set, is applied only in
    training mode.
    """

    def __init__(self, sample_rate=_D["sample_rate"], num_mel_bins=_D["num_mel_bins"],
                 frame_length_ms=_D["frame_length_ms"], frame_shift_ms=_D["frame_shift_ms"],
                 dither=_D["dither"], preemphasis=_D["preemphasis"],
                 remove_dc_offset=_D["remove_dc_offset"], window_type=_D["window_type"],
                 low_freq=_D["low_freq"], high_freq=_D["high_freq"], energy_floor=0.0,
                 snip_edges=_D["snip_edges"], use_energy=False):
        super().__init__()
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.frame_length_ms, self.frame_shift_ms = frame_length_ms, frame_shift_ms
        self.length, self.shift = _frame_params(sample_rate, frame_length_ms, frame_shift_ms)
        self.dither = float(dither)
        self.preemphasis = float(preemphasis)
        self.remove_dc_offset = remove_dc_offset
        self.snip_edges = snip_edges
        self.use_energy = use_energy
        self.energy_floor = float(energy_floor)
        self.padded = _padded_size(self.length)
        self.register_buffer("window", window_function(self.length, window_type,
                                                       dtype=torch.float32), persistent=False)
        self.register_buffer("mel_banks", mel_banks(num_mel_bins, sample_rate, self.padded,
                                                    low_freq, high_freq, dtype=torch.float32),
                             persistent=False)

    def num_frames(self, num_samples):
        return num_frames(num_samples, self.sample_rate, self.frame_length_ms,
                          self.frame_shift_ms, self.snip_edges)

    def forward(self, waveform, generator=None, lengths=None):
        dither = self.dither if self.training else 0.0
        return _fbank_core(waveform, self.window.to(waveform.dtype),
                           self.mel_banks.to(waveform.dtype), length=self.length,
                           shift=self.shift, padded=self.padded, dither=dither,
                           preemphasis=self.preemphasis, remove_dc_offset=self.remove_dc_offset,
                           snip_edges=self.snip_edges, generator=generator,
                           use_energy=self.use_energy, energy_floor=self.energy_floor,
                           lengths=lengths)


def apply_cmn(feats, lengths=None):
    """Per-utterance mean normalization over time of (T, F) or (B, T, F) (torch or numpy).
    lengths (B,) (torch): a zero-padded batch; each row's mean is over its first lengths[b]
    frames and its padded frames stay zero."""
    if lengths is not None:
        real = (torch.arange(feats.size(1), device=feats.device)[None, :]
                < lengths[:, None])[..., None]                          # (B, T, 1)
        mean = (feats * real).sum(dim=1, keepdim=True) / lengths[:, None, None]  # (B, 1, F)
        return (feats - mean) * real
    if torch.is_tensor(feats):
        return feats - feats.mean(dim=-2, keepdim=True)
    return feats - feats.mean(axis=-2, keepdims=True)
