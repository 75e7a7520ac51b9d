"""Waveform augmentation: reverb, speed perturbation, Augmentor (noise at SNR), lists."""

import hashlib
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from wespeaker_mfcon.bin import prepare_aug_lists
from wespeaker_mfcon.synth import noise as mini_noise
from wespeaker_mfcon.dataset.augment import (Augmentor, add_reverb, fit_length,
                                              speed_perturb)
from wespeaker_mfcon.utils.audio import load_wav
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp

SR = 16000


def _speech(seed=0, n=2 * SR):
    """Amplitude-modulated harmonic signal, a cheap stand-in for a speech chunk."""
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * 150 * h * t + rng.uniform(0, 6)) / h for h in range(1, 10))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _snr_db(speech, mix):
    noise = mix.astype(np.float64) - speech
    return 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise ** 2))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    noise_scp, rir_scp = mini_noise.generate_noise_set(str(d), num_per_type=3, num_rirs=4,
                                                       duration=3.0)
    return noise_scp, rir_scp


# ------------------------------------------------------------------------------ fit_length

def test_fit_length_crop_and_loop():
    noise = np.arange(10, dtype=np.float32)
    seg = fit_length(noise, 25, np.random.default_rng(0))
    assert len(seg) == 25 and np.all(np.diff(seg) % 10 == 1)     # contiguous, wrapping around
    seg = fit_length(noise, 4, np.random.default_rng(0))
    assert len(seg) == 4 and np.all(np.diff(seg) == 1)


# ------------------------------------------------------------------------------ add_reverb

def test_reverb_delta_rir_is_identity():
    speech = _speech()
    rir = np.zeros(800, np.float32)
    rir[37] = 0.25                                   # delayed, scaled impulse
    out = add_reverb(speech, rir)
    assert out.shape == speech.shape
    np.testing.assert_allclose(out, speech, atol=1e-5)


def test_reverb_keeps_length_and_energy(synth):
    _, rir_scp = synth
    speech = _speech()
    e_in = np.sum(speech.astype(np.float64) ** 2)
    for path in read_scp(rir_scp).values():
        rir, sr = sf.read(path, dtype="float32")
        assert sr == SR
        out = add_reverb(speech, rir)
        assert out.shape == speech.shape and np.all(np.isfinite(out))
        e_out = np.sum(out.astype(np.float64) ** 2)
        assert 0.5 < e_out / e_in < 2.0
        # it did reverberate: the output is no longer the input
        corr = np.dot(out, speech) / np.sqrt(e_in * e_out)
        assert corr < 0.99
        # and is aligned on the direct path: lag of max cross-correlation is 0
        white = np.random.default_rng(3).standard_normal(8000).astype(np.float32)
        xc = np.correlate(add_reverb(white, rir), white, mode="full")
        assert int(np.argmax(xc)) == 7999


def test_reverb_rejects_silent_rir():
    with pytest.raises(ValueError):
        add_reverb(_speech(), np.zeros(100, np.float32))


# --------------------------------------------------------------------------- speed perturb

@pytest.mark.parametrize("factor", [0.9, 1.0, 1.1])
def test_speed_perturb_length_and_pitch(factor):
    n = 3 * SR + 7
    t = np.arange(n) / SR
    wave = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = speed_perturb(wave, factor)
    assert out.dtype == np.float32
    assert abs(len(out) - n / factor) <= 1
    # a tone at f plays at f * factor
    spec = np.abs(np.fft.rfft(out[SR // 2:-SR // 2] * np.hanning(len(out) - SR)))
    peak_hz = np.argmax(spec) * SR / (len(out) - SR)
    assert abs(peak_hz - 440 * factor) < 3


# ------------------------------------------------------------------------------- Augmentor

def test_augmentor_prob0_unchanged_prob1_changed(synth):
    noise_scp, rir_scp = synth
    speech = _speech()
    aug0 = Augmentor({"aug_prob": 0.0, "noise_scp": noise_scp, "rir_scp": rir_scp})
    rng = np.random.default_rng(0)
    for _ in range(5):
        np.testing.assert_array_equal(aug0(speech, rng), speech)
    aug1 = Augmentor({"aug_prob": 1.0, "noise_scp": noise_scp, "rir_scp": rir_scp})
    assert aug1.types == ["reverb", "noise", "music", "babble"]
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(24):
        out = aug1(speech, rng)
        assert out.shape == speech.shape and out.dtype == np.float32
        assert np.max(np.abs(out)) <= 1.0
        assert np.max(np.abs(out - speech)) > 1e-3
        seen.add(aug1.last_type)
    assert seen == {"reverb", "noise", "music", "babble"}


def test_augmentor_snr_ranges(synth):
    noise_scp, _ = synth
    speech = _speech()
    aug = Augmentor({"aug_prob": 1.0, "noise_scp": noise_scp, "aug_types": ["noise", "music"],
                     "noise_snr": {"noise": [3, 4], "music": [10, 11]}})
    rng = np.random.default_rng(5)
    for _ in range(8):
        out = aug(speech, rng)
        lo, hi = {"noise": (3, 4), "music": (10, 11)}[aug.last_type]
        assert lo - 0.5 < _snr_db(speech, out) < hi + 0.5
    # babble: k talkers, each at [13, 20] dB -> total SNR between 13 - 10log10(7) and 20
    bab = Augmentor({"aug_prob": 1.0, "noise_scp": noise_scp, "aug_types": ["babble"]})
    for _ in range(4):
        s = _snr_db(speech, bab(speech, rng))
        assert 13 - 10 * np.log10(7) - 0.5 < s < 20.5


def test_augmentor_deterministic(synth):
    noise_scp, rir_scp = synth
    speech = _speech()
    conf = {"aug_prob": 0.6, "noise_scp": noise_scp, "rir_scp": rir_scp}
    a, b = Augmentor(conf), Augmentor(dict(conf, cache_mb=0))   # cache must not matter
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    outs = []
    for _ in range(10):
        x, y = a(speech, ra), b(speech, rb)
        np.testing.assert_array_equal(x, y)
        outs.append(x)
    other = Augmentor(conf)(speech, np.random.default_rng(8))
    assert any(not np.array_equal(o, other) for o in outs)


def test_augmentor_long_noise_read_as_segment(tmp_path):
    # a noise longer than max_cache_seconds is read by segments and never cached
    path = tmp_path / "long.wav"
    sf.write(str(path), (0.1 * np.random.default_rng(0).standard_normal(4 * SR)), SR)
    scp = tmp_path / "noise.scp"
    scp.write_text(f"noise-long {path}\n")
    aug = Augmentor({"aug_prob": 1.0, "noise_scp": str(scp), "max_cache_seconds": 1.0,
                     "noise_snr": {"noise": [5, 5]}})
    speech = _speech(n=SR)
    out = aug(speech, np.random.default_rng(0))
    assert abs(_snr_db(speech, out) - 5) < 0.5
    assert len(aug._cache) == 0


def test_augmentor_reads_through_load_wav_warning_once(tmp_path, caplog):
    """Stereo and 8 kHz noise files: channel 0 at 16 kHz, exactly as load_wav gives them
    (one place converts), with one warning per file however often it is read."""
    rng = np.random.default_rng(0)
    stereo, low = tmp_path / "noise-stereo.wav", tmp_path / "noise-8k.wav"
    sf.write(str(stereo), 0.1 * rng.standard_normal((SR, 2)), SR, subtype="FLOAT")
    sf.write(str(low), 0.1 * rng.standard_normal(4 * 8000), 8000, subtype="FLOAT")
    scp = tmp_path / "noise.scp"
    scp.write_text(f"noise-stereo {stereo}\n")
    aug = Augmentor({"aug_prob": 1.0, "noise_scp": str(scp)})
    with caplog.at_level(logging.WARNING):
        aug(_speech(n=SR // 2), np.random.default_rng(0))
        aug(_speech(n=SR // 2), np.random.default_rng(1))
    assert sum("noise-stereo.wav" in r.getMessage() for r in caplog.records) == 1
    assert len(aug._cache.get(str(stereo))) == SR
    np.testing.assert_array_equal(aug._cache.get(str(stereo)), load_wav(str(stereo), 16000))

    # a long 8 kHz file is read in segments, each resampled; still one warning
    scp.write_text(f"noise-8k {low}\n")
    aug = Augmentor({"aug_prob": 1.0, "noise_scp": str(scp), "max_cache_seconds": 1.0})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for seed in range(3):
            out = aug(_speech(n=SR // 2), np.random.default_rng(seed))
            assert out.shape == (SR // 2,)
    assert len(aug._cache) == 0
    assert sum("noise-8k.wav" in r.getMessage() and "8000" in r.getMessage()
               for r in caplog.records) == 1
    assert aug._read(str(low), "x").shape == (4 * SR,)


def test_augmentor_bad_files(tmp_path, synth):
    noise_scp, _ = synth
    bad = tmp_path / "noise-broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    scp = tmp_path / "noise.scp"
    scp.write_text(f"noise-broken {bad}\n")
    aug = Augmentor({"aug_prob": 1.0, "noise_scp": str(scp)})
    with pytest.raises(UserError, match="noise-broken.wav") as ei:
        aug(_speech(), np.random.default_rng(0))
    assert str(ei.value).startswith(f"{scp}:1: ")

    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), SR)
    scp.write_text(f"noise-empty {empty}\n")
    with pytest.raises(UserError, match="empty.wav"):
        Augmentor({"aug_prob": 1.0, "noise_scp": str(scp)})(_speech(), np.random.default_rng(0))

    rir_scp = tmp_path / "rir.scp"
    rir_scp.write_text("r1 /nonexistent/dir/r1.wav\n")
    with pytest.raises(UserError, match=r"rir.scp:1: .*/nonexistent/dir/r1.wav"):
        Augmentor({"rir_scp": str(rir_scp)})          # fails at construction

    scp.write_text(f"mystery-1 {bad}\n")
    with pytest.raises(UserError, match="noise type"):
        Augmentor({"noise_scp": str(scp)})
    scp.write_text(f"mystery-1 {bad} music\n")          # third column gives the type
    assert Augmentor({"noise_scp": str(scp)}).types == ["music"]

    with pytest.raises(UserError, match="aug_types"):
        Augmentor({"noise_scp": noise_scp, "aug_types": ["reverb"]})
    with pytest.raises(UserError, match="aug_prob"):
        Augmentor({"aug_prob": 1.5})


# ------------------------------------------------------------------- lists and mini noise

def _touch_wav(path, n=1600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, 0.1 * np.ones(n, np.float32), SR)


def test_prepare_aug_lists_fake_tree(tmp_path):
    musan = tmp_path / "corpora" / "musan"
    _touch_wav(str(musan / "noise" / "free-sound" / "noise-free-sound-0000.wav"))
    _touch_wav(str(musan / "music" / "fma" / "music-fma-0001.wav"))
    _touch_wav(str(musan / "speech" / "librivox" / "speech-librivox-0002.wav"))
    _touch_wav(str(musan / "speech" / "us-gov" / "talk.wav"))
    rirs = tmp_path / "corpora" / "RIRS_NOISES"
    _touch_wav(str(rirs / "simulated_rirs" / "smallroom" / "Room001" / "Room001-00001.wav"))
    _touch_wav(str(rirs / "real_rirs_isotropic_noises" / "RVB2014_type1_rir_room1.wav"))
    _touch_wav(str(rirs / "real_rirs_isotropic_noises" / "RVB2014_type1_noise_room1_1.wav"))
    out = tmp_path / "lists"
    prepare_aug_lists.main(["--musan_root", str(tmp_path / "corpora"),
                            "--rir_root", str(tmp_path / "corpora"), "--out_dir", str(out)])
    noise = read_scp(str(out / "noise.scp"))
    assert sorted(noise) == ["music-fma-0001", "noise-free-sound-0000",
                             "speech-librivox-0002", "speech-talk"]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in noise.values())
    rir = read_scp(str(out / "rir.scp"))
    assert sorted(rir) == ["real_rirs_isotropic_noises-RVB2014_type1_rir_room1",
                           "simulated_rirs-smallroom-Room001-Room001-00001"]
    aug = Augmentor({"noise_scp": str(out / "noise.scp"), "rir_scp": str(out / "rir.scp")})
    assert aug.types == ["reverb", "noise", "music", "babble"]

    prepare_aug_lists.main(["--rir_root", str(rirs), "--rir_sets", "simulated",
                            "--out_dir", str(tmp_path / "sim")])
    assert len(read_scp(str(tmp_path / "sim" / "rir.scp"))) == 1

    empty = tmp_path / "empty" / "musan" / "noise"
    empty.mkdir(parents=True)
    with pytest.raises(UserError, match="no .wav files"):
        prepare_aug_lists.main(["--musan_root", str(tmp_path / "empty"),
                                "--out_dir", str(tmp_path / "x")])
    with pytest.raises(UserError, match="no RIR"):
        prepare_aug_lists.main(["--rir_root", str(tmp_path / "empty"),
                                "--out_dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def _digest(d):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(d)):
        for f in sorted(files):
            h.update(f.encode())
            with open(os.path.join(root, f), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_mini_noise_deterministic(tmp_path):
    a = prepare_aug_lists.main(["--synthetic", "2", "--out_dir", str(tmp_path / "a")])
    assert a == 0
    mini_noise.main(["--out_dir", str(tmp_path / "b"), "--num_per_type", "2", "--num_rirs", "2"])
    mini_noise.main(["--out_dir", str(tmp_path / "c"), "--num_per_type", "2", "--num_rirs", "2",
                     "--seed", "1"])
    # same content (lists hold absolute paths, so compare the wavs)
    assert _digest(tmp_path / "a" / "noise") == _digest(tmp_path / "b" / "noise")
    assert _digest(tmp_path / "a" / "rir") == _digest(tmp_path / "b" / "rir")
    assert _digest(tmp_path / "a" / "noise") != _digest(tmp_path / "c" / "noise")
    noise = read_scp(str(tmp_path / "a" / "noise.scp"))
    assert sorted(k.split("-")[0] for k in noise) == ["music"] * 2 + ["noise"] * 2 + ["speech"] * 2
    for key, path in list(noise.items()) + list(read_scp(str(tmp_path / "a" / "rir.scp")).items()):
        x, sr = sf.read(path)
        assert sr == SR and np.std(x) > 1e-3, key
    # RIRs: direct path is the peak, energy decays (late part much weaker than early part)
    for path in read_scp(str(tmp_path / "a" / "rir.scp")).values():
        h, _ = sf.read(path)
        p = int(np.argmax(np.abs(h)))
        assert p < 0.011 * SR
        early = np.sum(h[p:p + 1600] ** 2)
        late = np.sum(h[-1600:] ** 2)
        assert late < 0.05 * early
