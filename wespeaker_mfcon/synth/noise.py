"""Synthetic noise and room impulse responses for the mini corpus (a MUSAN/RIRS_NOISES stand-in).

Writes 16 kHz 16-bit wavs plus ``noise.scp`` (keys prefixed noise-/music-/speech-) and
``rir.scp`` in the format :class:`wespeaker_mfcon.dataset.augment.Augmentor` reads:

* noise:  white/pink/brown/blue noise, mains hum with harmonics, modulated "machine" noise
* music:  chord progressions of harmonic tones with note envelopes and light percussion
* speech: one synthetic talker per file (glottal pulse train / noise through moving formant
  resonators with syllabic gating); the Augmentor sums several of these into babble
* rir:    direct-path impulse + sparse early reflections + exponentially decaying noise tail,
  RT60 uniform in [0.2, 0.8] s, random direct-to-reverberant ratio

Every file is drawn from its own generator seeded by (seed, type, index), so the output is
byte-identical for a given seed and a file does not change when the set size does.

CLI: ``python -m wespeaker_mfcon.synth.noise --out_dir DIR [--num_per_type N]``
"""

import argparse
import logging
import os

import numpy as np
from scipy.signal import lfilter

from wespeaker_mfcon.config.schema import SAMPLE_RATE
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write, write_table

logger = logging.getLogger(__name__)

SR = SAMPLE_RATE
_TYPE_IDS = {"noise": 1, "music": 2, "speech": 3, "rir": 4}


def _rng(seed, kind, index):
    return np.random.default_rng([int(seed), _TYPE_IDS[kind], int(index)])


def _normalize(x, peak=0.5):
    m = float(np.max(np.abs(x)))
    return (x * (peak / m) if m > 0 else x).astype(np.float32)


def _colored(rng, n, exponent):
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown, -1 blue)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    f[0] = f[1]
    spec *= f ** (-exponent / 2.0)
    return np.fft.irfft(spec, n)


def _resonator(x, freq, bw):
    """Two-pole resonator (formant filter) at `freq` Hz with bandwidth `bw` Hz."""
    r = np.exp(-np.pi * bw / SR)
    a = [1.0, -2.0 * r * np.cos(2 * np.pi * freq / SR), r * r]
    return lfilter([1.0 - r], a, x)


def make_noise(rng, n, variant):
    t = np.arange(n) / SR
    if variant < 4:                                   # colored noise
        x = _colored(rng, n, [0.0, 1.0, 2.0, -1.0][variant])
    elif variant == 4:                                # mains hum + harmonics + hiss
        f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.99, 1.01)
        x = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3))
                for h in range(1, 8))
        x = x + 0.05 * rng.standard_normal(n)
    else:                                             # machine: band noise, periodic bursts
        x = _resonator(rng.standard_normal(n), rng.uniform(200, 3000), rng.uniform(100, 600))
        rate = rng.uniform(1.0, 8.0)
        x = x * (0.4 + 0.6 * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rate * t))))
    return _normalize(x, rng.uniform(0.2, 0.7))


def make_music(rng, n):
    """Chord progression of harmonic tones with attack/decay envelopes, plus a soft beat."""
    x = np.zeros(n)
    bpm = rng.uniform(70, 160)
    beat = int(SR * 60.0 / bpm)
    root = rng.integers(45, 60)                       # MIDI note of the key
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    nharm = int(rng.integers(3, 9))
    hamps = rng.uniform(0.2, 1.0, nharm) / np.arange(1, nharm + 1)
    pos = 0
    while pos < n:
        dur = min(beat * int(rng.choice([1, 2, 4])), n - pos)
        seg_t = np.arange(dur) / SR
        env = (1 - np.exp(-seg_t / 0.01)) * np.exp(-seg_t / rng.uniform(0.2, 1.0))
        degree = int(rng.integers(0, 7))
        chord = [root + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        for midi in chord:
            f = 440.0 * 2 ** ((midi - 69) / 12.0)
            for h, a in enumerate(hamps, 1):
                if f * h < SR / 2 - 500:
                    x[pos:pos + dur] += a * env * np.sin(2 * np.pi * f * h * seg_t)
        hit = min(int(0.05 * SR), dur)                # percussion: short noise burst
        x[pos:pos + hit] += 0.3 * rng.standard_normal(hit) * np.exp(-np.arange(hit) / 200.0)
        pos += dur
    return _normalize(x, rng.uniform(0.3, 0.8))


# rough (F1, F2, F3) of a few vowels
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240],
                    [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]], dtype=float)


def make_speech(rng, n):
    """One synthetic talker: voiced syllables (pulse train through formants) + fricatives."""
    f0_base = rng.uniform(90, 250)
    vt_scale = rng.uniform(0.85, 1.2)                 # vocal-tract length factor
    x = np.zeros(n)
    pos = int(rng.integers(0, SR // 10))
    while pos < n:
        dur = min(int(rng.uniform(0.08, 0.3) * SR), n - pos)
        if rng.random() < 0.75:                       # voiced
            f0 = f0_base * rng.uniform(0.85, 1.15) * np.linspace(1.0, rng.uniform(0.85, 1.1), dur)
            phase = np.cumsum(f0 / SR)
            src = np.diff(np.floor(phase), prepend=0.0) + 0.02 * rng.standard_normal(dur)
            formants = _VOWELS[rng.integers(len(_VOWELS))] * vt_scale
            bws = (60.0, 90.0, 120.0)
        else:                                         # fricative
            src = 0.3 * rng.standard_normal(dur)
            formants, bws = [rng.uniform(2500, 6000)], (rng.uniform(800, 2000),)
        y = src
        for f, bw in zip(formants, bws):
            y = _resonator(y, min(f, SR / 2 - 200), bw)
        y = y * np.hanning(dur)
        x[pos:pos + dur] += y / (np.std(y) + 1e-9)
        pos += dur + int(rng.uniform(0.0, 0.25) * SR)   # pauses between syllables
    return _normalize(x, rng.uniform(0.3, 0.8))


def make_rir(rng, rt60=None):
    """Synthetic RIR: direct impulse (the peak), early reflections, exponential noise tail."""
    rt60 = float(rng.uniform(0.2, 0.8)) if rt60 is None else float(rt60)
    n = int((rt60 + 0.05) * SR)
    h = np.zeros(n)
    direct = int(rng.integers(int(0.001 * SR), int(0.01 * SR)))
    h[direct] = 1.0
    for _ in range(int(rng.integers(4, 10))):         # sparse early reflections (< 50 ms)
        k = direct + int(rng.integers(int(0.002 * SR), int(0.05 * SR)))
        if k < n:
            h[k] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.6)
    t = np.arange(n - direct) / SR
    tail = rng.standard_normal(n - direct) * np.exp(-6.9078 * t / rt60)   # -60 dB at rt60
    tail = lfilter([0.6], [1.0, -0.4], tail)          # mild air absorption (low-pass)
    drr_db = rng.uniform(-3.0, 8.0)
    tail *= np.sqrt(1.0 / (10 ** (drr_db / 10.0) * np.sum(tail ** 2)))
    onset = int(0.002 * SR)                           # tail builds up after the direct path
    tail[:onset] *= np.linspace(0.0, 1.0, onset)
    h[direct:] += tail
    # the direct path must stay the peak (augment.add_reverb aligns on it)
    others = np.abs(h) > 0.95
    others[direct] = False
    h[others] = np.sign(h[others]) * 0.95
    return _normalize(h, 0.9), rt60


def _write_wav(path, wave):
    import soundfile as sf
    with atomic_write(path, "wb") as f:
        sf.write(f, wave, SR, subtype="PCM_16", format="WAV")


def generate_noise_set(out_dir, num_per_type=6, num_rirs=8, seed=0, duration=5.0):
    """Write synthetic noises and RIRs under `out_dir`; returns (noise_scp, rir_scp) paths.

    `num_per_type` files each of noise, music and speech of `duration` seconds, and `num_rirs`
    impulse responses. Lists are written last and atomically, so a present list means a
    complete set.
    """
    out_dir = os.path.abspath(out_dir)
    n = int(round(duration * SR))
    if n <= 0 or num_per_type < 0 or num_rirs < 0:
        raise UserError("mini_noise: duration must be > 0 and counts >= 0")
    noise_rows, rir_rows = [], []
    for kind in ("noise", "music", "speech"):
        for i in range(num_per_type):
            rng = _rng(seed, kind, i)
            if kind == "noise":
                variant = i % 6
                wave = make_noise(rng, n, variant)
                name = ["white", "pink", "brown", "blue", "hum", "machine"][variant]
            elif kind == "music":
                wave, name = make_music(rng, n), "chords"
            else:
                wave, name = make_speech(rng, n), "talker"
            key = f"{kind}-synth-{name}-{i:04d}"
            path = os.path.join(out_dir, "noise", f"{key}.wav")
            _write_wav(path, wave)
            noise_rows.append((key, path))
    for i in range(num_rirs):
        rir, rt60 = make_rir(_rng(seed, "rir", i))
        key = f"rir-synth-{i:04d}-rt{int(round(rt60 * 1000)):03d}ms"
        path = os.path.join(out_dir, "rir", f"{key}.wav")
        _write_wav(path, rir)
        rir_rows.append((key, path))
    noise_scp = os.path.join(out_dir, "noise.scp")
    rir_scp = os.path.join(out_dir, "rir.scp")
    if noise_rows:
        write_table(noise_scp, noise_rows)
    if rir_rows:
        write_table(rir_scp, rir_rows)
    logger.info("synthetic augmentation set: %d noises, %d RIRs in %s",
                len(noise_rows), len(rir_rows), out_dir)
    return noise_scp, rir_scp


def get_parser():
    p = argparse.ArgumentParser(
        description="Generate a small deterministic synthetic noise/RIR set (MUSAN and "
                    "RIRS_NOISES stand-in) with noise.scp and rir.scp lists.")
    p.add_argument("--out_dir", required=True, help="output directory")
    p.add_argument("--num_per_type", type=int, default=6,
                   help="files per noise type (noise, music, speech) (default 6)")
    p.add_argument("--num_rirs", type=int, default=8, help="number of RIRs (default 8)")
    p.add_argument("--duration", type=float, default=5.0, help="noise length in s (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    noise_scp, rir_scp = generate_noise_set(args.out_dir, args.num_per_type, args.num_rirs,
                                            args.seed, args.duration)
    print(noise_scp)
    print(rir_scp)


if __name__ == "__main__":
    from wespeaker_mfcon.utils.entrypoint import run_main
    run_main(main)
