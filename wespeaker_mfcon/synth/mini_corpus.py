"""Deterministic synthetic speaker corpus in VoxCeleb layout (the embedded "mini corpus").

Pure numpy/scipy source-filter speech synthesis:

* **Speakers** differ by physiology and voice quality, constant over all their sessions:
  mean F0 and intonation range, vocal-tract length (a factor on all formants), higher formants
  and bandwidths, spectral tilt, open quotient, breathiness (aspiration noise), jitter, shimmer,
  speaking rate and a small personal "accent" on every phone's formant targets.
* **Utterances** differ by content: phrases of syllable-like phone sequences (vowels with
  formant targets and smooth transitions, nasals, approximants, fricative noise, plosive
  closures, bursts and aspiration), pauses and an intonation contour (declination, pitch
  accents, phrase-final fall or rise).
* **Sessions** differ by channel: a random EQ (bumps, tilt, band limits), a synthetic
  exponentially decaying room impulse response, additive coloured noise (sometimes with mains
  hum or a speech-like modulation) at a random SNR, and a small change of vocal effort.

Every random draw comes from a generator keyed by ``(seed, purpose, split, speaker, session,
utterance)``, so each file depends only on its own key: the output is byte-identical for a given
seed whatever the generation order or the number of parallel jobs, and the test split does not
depend on the size of the train split.

Synthesis runs in the STFT domain (32 ms frames, 8 ms hop): the glottal excitation and a white
noise source are generated in the time domain, and each frame is multiplied by the vocal-tract
envelope of that frame, so everything is vectorized over frames and bins.

One utterance (``synth_utterance``) goes: speaker and session parameters (``speaker_params``,
``session_params``) -> phone plan and frame-rate control tracks (``_content``) -> glottal and
noise excitations filtered per frame (``_filtered_frames``) -> overlap-add (``_overlap_add``)
-> room, EQ, noise and level (``_apply_channel``). ``make_trials`` and ``make_corpus`` lay the
utterances out as a VoxCeleb-style corpus with a trial list.
"""

import io
import json
import logging
import os
import shutil
import time
import wave
from collections import namedtuple

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import uniform_filter1d
from scipy.signal import fftconvolve, lfilter

from wespeaker_mfcon.config.schema import SAMPLE_RATE
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.utils.parallel import parallel_map

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")

# Defaults of tools/make_mini_corpus.py; the demo recipe and the tests use them.
DEFAULTS = dict(
    num_train_spk=40,
    num_test_spk=20,
    sessions_per_spk=3,
    utts_per_session=4,
    min_dur=2.0,
    max_dur=4.0,
    seed=777,
    num_trials=1800,
    first_test_spk=0,
)

# Bumped whenever the synthesis changes its output: a corpus made by another version is not
# taken as complete.
GENERATOR_VERSION = 1
DONE_MARKER = ".done"
INCOMPLETE_MARKER = ".incomplete"

# Keys of the random generators: (seed, purpose, split, spk, sess, utt).
_P_SPEAKER, _P_SESSION, _P_UTT, _P_TRIALS, _P_NAME = 1, 2, 3, 4, 5

# STFT used by the synthesizer.
_N_FFT = 512
_HOP = 128
_BIN_HZ = np.arange(_N_FFT // 2 + 1) * (SAMPLE_RATE / _N_FFT)
_WIN = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT))  # sqrt periodic Hann
_WIN32 = _WIN.astype(np.float32)
_F2_32 = (_BIN_HZ ** 2).astype(np.float32)
_OLA_GAIN = 2.0  # sum of Hann windows at 75 % overlap
_FRAME_S = _HOP / SAMPLE_RATE

# ---------------------------------------------------------------------------------------------
# Phone inventory. Formant targets (F1, F2, F3 in Hz) are textbook values for an adult male
# vocal tract; speakers scale them by their vocal-tract factor.
# ---------------------------------------------------------------------------------------------
_VOWELS = {
    "iy": (270, 2290, 3010), "ih": (390, 1990, 2550), "eh": (530, 1840, 2480),
    "ae": (660, 1720, 2410), "ah": (520, 1190, 2390), "aa": (730, 1090, 2440),
    "ao": (570, 840, 2410), "uh": (440, 1020, 2240), "uw": (300, 870, 2240),
    "er": (490, 1350, 1690), "ey": (480, 2000, 2600), "ow": (500, 900, 2350),
}
_VOWEL_NAMES = tuple(_VOWELS)

# Noise spectra (index into the shape table) used by fricatives and bursts.
_NOISE_SHAPES = ("s", "sh", "f", "burst_lab", "burst_alv", "burst_vel")

# name: (kind, (F1, F2, F3) locus, voiced amplitude, frication amplitude, noise shape,
#        aspiration amplitude)
_CONSONANTS = {
    "m": ("nasal", (280, 1000, 2300), 0.30, 0.0, None, 0.0),
    "n": ("nasal", (280, 1600, 2600), 0.30, 0.0, None, 0.0),
    "ng": ("nasal", (280, 2000, 2700), 0.25, 0.0, None, 0.0),
    "l": ("approx", (360, 1100, 2800), 0.55, 0.0, None, 0.0),
    "r": ("approx", (330, 1100, 1450), 0.55, 0.0, None, 0.0),
    "w": ("approx", (300, 650, 2200), 0.50, 0.0, None, 0.0),
    "y": ("approx", (270, 2100, 3000), 0.50, 0.0, None, 0.0),
    "s": ("fric", (320, 1700, 2600), 0.0, 0.35, "s", 0.0),
    "sh": ("fric", (320, 1900, 2500), 0.0, 0.35, "sh", 0.0),
    "f": ("fric", (320, 1000, 2300), 0.0, 0.12, "f", 0.0),
    "th": ("fric", (320, 1400, 2600), 0.0, 0.09, "f", 0.0),
    "h": ("fric", None, 0.0, 0.0, None, 0.30),
    "z": ("fric", (320, 1700, 2600), 0.20, 0.22, "s", 0.0),
    "v": ("fric", (320, 1000, 2300), 0.22, 0.08, "f", 0.0),
    "p": ("stop", (300, 900, 2200), 0.0, 0.45, "burst_lab", 0.30),
    "t": ("stop", (320, 1750, 2600), 0.0, 0.55, "burst_alv", 0.30),
    "k": ("stop", (320, 2100, 2500), 0.0, 0.50, "burst_vel", 0.30),
    "b": ("stop", (280, 900, 2200), 0.08, 0.30, "burst_lab", 0.05),
    "d": ("stop", (300, 1750, 2600), 0.08, 0.35, "burst_alv", 0.05),
    "g": ("stop", (300, 2100, 2500), 0.08, 0.35, "burst_vel", 0.05),
}
_CONS_NAMES = tuple(_CONSONANTS)
_PHONE_NAMES = _VOWEL_NAMES + _CONS_NAMES
_ONSETS = ("p", "t", "k", "b", "d", "g", "m", "n", "l", "r", "w", "y", "s", "sh", "f", "th",
           "h", "z", "v")
_CODAS = ("p", "t", "k", "d", "g", "m", "n", "ng", "l", "r", "s", "sh", "f", "z", "v")

# ---------------------------------------------------------------------------------------------
# Strength of the variability. Tuned (tests/test_mini_corpus.py measures it) so that on the
# default corpus a trivial embedding -- mean and std over time of the raw 80-dim log-mel
# fbank, cosine scoring -- stays poor (EER ~ 35-40 %), while LDA on the same statistics,
# trained on the train speakers, reaches ~ 10 %: the speaker is learnable, the channel is not
# to be ignored.
# ---------------------------------------------------------------------------------------------
# Speakers: scale of the fixed voice-quality shape (spectral tilt, piriform-fossa antiresonance,
# nasal coupling) and spread of the vocal-tract factor around its F0-predicted value.
_SPK = dict(tilt_scale=1.5, fossa_db=10.0, nasal_db=6.0, vtl_sd=0.06)
# Sessions: EQ (dB/octave tilt, bump sigma, highest high-pass cut-off, chance of a telephone-
# like low-pass, lowest wide-band low-pass), room (chance of dry, RT60 s, direct-to-reverberant
# dB), noise (slope dB/octave, bump sigma, chance of hum, chance of syllabic modulation,
# SNR dB), vocal effort (F0 shift sigma, semitones), level (session dBFS range, per-utterance
# sigma).
_CH = dict(eq_tilt=1.0, eq_db=3.0, hp_max=100.0, tel_p=0.05, lp_min=6500.0,
           dry_p=0.25, rt60=(0.15, 0.8), drr=(-3.0, 12.0),
           noise_slope=(-6.0, -3.0), noise_bump_db=4.0, hum_p=0.1, babble_p=0.1,
           snr=(15.0, 35.0), f0_shift=1.0, level=(-28.0, -22.0), utt_level=1.0)
# Content: factor on pause durations, chance of a syllable onset / coda, of a short word gap.
_CT = dict(pause=0.3, onset_p=0.8, coda_p=0.45, gap_p=0.05)


def _rng(seed, purpose, split=0, spk=0, sess=0, utt=0):
    """A generator that depends only on its key, never on what was drawn before."""
    return np.random.default_rng(np.random.SeedSequence(
        [int(seed), purpose, int(split), int(spk), int(sess), int(utt)]))


def _split_index(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


# ---------------------------------------------------------------------------------------------
# Speakers, sessions, names
# ---------------------------------------------------------------------------------------------
def speaker_id(split, index):
    """VoxCeleb-style id: train speakers id00001.., test speakers id10001.. (disjoint)."""
    if not 0 <= index < 9999:
        raise UserError(f"speaker index {index} out of range (at most 9999 speakers per split)")
    return f"id{(0 if split == 'train' else 10000) + index + 1:05d}"


def speaker_params(seed, split, spk):
    """Physiology and voice quality of one speaker (a dict of floats/arrays)."""
    r = _rng(seed, _P_SPEAKER, _split_index(split), spk)
    # F0 and vocal-tract factor are correlated (as across sexes and ages), with wide overlap.
    u = r.uniform()
    f0 = 85.0 * (240.0 / 85.0) ** u
    # Formant factor (1 = the adult male reference tract; higher = shorter tract).
    vtl = float(np.clip(0.92 + 0.26 * u + r.normal(0, _SPK["vtl_sd"]), 0.8, 1.35))
    p = dict(
        f0=f0,
        f0_range=r.uniform(0.5, 1.6),          # factor on intonation excursions
        vtl=vtl,
        f4=3400.0 * vtl * r.normal(1.0, 0.05),
        f5=4400.0 * vtl * r.normal(1.0, 0.05),
        bw=np.array([r.uniform(50, 110), r.uniform(60, 130), r.uniform(100, 200),
                     r.uniform(180, 320), r.uniform(250, 420)]),
        tilt=r.uniform(-3.0, 1.5),             # extra spectral tilt, dB/octave around 1 kHz
        oq=r.uniform(0.4, 0.75),               # glottal open quotient
        breath=r.uniform(0.0, 0.35),           # aspiration noise relative to the pulses
        jitter=r.uniform(0.003, 0.02),         # relative period perturbation
        shimmer=r.uniform(0.02, 0.12),         # relative amplitude perturbation
        rate=r.uniform(0.8, 1.25),             # speaking rate
        fric_shift=r.normal(1.0, 0.08) * vtl ** 0.5,
    )
    # A personal accent: every phone target moved by a few percent, F1/F2/F3 independently.
    p["accent"] = r.normal(1.0, 0.05, size=(len(_PHONE_NAMES), 3))
    # Vowel preferences (idiolect), so phone statistics differ a little between speakers.
    p["vowel_pref"] = r.dirichlet(np.full(len(_VOWEL_NAMES), 3.0))
    gain_db = _voice_quality_db(r, p["tilt"], vtl)
    fixed = _higher_poles(r, p)
    p["tract_gain"] = fixed.astype(np.float32)
    p["voice_gain"] = (10 ** (gain_db / 20) * fixed).astype(np.float32)
    p["noise_shapes"] = _noise_shapes(p).astype(np.float32)
    return p


def _voice_quality_db(r, tilt, vtl):
    """Fixed voice-quality shape of a speaker's voiced spectrum, dB over the STFT bins
    (bins,): spectral tilt (dB/octave), the antiresonance of the piriform fossae (4-5 kHz,
    scaled by the vocal-tract factor vtl) and a degree of nasal coupling (a low pole/zero
    pair)."""
    f = np.maximum(_BIN_HZ, 1.0)
    gain_db = _SPK["tilt_scale"] * tilt * np.log2(np.maximum(f, 80.0) / 1000.0)
    fz = r.uniform(3900, 5000) * vtl
    gain_db -= _SPK["fossa_db"] * r.uniform(0.3, 1.0) * np.exp(
        -0.5 * (np.log2(f / fz) / r.uniform(0.08, 0.2)) ** 2)
    nas = r.uniform(0, 1)
    fp, fzn = r.uniform(250, 400) * vtl, r.uniform(600, 1100) * vtl
    gain_db += _SPK["nasal_db"] * nas * (np.exp(-0.5 * (np.log2(f / fp) / 0.25) ** 2)
                                         - np.exp(-0.5 * (np.log2(f / fzn) / 0.15) ** 2))
    return gain_db


def _higher_poles(r, spk):
    """Gain (bins,) over the STFT bins of a speaker's resonances above F3, which barely move
    with the phone: F4, F5 and the higher poles of the tract (spaced like a tube's, up to far
    above Nyquist, so that together they form the "higher-pole correction" of a cascade
    synthesizer)."""
    f = np.maximum(_BIN_HZ, 1.0)
    spacing = 1000.0 * spk["vtl"] * r.normal(1.0, 0.03)
    fixed = np.ones_like(f)
    for k in range(4, 41):
        fk = spk["f4"] if k == 4 else spk["f5"] + (k - 5) * spacing
        bk = spk["bw"][3] if k == 4 else spk["bw"][4] + 100.0 * (k - 5)
        fixed *= _resonance(f, fk, bk)
    return fixed


def _resonance(f, fc, bw):
    """|H(f)| of a two-pole resonator (centre fc, bandwidth bw), unit gain at DC."""
    b2 = (0.5 * bw) ** 2
    return (fc * fc + b2) / np.sqrt(((f - fc) ** 2 + b2) * ((f + fc) ** 2 + b2))


def _session_eq_db(r):
    """EQ of a session's microphone / codec, dB over the STFT bins (bins,): tilt, bumps, a
    high-pass and a low-pass (sometimes telephone-like)."""
    k = _BIN_HZ
    eq = r.normal(0, _CH["eq_tilt"]) * np.log2(np.maximum(k, 50.0) / 1000.0)
    for _ in range(r.integers(2, 6)):
        fc = np.exp(r.uniform(np.log(120), np.log(6500)))
        width = r.uniform(0.3, 1.5)
        eq += r.normal(0, _CH["eq_db"]) * np.exp(
            -0.5 * (np.log2(np.maximum(k, 1) / fc) / width) ** 2)
    hp = np.exp(r.uniform(np.log(40), np.log(_CH["hp_max"])))
    lp = r.uniform(3400, 5500) if r.uniform() < _CH["tel_p"] else r.uniform(_CH["lp_min"], 7900)
    with np.errstate(divide="ignore"):
        eq += 20 * np.log10(np.maximum(1e-6, 1 / np.sqrt(1 + (hp / np.maximum(k, 1e-3)) ** 4)))
    eq += 20 * np.log10(1 / np.sqrt(1 + (k / lp) ** 8))
    return eq


def _room_ir(r):
    """Room impulse response (samples,), direct path 1.0 at index 0: sometimes dry ([1.0]),
    else an exponentially decaying, low-passed noise tail at a random RT60 and
    direct-to-reverberant ratio."""
    if r.uniform() < _CH["dry_p"]:
        return np.array([1.0])
    rt60 = r.uniform(*_CH["rt60"])
    n = int(rt60 * SAMPLE_RATE * 0.8)
    t = np.arange(n) / SAMPLE_RATE
    tail = r.standard_normal(n) * np.exp(-6.9 * t / rt60)
    # Walls absorb high frequencies: a low-pass on the tail.
    tail = _one_pole(tail, r.uniform(0.1, 0.6))
    tail[: int(r.uniform(0.001, 0.006) * SAMPLE_RATE)] = 0.0  # gap before reflections
    drr = r.uniform(*_CH["drr"])  # direct-to-reverberant ratio, dB
    tail *= 10 ** (-drr / 20) / max(np.sqrt(np.sum(tail ** 2)), 1e-9)
    tail[0] = 1.0
    return tail


def _noise_shape_db(r):
    """Spectrum of a session's background noise before the EQ, dB over the STFT bins
    (bins,): a slope with a few bumps."""
    k = _BIN_HZ
    nshape = r.uniform(*_CH["noise_slope"]) * np.log2(np.maximum(k, 50.0) / 1000.0)
    for _ in range(r.integers(1, 4)):
        fc = np.exp(r.uniform(np.log(100), np.log(6000)))
        nshape += r.normal(0, _CH["noise_bump_db"]) * np.exp(
            -0.5 * (np.log2(np.maximum(k, 1) / fc) / 0.7) ** 2)
    return nshape


def session_params(seed, split, spk, sess):
    """Channel and speaking-style of one session (recording), a dict: EQ in dB (bins,),
    speech impulse response (room + linear-phase EQ FIR) and its delay, noise gain (bins,),
    hum, babble, SNR, F0 shift, rate, breathiness and level."""
    r = _rng(seed, _P_SESSION, _split_index(split), spk, sess)
    eq = _session_eq_db(r)
    eq_gain = 10 ** (eq / 20)
    # Linear-phase FIR of the EQ.
    fir = np.fft.fftshift(np.fft.irfft(eq_gain, _N_FFT)) * np.hanning(_N_FFT)
    speech_ir = np.convolve(_room_ir(r), fir)
    # Noise: coloured, with bumps, through the same EQ; sometimes mains hum or syllabic
    # modulation.
    noise_gain = 10 ** (_noise_shape_db(r) / 20) * eq_gain
    return dict(
        eq_db=eq, speech_ir=speech_ir, ir_delay=_N_FFT // 2,
        noise_gain=noise_gain,
        hum=(r.choice([50.0, 60.0]), r.uniform(-25, -8)) if r.uniform() < _CH["hum_p"] else None,
        babble=r.uniform(0.3, 0.9) if r.uniform() < _CH["babble_p"] else 0.0,
        snr=r.uniform(*_CH["snr"]),
        f0_shift=r.normal(0, _CH["f0_shift"]),  # semitones (vocal effort / mood)
        rate=r.normal(1.0, 0.06),
        breath=r.uniform(0.7, 1.4),
        level=r.uniform(*_CH["level"]),       # dBFS, per-utterance jitter added
    )


def session_name(seed, split, spk, sess, taken=()):
    """An 11-character YouTube-like id, unique (case-insensitively) within `taken`."""
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))
    taken = {t.lower() for t in taken}
    attempt = 0
    while True:
        r = _rng(seed, _P_NAME, _split_index(split), spk, sess, attempt)
        name = "".join(r.choice(alphabet[:62], 1)) + "".join(r.choice(alphabet, 10))
        if name.lower() not in taken:
            return name
        attempt += 1


def _one_pole(x, a):
    """y[n] = (1-a) x[n] + a y[n-1]."""
    return lfilter([1 - a], [1, -a], x)


# ---------------------------------------------------------------------------------------------
# Content: phone sequence -> frame-rate control tracks
# ---------------------------------------------------------------------------------------------
def _noise_shapes(spk):
    """Magnitude spectra (over the STFT bins) of fricative and burst noise, peak ~1."""
    f = _BIN_HZ
    s = spk["fric_shift"]

    def band(lo, hi, slope_lo=4, slope_hi=2):
        return 1 / np.sqrt((1 + (lo / np.maximum(f, 1)) ** (2 * slope_lo))
                           * (1 + (f / hi) ** (2 * slope_hi)))

    def peak(fc, width):
        return np.exp(-0.5 * (np.log2(np.maximum(f, 1) / fc) / width) ** 2)

    shapes = {
        "s": band(4200 * s, 9000, 4, 3),
        "sh": 0.7 * band(2200 * s, 6500, 4, 3) + 0.5 * peak(2800 * s, 0.3),
        "f": band(1200, 9000, 1, 1),
        "burst_lab": band(300, 2500, 1, 1),
        "burst_alv": band(3000 * s, 8000, 2, 2),
        "burst_vel": peak(1900 * s, 0.4) + 0.2 * band(1000, 5000, 1, 1),
    }
    return np.stack([shapes[n] for n in _NOISE_SHAPES])


def _phone_targets(spk, name, next_vowel):
    """(F1, F2, F3) target of a phone for this speaker."""
    idx = _PHONE_NAMES.index(name)
    if name in _VOWELS:
        base = np.array(_VOWELS[name], float)
    else:
        locus = _CONSONANTS[name][1]
        base = np.array(locus if locus is not None else _VOWELS[next_vowel], float)
    return base * spk["vtl"] * spk["accent"][idx]


# One stretch of constant control values: n_frames frames of formant targets (3,), voiced
# amplitude, noise shape index (-1: none) and its amplitude, aspiration amplitude, pitch accent
# (semitones).
_Segment = namedtuple("_Segment", "n_frames formants vamp noise_idx namp hamp accent")


def _silence(n_frames, neutral):
    """A silent _Segment of n_frames frames on the neutral formants (3,)."""
    return _Segment(n_frames, neutral, 0.0, -1, 0.0, 0.0, 0.0)


def _ms_to_frames(ms, rate):
    """Number of STFT frames (>= 1) of a duration in ms spoken at speaking rate `rate`."""
    return max(1, int(round(ms / 1000.0 / rate / _FRAME_S)))


def _draw_syllable(r, spk):
    """Draw one syllable; returns (vowel name, stressed?, pitch accent in semitones, phones)
    where phones is the list of phone names: optional onset, the vowel, optional coda."""
    vowel = _VOWEL_NAMES[r.choice(len(_VOWEL_NAMES), p=spk["vowel_pref"])]
    stress = r.uniform() < 0.35
    accent = r.uniform(1.0, 3.5) if stress else r.normal(0, 0.4)
    phones = []
    if r.uniform() < _CT["onset_p"]:
        phones.append(_ONSETS[r.integers(len(_ONSETS))])
    phones.append(vowel)
    if r.uniform() < _CT["coda_p"]:
        phones.append(_CODAS[r.integers(len(_CODAS))])
    return vowel, stress, accent, phones


def _phone_segments(r, spk, ph, *, vowel, stress, accent, phrase_final, rate):
    """The _Segments (a list: one, or three for a stop) of phone `ph` in a syllable whose
    vowel is `vowel`; `phrase_final` lengthens a vowel in the last syllable of a phrase."""
    tgt = _phone_targets(spk, ph, vowel)
    if ph in _VOWELS:
        dur = r.uniform(70, 160) * (1.35 if stress else 1.0)
        if phrase_final:
            dur *= 1.4  # phrase-final lengthening
        amp = r.uniform(0.8, 1.0) * (1.25 if stress else 1.0)
        return [_Segment(_ms_to_frames(dur, rate), tgt, amp, -1, 0.0, 0.0, accent)]
    kind, _, vamp, namp, shape, hamp = _CONSONANTS[ph]
    sidx = _NOISE_SHAPES.index(shape) if shape else -1
    if kind == "stop":  # closure, one-frame burst, then aspiration towards the vowel
        closure = _Segment(_ms_to_frames(r.uniform(40, 90), rate), tgt, vamp, -1, 0.0, 0.0,
                           accent)
        burst = _Segment(1, tgt, 0.0, sidx, namp, 0.0, accent)
        vot = r.uniform(25, 60) if hamp > 0.1 else r.uniform(8, 16)
        vt = _phone_targets(spk, vowel, vowel)
        return [closure, burst, _Segment(_ms_to_frames(vot, rate), vt, 0.0, -1, 0.0, hamp, accent)]
    if kind == "fric":
        dur = r.uniform(60, 130)
        return [_Segment(_ms_to_frames(dur, rate), tgt, vamp, sidx, namp, hamp, accent)]
    return [_Segment(_ms_to_frames(r.uniform(40, 90), rate), tgt, vamp, -1, 0.0, 0.0, accent)]


def _phrase_segments(r, spk, rate, neutral):
    """The _Segments (a list) of one phrase: 3-8 syllables, sometimes a short gap after a
    syllable, and a closing pause on the neutral formants (3,)."""
    segs = []
    n_syl = int(r.integers(3, 9))
    for i in range(n_syl):
        vowel, stress, accent, phones = _draw_syllable(r, spk)
        for ph in phones:
            segs += _phone_segments(r, spk, ph, vowel=vowel, stress=stress, accent=accent,
                                    phrase_final=i == n_syl - 1, rate=rate)
        # Short gaps between some words.
        if r.uniform() < _CT["gap_p"]:
            segs.append(_silence(_ms_to_frames(r.uniform(30, 90), rate), neutral))
    segs.append(_silence(_ms_to_frames(r.uniform(150, 500) * _CT["pause"], rate), neutral))
    return segs


def _utterance_segments(r, spk, sess, n_frames):
    """The _Segments (a list) of one utterance: leading silence, then phrases until they
    cover at least n_frames frames."""
    rate = spk["rate"] * sess["rate"]
    neutral = np.array([500.0, 1500.0, 2500.0]) * spk["vtl"]
    segs = [_silence(_ms_to_frames(r.uniform(50, 300) * _CT["pause"], rate), neutral)]
    total = segs[0].n_frames
    while total < n_frames:
        segs += _phrase_segments(r, spk, rate, neutral)
        total = sum(s.n_frames for s in segs)
    return segs


def _segment_tracks(segs, n_frames):
    """Step (unsmoothed) frame-rate tracks of the segments, cut to n_frames = F frames.

    Returns formants (F, 3), voiced amplitude (F,), noise amplitudes (F, n_shapes),
    aspiration amplitude (F,), pitch accents in semitones (F,).
    """
    lens = np.array([s.n_frames for s in segs])
    fm = np.repeat(np.stack([s.formants for s in segs]), lens, axis=0)[:n_frames]
    vamp = np.repeat([s.vamp for s in segs], lens)[:n_frames]
    nidx = np.repeat([s.noise_idx for s in segs], lens)[:n_frames]
    namp = np.repeat([s.namp for s in segs], lens)[:n_frames]
    hamp = np.repeat([s.hamp for s in segs], lens)[:n_frames]
    acc = np.repeat([s.accent for s in segs], lens)[:n_frames]
    noise = np.zeros((len(vamp), len(_NOISE_SHAPES)))
    on = nidx >= 0
    noise[np.flatnonzero(on), nidx[on]] = namp[on]
    return fm, vamp, noise, hamp, acc


def _smooth_tracks(fm, vamp, noise, hamp):
    """Formant transitions smoothed over ~50 ms, amplitudes over ~16 ms; returns the tracks
    with unchanged shapes: formants (F, 3), voiced (F,), noise (F, n_shapes), aspiration (F,)."""
    fm = uniform_filter1d(fm, size=7, axis=0, mode="nearest")
    fm = uniform_filter1d(fm, size=3, axis=0, mode="nearest")
    vamp = uniform_filter1d(vamp, size=3, mode="nearest")
    hamp = uniform_filter1d(hamp, size=2, mode="nearest")
    noise = uniform_filter1d(noise, size=2, axis=0, mode="nearest")
    return fm, vamp, noise, hamp


def _intonation(r, spk, sess, acc):
    """F0 contour (F,) in semitones relative to the speaker mean, from the pitch accents
    acc (F,): accents smoothed, declination, slow wobble, phrase-final fall or rise, the
    speaker's range and the session's vocal-effort shift."""
    acc = uniform_filter1d(uniform_filter1d(acc, size=9, mode="nearest"), 9, mode="nearest")
    t = np.arange(len(acc)) * _FRAME_S
    decl = -r.uniform(0.5, 2.5) * t / max(t[-1], 1e-3)
    knots = np.arange(int(t[-1] / 0.25) + 2) * 0.25
    wob = np.interp(t, knots, r.normal(0, 0.6, len(knots)))
    final = np.clip((t - (t[-1] - 0.4)) / 0.4, 0, 1) * (r.uniform(2, 5) if r.uniform() < 0.25
                                                         else -r.uniform(1, 4))
    return spk["f0_range"] * (acc + wob + final) + decl + sess["f0_shift"]


def _content(r, spk, sess, n_frames):
    """Frame-rate control tracks for one utterance of F = n_frames frames.

    Returns formants (F, 3), voiced amplitude (F,), noise amplitudes (F, n_shapes),
    aspiration amplitude (F,), F0 in semitones relative to the speaker mean (F,).
    """
    segs = _utterance_segments(r, spk, sess, n_frames)
    fm, vamp, noise, hamp, acc = _segment_tracks(segs, n_frames)
    fm, vamp, noise, hamp = _smooth_tracks(fm, vamp, noise, hamp)
    f0_st = _intonation(r, spk, sess, acc)
    return fm, vamp, noise, hamp, f0_st


# ---------------------------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------------------------
def _frames_of(x, n_frames):
    """(n_frames, N_FFT) strided view of x (no copy)."""
    return np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, _N_FFT), strides=(_HOP * x.strides[0], x.strides[0]), writeable=False)


def _formant_envelope(fm, spk):
    """|H| of the cascade of the F1-F3 resonators per frame: (F, bins)."""
    # |H| = (fc^2 + b^2) / sqrt(A^2 - 4 f^2 fc^2) with A = f^2 + fc^2 + b^2, b = bw/2.
    env = None
    for i in range(3):
        fc2 = fm[:, i:i + 1] ** 2
        c = fc2 + np.float32(0.25 * spk["bw"][i] ** 2)
        a = _F2_32[None, :] + c
        d = a * a
        d -= (4 * _F2_32)[None, :] * fc2
        h = c / np.sqrt(d)
        env = h if env is None else env * h
    return env


def _glottal_source(r, spk, sess, f0_st, n_samples):
    """Glottal flow derivative with jitter and shimmer, plus aspiration noise; RMS ~1."""
    fr_t = (np.arange(len(f0_st)) + 0.5) * _HOP
    f0_frames = spk["f0"] * 2 ** (f0_st / 12.0)
    f0 = np.interp(np.arange(n_samples), fr_t, f0_frames)
    phase0 = np.cumsum(f0) / SAMPLE_RATE
    n_per = int(phase0[-1]) + 2
    jit = 1.0 + spk["jitter"] * r.standard_normal(n_per)
    shim = np.maximum(0.2, 1.0 + spk["shimmer"] * r.standard_normal(n_per))
    phase = np.cumsum(f0 * jit[phase0.astype(np.int64)]) / SAMPLE_RATE
    idx = phase.astype(np.int64)
    frac = phase - idx
    oq = spk["oq"]
    tp, tn = 0.6 * oq, 0.4 * oq
    # Rosenberg pulse: raised-cosine opening, quarter-cosine closing, closed phase.
    flow = np.zeros(n_samples)
    opening = frac < tp
    closing = ~opening & (frac < tp + tn)
    flow[opening] = 0.5 - 0.5 * np.cos((np.pi / tp) * frac[opening])
    flow[closing] = np.cos((0.5 * np.pi / tn) * (frac[closing] - tp))
    flow *= shim[np.minimum(idx, n_per - 1)]
    src = np.diff(flow, prepend=0.0)
    src /= max(np.sqrt(np.mean(src ** 2)), 1e-9)
    breath = spk["breath"] * sess["breath"]
    src += breath * r.standard_normal(n_samples) * (0.3 + flow)
    return src


def _cached_params(cache, seed, split, spk, sess):
    """(speaker params, session params) of speaker spk / session sess, computed once per
    cache (a dict, filled in place)."""
    key_spk = ("spk", seed, split, spk)
    if key_spk not in cache:
        cache[key_spk] = speaker_params(seed, split, spk)
    key_sess = ("sess", seed, split, spk, sess)
    if key_sess not in cache:
        cache[key_sess] = session_params(seed, split, spk, sess)
    return cache[key_spk], cache[key_sess]


def _filtered_frames(r, sp, ss, n_frames):
    """Draw the control tracks and excitations of one utterance and filter them frame by
    frame (source-filter in the STFT domain); returns the windowed time-domain frames,
    float32 (n_frames, N_FFT), ready for overlap-add."""
    length = (n_frames - 1) * _HOP + _N_FFT
    fm, vamp, noise_amp, hamp, f0_st = _content(r, sp, ss, n_frames)
    # (float32 from here to the overlap-add: twice as fast, far below PCM16 resolution.)
    src = _glottal_source(r, sp, ss, f0_st, length).astype(np.float32)
    wn = r.standard_normal(length, dtype=np.float32)
    env = _formant_envelope(fm.astype(np.float32), sp)
    voiced = sfft.rfft(_frames_of(src, n_frames) * _WIN32, axis=1)
    voiced *= env * (vamp.astype(np.float32)[:, None] * sp["voice_gain"][None, :])
    nspec = sfft.rfft(_frames_of(wn, n_frames) * _WIN32, axis=1)
    nspec *= (noise_amp.astype(np.float32) @ sp["noise_shapes"]
              + hamp.astype(np.float32)[:, None] * env * sp["tract_gain"])
    voiced += nspec
    frames = sfft.irfft(voiced, _N_FFT, axis=1)
    frames *= _WIN32 / _OLA_GAIN
    return frames


def _overlap_add(frames, n):
    """Overlap-add of frames (n_frames, N_FFT) at HOP; returns the first n samples after the
    analysis delay, float64 (n,), with a short fade-out at the end."""
    n_frames = len(frames)
    length = (n_frames - 1) * _HOP + _N_FFT
    out = np.zeros(length + _N_FFT, dtype=np.float32)
    view = out.reshape(-1, _HOP)
    for j in range(_N_FFT // _HOP):
        view[j:j + n_frames] += frames[:, j * _HOP:(j + 1) * _HOP]
    start = _N_FFT - _HOP
    speech = out[start:start + n].astype(np.float64)
    fade = min(n // 4, 160)
    speech[-fade:] *= np.linspace(1, 0, fade)
    return speech


def _channel_noise(r, ss, n):
    """Session background noise (n,) at an arbitrary level: coloured through the session's
    noise spectrum and EQ, sometimes with a syllabic modulation and/or mains hum."""
    m = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(r.standard_normal(m))
    spec *= np.interp(sfft.rfftfreq(m, 1 / SAMPLE_RATE), _BIN_HZ, ss["noise_gain"])
    noise = sfft.irfft(spec, m)[:n]
    if ss["babble"] > 0:  # speech-like amplitude modulation of the noise (3-6 Hz)
        t = np.arange(n) / SAMPLE_RATE
        mod_rate = r.uniform(3, 6)
        mod = 1 + ss["babble"] * np.sin(2 * np.pi * mod_rate * t + r.uniform(0, 2 * np.pi))
        noise *= mod
    if ss["hum"] is not None:
        f_hum, hum_db = ss["hum"]
        t = np.arange(n) / SAMPLE_RATE
        hum = sum(np.sin(2 * np.pi * f_hum * h * t) / h for h in (1, 2, 3, 5))
        noise += hum * np.sqrt(np.mean(noise ** 2)) * 10 ** (hum_db / 20) * 3
    return noise


def _apply_channel(r, ss, speech):
    """Session channel on clean speech (n,): room + EQ, noise at the session SNR (with a
    per-utterance change), level; returns float64 (n,) with peak <= 0.98."""
    n = len(speech)
    y = fftconvolve(speech, ss["speech_ir"])[ss["ir_delay"]:ss["ir_delay"] + n]
    p_speech = max(np.mean(y ** 2), 1e-12)
    noise = _channel_noise(r, ss, n)
    snr = ss["snr"] + r.normal(0, 2.0)
    noise *= np.sqrt(p_speech / max(np.mean(noise ** 2), 1e-12) * 10 ** (-snr / 10))
    y = y + noise

    # Level: per session, with a per-utterance change; never clip.
    level = ss["level"] + r.normal(0, _CH["utt_level"])
    y *= 10 ** (level / 20) / max(np.sqrt(np.mean(y ** 2)), 1e-12)
    peak = np.max(np.abs(y))
    if peak > 0.98:
        y *= 0.98 / peak
    return y


def synth_utterance(seed, split, spk, sess, utt, min_dur=DEFAULTS["min_dur"],
                    max_dur=DEFAULTS["max_dur"], _cache=None):
    """One utterance as float64 samples (n,) in [-1, 1] at SAMPLE_RATE (channel included).

    Depends only on its arguments. `_cache` (a dict) may hold speaker/session parameters
    already computed for the same seed.
    """
    si = _split_index(split)
    sp, ss = _cached_params({} if _cache is None else _cache, seed, split, spk, sess)
    r = _rng(seed, _P_UTT, si, spk, sess, utt)
    n = int(round(r.uniform(min_dur, max_dur) * SAMPLE_RATE))
    n_frames = -(-n // _HOP) + _N_FFT // _HOP
    speech = _overlap_add(_filtered_frames(r, sp, ss, n_frames), n)
    return _apply_channel(r, ss, speech)


def to_wav_bytes(x):
    """16 kHz mono PCM16 WAV as bytes (no timestamps: deterministic)."""
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Corpus layout, trials, driver
# ---------------------------------------------------------------------------------------------
def session_names(seed, split, spk, sessions_per_spk):
    """Names of the sessions 0 .. sessions_per_spk - 1 of a speaker, distinct (list of str)."""
    names = []
    for sess in range(sessions_per_spk):
        names.append(session_name(seed, split, spk, sess, names))
    return names


def utterance_paths(seed, split, num_spk, sessions_per_spk, utts_per_session, first_spk=0):
    """[(relative path 'idXXXXX/<session>/<nnnnn>.wav', spk, sess, utt), ...] in order,
    for the speakers first_spk .. first_spk + num_spk - 1 of the split."""
    rows = []
    for spk in range(first_spk, first_spk + num_spk):
        sid = speaker_id(split, spk)
        for sess, name in enumerate(session_names(seed, split, spk, sessions_per_spk)):
            for utt in range(utts_per_session):
                rows.append((f"{sid}/{name}/{utt + 1:05d}.wav", spk, sess, utt))
    return rows


def _write_bytes_atomic(path, data):
    """Write data to path atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def _speaker_task(args):
    """Generate all files of one speaker; returns (n_files, audio seconds, CPU seconds)."""
    (wav_dir, seed, split, spk, sessions_per_spk, utts_per_session, min_dur, max_dur) = args
    t0 = time.process_time()
    cache = {}
    n_samples = 0
    sid = speaker_id(split, spk)
    names = session_names(seed, split, spk, sessions_per_spk)
    for sess, name in enumerate(names):
        sess_dir = os.path.join(wav_dir, sid, name)
        os.makedirs(sess_dir, exist_ok=True)
        for utt in range(utts_per_session):
            x = synth_utterance(seed, split, spk, sess, utt, min_dur=min_dur, max_dur=max_dur,
                                _cache=cache)
            n_samples += len(x)
            _write_bytes_atomic(os.path.join(sess_dir, f"{utt + 1:05d}.wav"), to_wav_bytes(x))
    return (sessions_per_spk * utts_per_session, n_samples / SAMPLE_RATE,
            time.process_time() - t0)


def _check_trial_args(num_spk, sessions_per_spk, num_trials):
    """Raise UserError if no trial list can be made from this test set."""
    if sessions_per_spk < 2:
        raise UserError("trials need at least 2 sessions per speaker (targets cross sessions)")
    if num_spk < 2:
        raise UserError("trials need at least 2 test speakers")
    if num_trials < 2:
        raise UserError(f"num_trials must be >= 2, got {num_trials}")


def _trial_counts(num_spk, sessions_per_spk, utts_per_session, num_trials):
    """(n_tar, n_non, n_tar_possible, n_non_possible): how many target / nontarget trials to
    draw (about half each, at most what the test set holds) and how many distinct pairs of each
    kind exist; warns when fewer than requested can be written."""
    per_spk = sessions_per_spk * utts_per_session
    u = num_spk * per_spk
    same_session_pairs = sessions_per_spk * (utts_per_session * (utts_per_session - 1) // 2)
    n_tar_possible = num_spk * (per_spk * (per_spk - 1) // 2 - same_session_pairs)
    n_non_possible = u * (u - 1) // 2 - num_spk * per_spk * (per_spk - 1) // 2
    n_tar = min(num_trials // 2 + num_trials % 2, n_tar_possible)
    n_non = min(num_trials - n_tar, n_non_possible)
    if n_tar + n_non < num_trials or n_tar < num_trials // 2:
        logger.warning("requested %d trials; the test set allows %d targets and %d nontargets: "
                       "writing %d targets and %d nontargets",
                       num_trials, n_tar_possible, n_non_possible, n_tar, n_non)
    return n_tar, n_non, n_tar_possible, n_non_possible


def _sample_pairs(r, n, possible, *, is_ok, enumerate_all, draw):
    """n distinct index pairs (a, b), a < b, satisfying is_ok(a, b), out of `possible` such
    pairs; returns a list of tuples. A small space is enumerated (enumerate_all()) and chosen
    from; a large one is sampled by rejection from draw(m), m candidate pairs at a time."""
    if n == 0:
        return []
    if possible <= 4 * n:  # small space: enumerate and choose
        allp = enumerate_all()
        pick = r.choice(len(allp), size=n, replace=False)
        return [allp[i] for i in np.sort(pick)]
    chosen = set()
    out = []
    while len(out) < n:
        for a, b in draw(4 * (n - len(out))):
            a, b = (a, b) if a < b else (b, a)
            if a != b and is_ok(a, b) and (a, b) not in chosen:
                chosen.add((a, b))
                out.append((a, b))
                if len(out) == n:
                    break
    return out


def _target_pairs(r, n, possible, *, spk, sess, num_spk, per_spk):
    """n distinct target pairs of utterance indices (list of (a, b), a < b): same speaker,
    different sessions. spk, sess: (U,) speaker and session of each utterance, in blocks of
    per_spk utterances per speaker."""
    u = len(spk)

    def ok(a, b):
        return spk[a] == spk[b] and sess[a] != sess[b]

    def enumerate_all():
        return [(a, b) for a in range(u) for b in range(a + 1, min(u, a + per_spk)) if ok(a, b)]

    def draw(m):
        s = r.integers(num_spk, size=m) * per_spk
        return zip(s + r.integers(per_spk, size=m), s + r.integers(per_spk, size=m))

    return _sample_pairs(r, n, possible, is_ok=ok, enumerate_all=enumerate_all, draw=draw)


def _nontarget_pairs(r, n, possible, spk):
    """n distinct nontarget pairs of utterance indices (list of (a, b), a < b): different
    speakers. spk: (U,) speaker of each utterance."""
    u = len(spk)

    def ok(a, b):
        return spk[a] != spk[b]

    def enumerate_all():
        return [(a, b) for a in range(u) for b in range(a + 1, u) if ok(a, b)]

    def draw(m):
        return zip(r.integers(u, size=m), r.integers(u, size=m))

    return _sample_pairs(r, n, possible, is_ok=ok, enumerate_all=enumerate_all, draw=draw)


def make_trials(seed, num_spk, sessions_per_spk, utts_per_session, num_trials, first_spk=0):
    """VoxCeleb-format trials over test speakers first_spk.. : [(label, enroll, test), ...].

    About half are targets, always from two different sessions of the speaker; nontargets
    pair utterances of two different speakers. No pair appears twice, sorted by enroll path.
    """
    _check_trial_args(num_spk, sessions_per_spk, num_trials)
    rows = utterance_paths(seed, "test", num_spk, sessions_per_spk=sessions_per_spk,
                           utts_per_session=utts_per_session, first_spk=first_spk)
    paths = [p for p, *_ in rows]
    spk = np.array([s for _, s, _, _ in rows])
    sess = np.array([s for _, _, s, _ in rows])
    r = _rng(seed, _P_TRIALS)
    n_tar, n_non, n_tar_possible, n_non_possible = _trial_counts(
        num_spk, sessions_per_spk, utts_per_session, num_trials)
    tar = _target_pairs(r, n_tar, n_tar_possible, spk=spk, sess=sess, num_spk=num_spk,
                        per_spk=sessions_per_spk * utts_per_session)
    non = _nontarget_pairs(r, n_non, n_non_possible, spk)
    trials = [(1, paths[a], paths[b]) for a, b in tar] + [(0, paths[a], paths[b]) for a, b in non]
    trials.sort(key=lambda t: (t[1], t[2]))
    return trials


def _check_args(*, num_train_spk, num_test_spk, sessions_per_spk, utts_per_session, min_dur,
                max_dur, seed, jobs, num_trials, first_test_spk):
    """Raise UserError for a corpus parameter out of range."""
    for name, v, lo in (("num_train_spk", num_train_spk, 0), ("num_test_spk", num_test_spk, 2),
                        ("first_test_spk", first_test_spk, 0),
                        ("sessions_per_spk", sessions_per_spk, 2),
                        ("utts_per_session", utts_per_session, 1), ("jobs", jobs, 1),
                        ("num_trials", num_trials, 2), ("seed", seed, 0)):
        if int(v) != v or v < lo:
            raise UserError(f"{name} must be an integer >= {lo}, got {v}")
    for name, v in (("num_train_spk", num_train_spk),
                    ("first_test_spk + num_test_spk", first_test_spk + num_test_spk)):
        if v > 9999:
            raise UserError(f"{name} must be <= 9999, got {v}")
    if not (0.5 <= min_dur <= max_dur <= 600):
        raise UserError(f"need 0.5 <= min_dur <= max_dur <= 600 s, got {min_dur}, {max_dur}")


def _corpus_params(*, num_train_spk, num_test_spk, sessions_per_spk, utts_per_session, min_dur,
                   max_dur, seed, num_trials, first_test_spk, splits):
    """The parameters that define a corpus (a JSON-able dict), as stored in .done."""
    params = dict(num_train_spk=int(num_train_spk), num_test_spk=int(num_test_spk),
                  sessions_per_spk=int(sessions_per_spk), utts_per_session=int(utts_per_session),
                  min_dur=float(min_dur), max_dur=float(max_dur), seed=int(seed),
                  num_trials=int(num_trials), splits=list(splits), sample_rate=SAMPLE_RATE,
                  version=GENERATOR_VERSION)
    if first_test_spk:   # only when set, so corpora made before the option still match
        params["first_test_spk"] = int(first_test_spk)
    return params


def _is_complete(out_dir, params, force):
    """True if out_dir already holds a complete corpus made with params (and not force);
    raises UserError if it holds one made with other parameters and not force."""
    done = os.path.join(out_dir, DONE_MARKER)
    if not os.path.isfile(done):
        return False
    try:
        with open(done, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = None
    if old == params and not force:
        return True
    if not force:
        raise UserError(f"{out_dir}: holds a mini corpus made with other parameters "
                        f"({done}); use --force to regenerate, or another --out_dir")
    return False


def _start_corpus_dir(out_dir, params):
    """Clear what an earlier run of the generator left in out_dir (refusing, with UserError,
    to delete split directories it did not make) and mark out_dir incomplete; returns None."""
    done = os.path.join(out_dir, DONE_MARKER)
    incomplete = os.path.join(out_dir, INCOMPLETE_MARKER)
    ours = os.path.isfile(done) or os.path.isfile(incomplete)
    for split in SPLITS:
        d = os.path.join(out_dir, split)
        if os.path.exists(d):
            if not ours:
                raise UserError(f"{d}: exists and was not made by the mini-corpus generator; "
                                "refusing to overwrite it")
            shutil.rmtree(d)
    os.makedirs(out_dir, exist_ok=True)
    if os.path.isfile(done):
        os.remove(done)
    with atomic_write(incomplete) as f:
        json.dump(params, f)


def _speaker_tasks(out_dir, splits, speakers, *, seed, sessions_per_spk, utts_per_session,
                   min_dur, max_dur):
    """One _speaker_task argument tuple per speaker of the splits, in order (speakers: split
    -> range of speaker indices); creates the splits' wav directories."""
    tasks = []
    for split in splits:
        wav_dir = os.path.join(out_dir, split, "wav")
        os.makedirs(wav_dir, exist_ok=True)
        for spk in speakers[split]:
            tasks.append((wav_dir, seed, split, spk, sessions_per_spk, utts_per_session,
                          min_dur, max_dur))
    return tasks


def _run_speaker_tasks(tasks, jobs, progress):
    """Run the tasks, in `jobs` spawned processes if jobs > 1; returns (files written, audio
    seconds, CPU seconds summed over the tasks, wall seconds)."""
    t0 = time.perf_counter()
    results = parallel_map(_speaker_task, tasks, jobs, desc="mini corpus", unit="spk",
                           progress=progress)
    n_files, audio_s, cpu_s = (sum(column) for column in zip((0, 0.0, 0.0), *results))
    return n_files, audio_s, cpu_s, time.perf_counter() - t0


def _write_trials(out_dir, trials):
    """Write out_dir/test/trials.txt; returns (target count, nontarget count)."""
    n_tar = sum(t[0] for t in trials)
    with atomic_write(os.path.join(out_dir, "test", "trials.txt")) as f:
        for label, a, b in trials:
            f.write(f"{label} {a} {b}\n")
    return n_tar, len(trials) - n_tar


def _finish_corpus_dir(out_dir, params, *, files, audio_s, trials_target, trials_nontarget):
    """Write out_dir/meta.json, then .done (the corpus is complete), and drop .incomplete."""
    with atomic_write(os.path.join(out_dir, "meta.json")) as f:
        json.dump(dict(params=params, files=files, audio_hours=audio_s / 3600,
                       trials_target=trials_target, trials_nontarget=trials_nontarget,
                       generator="wespeaker_mfcon.synth.mini_corpus"), f, indent=1)
        f.write("\n")
    with atomic_write(os.path.join(out_dir, DONE_MARKER)) as f:
        json.dump(params, f)
    os.remove(os.path.join(out_dir, INCOMPLETE_MARKER))


def make_corpus(out_dir, num_train_spk=DEFAULTS["num_train_spk"],
                num_test_spk=DEFAULTS["num_test_spk"],
                sessions_per_spk=DEFAULTS["sessions_per_spk"],
                utts_per_session=DEFAULTS["utts_per_session"], min_dur=DEFAULTS["min_dur"],
                max_dur=DEFAULTS["max_dur"], seed=DEFAULTS["seed"], jobs=1,
                num_trials=DEFAULTS["num_trials"], first_test_spk=DEFAULTS["first_test_spk"],
                force=False, splits=SPLITS, progress=True):
    """Write the corpus under out_dir; returns a stats dict (or {'skipped': True, ...}).

    Layout: out_dir/{train,test}/wav/idXXXXX/<session>/<nnnnn>.wav, out_dir/test/trials.txt
    (VoxCeleb format, paths relative to out_dir/test/wav), out_dir/meta.json and, written
    last, out_dir/.done holding the parameters. A run that finds .done with the same
    parameters does nothing; with other parameters it refuses unless force=True. An
    interrupted run leaves no .done; the next run clears what it left and starts again.
    `splits` may restrict generation (files do not depend on the other split).
    first_test_spk > 0 skips that many test speakers: the test set is then disjoint from the
    test set of a corpus with num_test_spk <= first_test_spk, and the train split is the same.
    """
    _check_args(num_train_spk=num_train_spk, num_test_spk=num_test_spk,
                sessions_per_spk=sessions_per_spk, utts_per_session=utts_per_session,
                min_dur=min_dur, max_dur=max_dur, seed=seed, jobs=jobs, num_trials=num_trials,
                first_test_spk=first_test_spk)
    splits = tuple(splits)
    for s in splits:
        _split_index(s)
    params = _corpus_params(num_train_spk=num_train_spk, num_test_spk=num_test_spk,
                            sessions_per_spk=sessions_per_spk, utts_per_session=utts_per_session,
                            min_dur=min_dur, max_dur=max_dur, seed=seed, num_trials=num_trials,
                            first_test_spk=first_test_spk, splits=splits)
    # The trial list first: it checks the layout before anything is written.
    trials = None
    if "test" in splits:
        trials = make_trials(seed, num_test_spk, sessions_per_spk=sessions_per_spk,
                             utts_per_session=utts_per_session, num_trials=num_trials,
                             first_spk=first_test_spk)
    if _is_complete(out_dir, params, force):
        return dict(skipped=True, out_dir=out_dir, params=params)
    _start_corpus_dir(out_dir, params)

    speakers = dict(train=range(num_train_spk),
                    test=range(first_test_spk, first_test_spk + num_test_spk))
    tasks = _speaker_tasks(out_dir, splits, speakers, seed=seed,
                           sessions_per_spk=sessions_per_spk, utts_per_session=utts_per_session,
                           min_dur=min_dur, max_dur=max_dur)
    n_files, audio_s, cpu_s, wall_s = _run_speaker_tasks(tasks, jobs, progress)
    n_tar, n_non = _write_trials(out_dir, trials) if trials is not None else (0, 0)
    _finish_corpus_dir(out_dir, params, files=n_files, audio_s=audio_s, trials_target=n_tar,
                       trials_nontarget=n_non)
    return dict(skipped=False, out_dir=out_dir, params=params, files=n_files,
                audio_s=audio_s, cpu_s=cpu_s, wall_s=wall_s,
                rtf=audio_s / max(cpu_s, 1e-9), trials_target=n_tar, trials_nontarget=n_non)
