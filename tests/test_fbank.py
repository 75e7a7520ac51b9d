"""The torch fbank against kaldi-native-fbank (float32 C++ Kaldi port), a float64 reference and
sherpa-onnx's SpeakerEmbeddingExtractor.

Two settings are checked throughout, each spelled out: KALDI (compute-fbank-feats defaults:
mel up to Nyquist, snip_edges=True) and the project's FBANK_DEFAULTS, which are sherpa-onnx's
front end (mel up to Nyquist - 400 Hz, snip_edges=False, edges reflected).

Measured (float32 torch vs knf, 3 s signals on the int16 scale): white noise ~2e-4, speech-like
~6e-5, DC offset ~1e-4. Pure int16 tones: bins within 60 dB of the frame maximum agree to ~1e-4,
but bins ~100 dB below the tone (the int16 quantization floor) differ by up to ~5e-3: there knf
itself is off a float64 reference by the same amount (float32 cannot resolve the range), so
no float32 code can match it to 1e-3; our float64 path matches the float64 reference to 1e-9.
"""

import inspect
import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from wespeaker_mfcon.dataset.processing import chunk_samples
from wespeaker_mfcon.frontend.fbank import (FBANK_DEFAULTS, Fbank, apply_cmn, fbank, mel_banks,
                                            num_frames, pad_edges, reflect_index)

knf = pytest.importorskip("kaldi_native_fbank")

SR = 16000
# Kaldi's compute-fbank-feats (and WeSpeaker's) settings where they differ from the project's.
KALDI = dict(high_freq=0.0, snip_edges=True)
# sherpa-onnx FeatureExtractorConfig defaults, written out independently of FBANK_DEFAULTS.
SHERPA = dict(sample_rate=16000, num_mel_bins=80, frame_length_ms=25.0, frame_shift_ms=10.0,
              low_freq=20.0, high_freq=-400.0, snip_edges=False, dither=0.0,
              window_type="povey", preemphasis=0.97, remove_dc_offset=True)
SETTINGS = {"kaldi": KALDI, "sherpa": {}}  # {}: the project defaults


def knf_sherpa(x):
    """kaldi-native-fbank set up as sherpa-onnx's FeatureExtractor sets it (features.cc): only
    these fields are assigned, the rest are knf's defaults (povey, preemph 0.97, DC removal)."""
    o = knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.snip_edges = False
    o.frame_opts.samp_freq = SR
    o.mel_opts.num_bins = 80
    o.mel_opts.low_freq = 20.0
    o.mel_opts.high_freq = -400.0
    f = knf.OnlineFbank(o)
    f.accept_waveform(SR, np.asarray(x, dtype=np.float32).tolist())
    f.input_finished()
    if f.num_frames_ready == 0:
        return np.zeros((0, 80))
    return np.stack([np.asarray(f.get_frame(i)) for i in range(f.num_frames_ready)])


def knf_fbank(x, *, snip_edges, high_freq, num_mel_bins=80, use_energy=False, low_freq=20.0):
    o = knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = SR
    o.frame_opts.snip_edges = snip_edges
    o.frame_opts.remove_dc_offset = True
    o.frame_opts.preemph_coeff = 0.97
    o.frame_opts.window_type = "povey"
    o.mel_opts.num_bins = num_mel_bins
    o.mel_opts.low_freq = low_freq
    o.mel_opts.high_freq = high_freq
    o.energy_floor = 0.0
    o.use_energy = use_energy
    f = knf.OnlineFbank(o)
    # knf applies no scaling: it gets the same int16-scale values as the torch code.
    f.accept_waveform(SR, np.asarray(x, dtype=np.float32).tolist())
    f.input_finished()
    return np.stack([np.asarray(f.get_frame(i)) for i in range(f.num_frames_ready)])


def reference_fbank(x, *, snip_edges, high_freq):
    """Independent float64 numpy Kaldi fbank (80 bins, 25/10 ms, povey)."""
    length, shift, n = 400, 160, len(x)
    if snip_edges:
        starts = np.arange(1 + (n - length) // shift) * shift
    else:  # frames centred on t * shift + shift / 2, reflected at the ends (ExtractWindow)
        starts = np.arange((n + shift // 2) // shift) * shift + shift // 2 - length // 2
    idx = starts[:, None] + np.arange(length)[None, :]
    while ((idx < 0) | (idx >= n)).any():
        idx = np.where(idx < 0, -idx - 1, idx)
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
    fr = np.asarray(x, dtype=np.float64)[idx]
    fr -= fr.mean(axis=1, keepdims=True)
    fr = np.concatenate([fr[:, :1] * 0.03, fr[:, 1:] - 0.97 * fr[:, :-1]], axis=1)
    fr *= (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))) ** 0.85
    power = np.abs(np.fft.rfft(fr, 512)) ** 2

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    lo, hi = mel(20.0), mel(high_freq if high_freq > 0 else SR / 2 + high_freq)
    d = (hi - lo) / 81
    m = mel(np.arange(257) * SR / 512)
    m[256] = np.inf  # Kaldi never uses the Nyquist bin
    bank = np.zeros((257, 80))
    for b in range(80):
        left, center, right = lo + b * d, lo + (b + 1) * d, lo + (b + 2) * d
        tri = np.where(m <= center, (m - left) / (center - left), (right - m) / (right - center))
        bank[:, b] = np.where((m > left) & (m < right), tri, 0.0)
    return np.log(np.maximum(power @ bank, np.finfo(np.float32).eps))


def speech_like(seconds, seed):
    """Harmonic source with vibrato, per-syllable formant filtering, syllable envelopes, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 220) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    src = sum(np.cos(k * phase) / k for k in range(1, 40))
    out, seg = np.zeros(n), SR // 5
    for s in range(0, n, seg):
        e = src[s:s + seg]
        for fc, bw in zip(rng.uniform([300, 900, 2200], [800, 2000, 3200]), (80, 120, 200)):
            r, th = math.exp(-math.pi * bw / SR), 2 * math.pi * fc / SR
            e = lfilter([1 - r], [1, -2 * r * math.cos(th), r * r], e)
        out[s:s + seg] = e * np.hanning(len(e))
    out += 0.01 * np.abs(out).max() * rng.standard_normal(n)
    return np.round(out / np.abs(out).max() * 12000)


def signals():
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    return {
        "white_noise": np.round(3000 * rng.standard_normal(3 * SR)),
        "tone_440": np.round(10000 * np.sin(2 * np.pi * 440 * t)),
        "two_tones": np.round(8000 * np.sin(2 * np.pi * 440 * t)
                              + 3000 * np.sin(2 * np.pi * 2500 * t + 1.0)),
        "speech_like": speech_like(3, 1),
        "dc_offset": np.round(0.3 * speech_like(3, 2) + 15000),
    }


SIGNALS = signals()
TONES = ("tone_440", "two_tones")


def _ours(x, dtype=torch.float32, **kw):
    return fbank(torch.from_numpy(np.asarray(x, np.float32)).to(dtype), **kw).double().numpy()


def _knf(x, setting):
    return knf_sherpa(x) if setting == "sherpa" else knf_fbank(x, **KALDI)


def test_project_defaults_are_sherpas():
    assert FBANK_DEFAULTS == SHERPA
    # Every entry point defaults to them: the signature defaults agree with FBANK_DEFAULTS.
    for func in (fbank, Fbank.__init__):
        params = inspect.signature(func).parameters
        assert {k: params[k].default for k in FBANK_DEFAULTS} == FBANK_DEFAULTS, func
    params = inspect.signature(num_frames).parameters
    assert params["snip_edges"].default is False and params["sample_rate"].default == 16000
    x = torch.from_numpy(SIGNALS["speech_like"][:SR].astype(np.float32))
    assert torch.equal(fbank(x), fbank(x, **FBANK_DEFAULTS))
    assert torch.equal(Fbank().eval()(x), fbank(x))
    # high_freq -400 is 7600 Hz: the top filter ends there (bin 243 of 256 is 7593.75 Hz).
    bank = mel_banks()
    assert bank[243, -1] > 0 and bank[244:].abs().sum() == 0
    assert torch.allclose(bank, mel_banks(high_freq=7600.0))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_matches_kaldi_native_fbank(name, setting):
    x = SIGNALS[name].astype(np.float32)
    kw = SETTINGS[setting]
    ref = _knf(x, setting)
    ours = _ours(x, **kw)
    assert ours.shape == ref.shape == ((298 if setting == "kaldi" else 300), 80)
    diff = np.abs(ours - ref)
    if name in TONES:
        # Bins within 60 dB of the frame maximum: float32 resolves them.
        near = ref > ref.max(axis=1, keepdims=True) - math.log(1e6)
        assert near.mean() > 0.15
        assert diff[near].max() <= 1e-3
        # The rest, down at the int16 quantization floor ~100 dB below the tone, is limited by
        # float32 in both implementations: knf is that far off the float64 truth itself.
        full = dict(FBANK_DEFAULTS, **kw)
        truth = reference_fbank(x, snip_edges=full["snip_edges"], high_freq=full["high_freq"])
        knf_err = np.abs(ref - truth).max()
        assert knf_err > 1e-3
        assert diff.max() <= 2 * knf_err + 1e-3
    else:
        assert diff.max() <= 1e-3


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_float64_path_is_exact(name, setting):
    x = SIGNALS[name].astype(np.float32)
    kw = dict(FBANK_DEFAULTS, **SETTINGS[setting])
    ref = reference_fbank(x, snip_edges=kw["snip_edges"], high_freq=kw["high_freq"])
    assert np.abs(_ours(x, torch.float64, **SETTINGS[setting]) - ref).max() <= 1e-6


def test_pure_float_tone_float64_exact():
    # 120 dB of dynamic range: only float64 gets it right.
    x = (10000 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)).astype(np.float32)
    assert np.abs(_ours(x, torch.float64, **KALDI)
                  - reference_fbank(x, **KALDI)).max() <= 1e-6
    assert np.abs(_ours(x, torch.float64)
                  - reference_fbank(x, snip_edges=False, high_freq=-400.0)).max() <= 1e-6


def test_large_dc_offset_removed():
    rng = np.random.default_rng(3)
    noise = np.round(200 * rng.standard_normal(SR))
    a, b = _ours(noise), _ours(noise + 20000)
    assert np.abs(a - b).max() <= 1e-3
    assert np.abs(b - knf_sherpa(noise + 20000)).max() <= 1e-3
    assert np.abs(_ours(noise + 20000, **KALDI) - knf_fbank(noise + 20000, **KALDI)).max() <= 1e-3


def test_options_match_knf():
    x = SIGNALS["speech_like"][:SR + 123].astype(np.float32)
    ref = knf_fbank(x, snip_edges=False, high_freq=0.0)
    ours = _ours(x, snip_edges=False, high_freq=0.0)
    assert ours.shape == ref.shape == (num_frames(len(x), snip_edges=False), 80) == (101, 80)
    assert np.abs(ours - ref).max() <= 1e-3
    ref = knf_fbank(x, use_energy=True, **KALDI)
    ours = _ours(x, use_energy=True, **KALDI)
    assert ours.shape == ref.shape == (99, 81)
    assert np.abs(ours - ref).max() <= 1e-3
    ref = knf_fbank(x, num_mel_bins=40, low_freq=60.0, high_freq=-400.0, snip_edges=True)
    ours = _ours(x, num_mel_bins=40, low_freq=60.0, high_freq=-400.0, snip_edges=True)
    assert ours.shape == (99, 40)
    assert np.abs(ours - ref).max() <= 1e-3
    ref = knf_fbank(x, num_mel_bins=64, high_freq=-1000.0, snip_edges=False, use_energy=True)
    ours = _ours(x, num_mel_bins=64, high_freq=-1000.0, use_energy=True)
    assert ours.shape == ref.shape == (101, 65)
    assert np.abs(ours - ref).max() <= 1e-3


@pytest.mark.parametrize("n", [0, 399, 400, 401, 559, 560, 16000, 16001, 48123])
def test_num_frames(n):
    x = np.round(1000 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    expected = knf_fbank(x, **KALDI).shape[0] if n >= 400 else 0
    assert num_frames(n, snip_edges=True) == expected
    assert _ours(x, **KALDI).shape == (expected, 80)
    assert int(num_frames(torch.tensor([n]), snip_edges=True)[0]) == expected
    expected = knf_sherpa(x).shape[0]
    assert num_frames(n) == expected == (n + 80) // 160
    assert _ours(x).shape == (expected, 80)
    assert int(num_frames(torch.tensor([n]))[0]) == expected


@pytest.mark.parametrize("n", [79, 80, 81, 150, 239, 240, 241, 399, 400, 401, 560, 1234])
def test_short_inputs_reflect_like_knf(n):
    # A frame (400) longer than the signal: the edges reflect several times, as in Kaldi.
    x = np.round(3000 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    ref = knf_sherpa(x)
    ours = _ours(x)
    assert ours.shape == ref.shape == (num_frames(n), 80) == ((n + 80) // 160, 80)
    if n < 80:
        return
    assert np.abs(ours - ref).max() <= 1e-3
    assert np.abs(_ours(x, torch.float64)
                  - reference_fbank(x, snip_edges=False, high_freq=-400.0)).max() <= 1e-6


def test_reflect_index_and_pad_edges():
    def kaldi(s, n):  # feature-window.cc ExtractWindow
        while s < 0 or s >= n:
            s = -s - 1 if s < 0 else 2 * n - 1 - s
        return s

    for n in (1, 2, 3, 80, 401):
        idx = torch.arange(-3 * n - 5, 4 * n + 7)
        assert reflect_index(idx, n).tolist() == [kaldi(int(s), n) for s in idx]
    assert reflect_index(torch.arange(-7, 12), 3).tolist() == [0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2,
                                                               1, 0, 0, 1, 2, 2, 1, 0]
    lens = torch.tensor([[3], [5]])
    assert torch.equal(reflect_index(torch.arange(-2, 7)[None], lens),
                       torch.tensor([[kaldi(s, 3) for s in range(-2, 7)],
                                     [kaldi(s, 5) for s in range(-2, 7)]]))
    for n in (80, 333, 16000, 16123):
        x = torch.from_numpy(SIGNALS["speech_like"][:n].astype(np.float32))
        padded = pad_edges(x)
        t = num_frames(n)
        assert len(padded) == (t - 1) * 160 + 400
        assert torch.equal(padded[120:120 + min(n, len(padded) - 120)],
                           x[:len(padded) - 120])  # frame 0 starts 120 samples before x[0]
        assert torch.allclose(fbank(padded, snip_edges=True), fbank(x), atol=1e-5, rtol=0)
    assert pad_edges(torch.ones(79)).shape == (0,)


def test_chunk_samples_gives_exactly_n_frames():
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 50, 199, 200, 201, 300):
        need = chunk_samples(n)
        assert need == n * 160  # 200 frames = 2 s, snip_edges=False
        assert num_frames(need) == n
        x = torch.from_numpy(np.round(1000 * rng.standard_normal(need)).astype(np.float32))
        assert fbank(x).shape == (n, 80)
        assert Fbank()(x[None]).shape == (1, n, 80)
        # Kaldi layout on request.
        assert chunk_samples(n, snip_edges=True) == (n - 1) * 160 + 400
        assert num_frames(chunk_samples(n, snip_edges=True), snip_edges=True) == n


def test_batched_equals_single():
    xs = [SIGNALS[k] for k in ("white_noise", "speech_like", "dc_offset")]
    batch = torch.from_numpy(np.stack(xs).astype(np.float32))
    for kw in ({}, KALDI):
        out = fbank(batch, **kw)
        assert out.shape == (3, 300 if not kw else 298, 80)
        for i in range(len(xs)):
            assert torch.allclose(out[i], fbank(batch[i], **kw), atol=1e-5, rtol=0)
    # Zero-padded rows, snip_edges=True: the first num_frames(len) frames equal the unpadded
    # utterance's.
    lens = [48000, 30001, 12345]
    padded = batch.clone()
    for i, n in enumerate(lens):
        padded[i, n:] = 0
    out = fbank(padded, **KALDI)
    for i, n in enumerate(lens):
        t = num_frames(n, snip_edges=True)
        assert torch.allclose(out[i, :t], fbank(batch[i, :n], **KALDI), atol=1e-5, rtol=0)


def test_batched_padded_snip_edges_false_needs_lengths():
    # snip_edges=False reflects each row at its own end: rows padded to one width equal the
    # unpadded rows when the true lengths are given, whatever the padding holds.
    lens = [48000, 30001, 12345, 16080, 80]
    rng = np.random.default_rng(7)
    padded = torch.from_numpy(np.round(5000 * rng.standard_normal((len(lens), 48000)))
                              .astype(np.float32))  # garbage padding
    singles = [fbank(torch.from_numpy(SIGNALS["speech_like"][:n].astype(np.float32)))
               for n in lens]
    for i, n in enumerate(lens):
        padded[i, :n] = torch.from_numpy(SIGNALS["speech_like"][:n].astype(np.float32))
    for out in (fbank(padded, lengths=lens), Fbank()(padded, lengths=torch.tensor(lens))):
        assert out.shape == (len(lens), 300, 80)
        for i, n in enumerate(lens):
            assert torch.allclose(out[i, :num_frames(n)], singles[i], atol=1e-5, rtol=0)
    # Without lengths only the frames that end inside the row agree; the last one or two
    # (25/10 ms) reach past len_i and see the padding (documented in fbank()).
    out = fbank(padded)
    assert torch.allclose(out[0], singles[0], atol=1e-5, rtol=0)  # the full-width row
    for i, n in list(enumerate(lens))[1:4]:
        inside = (n - 280) // 160 + 1  # frames t with t * 160 + 280 <= n
        t = num_frames(n)
        assert 1 <= t - inside <= 2
        assert torch.allclose(out[i, :inside], singles[i][:inside], atol=1e-5, rtol=0)
        assert (out[i, inside:t] - singles[i][inside:]).abs().max() > 0.1
    with pytest.raises(ValueError, match="lengths"):
        fbank(padded, lengths=lens[:2])


def test_module_dither_and_dtype():
    x = torch.from_numpy(SIGNALS["speech_like"].astype(np.float32))
    m = Fbank(dither=1.0)
    m.eval()
    assert torch.equal(m(x), fbank(x))  # no dither in eval mode
    m.train()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = m(x, generator=g1), m(x, generator=g2)
    assert torch.equal(a, b)
    d = (a - fbank(x)).abs()
    assert 0 < d.mean() < 0.05  # dither of 1 (int16 scale) barely moves speech
    silence = torch.zeros(SR)
    assert torch.all(fbank(silence) == math.log(torch.finfo(torch.float32).eps))
    lifted = fbank(silence, dither=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(lifted).all() and lifted.mean() > 0  # dither lifts digital silence
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the front end ignores autocast
        auto = m.eval()(x)
    assert auto.dtype == torch.float32 and torch.equal(auto, fbank(x))
    out64 = fbank(x.double())
    assert out64.dtype == torch.float64
    assert (out64 - fbank(x).double()).abs().max() < 1e-3
    assert m.mel_banks.shape == (256, 80) and mel_banks().shape == (256, 80)


def test_apply_cmn():
    feats = fbank(torch.from_numpy(np.stack([SIGNALS["speech_like"], SIGNALS["white_noise"]])
                                   .astype(np.float32)))
    normed = apply_cmn(feats)
    assert normed.abs().mean(dim=1).max() > 0.5
    assert normed.mean(dim=1).abs().max() < 1e-4
    assert torch.allclose(normed[1], apply_cmn(feats[1]), atol=1e-6)
    np_normed = apply_cmn(feats[0].numpy())
    assert np.allclose(np_normed, normed[0].numpy(), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_matches_cpu():
    x = torch.from_numpy(np.stack([SIGNALS["speech_like"], SIGNALS["white_noise"]])
                         .astype(np.float32))
    for kw in ({}, KALDI):
        m = Fbank(**kw)
        out = m.cuda()(x.cuda())
        assert out.device.type == "cuda"
        assert (out.cpu() - fbank(x, **kw)).abs().max() <= 1e-3
    lens = [48000, 20001]
    out = Fbank().cuda()(x.cuda(), lengths=lens)
    assert (out[1, :num_frames(20001)].cpu() - fbank(x[1, :20001])).abs().max() <= 1e-3


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_onnx_export_dynamic(tmp_path, setting):
    ort = pytest.importorskip("onnxruntime")
    kw = SETTINGS[setting]
    model = Fbank(**kw).eval()
    path = tmp_path / "fbank.onnx"
    example = torch.from_numpy(np.stack([SIGNALS["white_noise"][:SR]] * 2).astype(np.float32))
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=400)
    torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                      input_names=["waveform"], output_names=["feats"],
                      dynamic_shapes={"waveform": {0: batch, 1: samples}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, n in ((1, 12345), (3, 40000), (2, 401)):
        x = np.stack([SIGNALS["speech_like"][i * 100:i * 100 + n] for i in range(b)])
        x = x.astype(np.float32)
        got = sess.run(None, {"waveform": x})[0]
        want = model(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (b, num_frames(n, snip_edges=model.snip_edges), 80)
        # log-mel difference == relative difference of the mel energies; ORT's DFT and
        # torch's FFT round differently (measured: mean ~1e-6; max ~3e-4 on bins within 60 dB
        # of the frame maximum; up to ~1.5e-3 on a bin ~95 dB down, at the int16 floor, where
        # ORT is 1.8e-3 and torch 4e-4 off the float64 result: float32 resolution, as for
        # knf on tones above)
        diff = np.abs(got - want)
        near = want > want.max(axis=-1, keepdims=True) - math.log(1e6)
        assert near.mean() > 0.9
        assert diff[near].max() <= 1e-3 and diff.max() <= 5e-3 and diff.mean() <= 2e-5


def _feature_probe_onnx(path, feat_dim=80):
    """An ONNX 'speaker model' for sherpa-onnx that returns its input features, summarized:
    [first frame, second frame, last-but-one frame, last frame, mean, max, min, T]. No
    feature_normalize_type: sherpa passes its fbank through unchanged."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def const(name, value):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name + "_v", TensorProto.INT64, [], [value]))

    nodes = [const("i0", 0), const("i1", 1), const("im2", -2), const("im1", -1)]
    outs = []
    for i in ("i0", "i1", "im2", "im1"):
        nodes.append(helper.make_node("Gather", ["feats", i], ["g" + i], axis=1))
        outs.append("g" + i)
    for op in ("ReduceMean", "ReduceMax", "ReduceMin"):
        nodes.append(helper.make_node(op, ["feats"], [op], axes=[1], keepdims=0))
        outs.append(op)
    nodes += [helper.make_node("Shape", ["feats"], ["shape"]),
              helper.make_node("Constant", [], ["one"], value=helper.make_tensor(
                  "one_v", TensorProto.INT64, [1], [1])),
              helper.make_node("Gather", ["shape", "one"], ["t"], axis=0),
              helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
              helper.make_node("Unsqueeze", ["tf", "i0u"], ["tf2"]),
              helper.make_node("Concat", outs + ["tf2"], ["embs"], axis=1)]
    nodes.insert(0, helper.make_node("Constant", [], ["i0u"], value=helper.make_tensor(
        "i0u_v", TensorProto.INT64, [1], [0])))
    dim = 7 * feat_dim + 1
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("feats", TensorProto.FLOAT,
                                                        [1, "T", feat_dim])],
        [helper.make_tensor_value_info("embs", TensorProto.FLOAT, [1, dim])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"framework": "wespeaker", "output_dim": str(dim), "sample_rate": "16000",
                       "normalize_samples": "0", "language": "English"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return dim


def _summary(feats):
    f = np.asarray(feats, dtype=np.float64)
    return np.concatenate([f[0], f[1], f[-2], f[-1], f.mean(0), f.max(0), f.min(0),
                           [f.shape[0]]])


def test_features_equal_sherpa_onnx(tmp_path):
    """sherpa-onnx's SpeakerEmbeddingExtractor computes its own fbank from the wav; a probe
    model hands those features back: they are ours (FBANK_DEFAULTS), edge frames included."""
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    dim = _feature_probe_onnx(tmp_path / "probe.onnx")
    extractor = sherpa_onnx.SpeakerEmbeddingExtractor(
        sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(tmp_path / "probe.onnx"),
                                                    num_threads=1))
    assert extractor.dim == dim
    rng = np.random.default_rng(11)
    cases = [SIGNALS["speech_like"], SIGNALS["white_noise"][:12345],
             speech_like(1.37, 4)[:21911], np.round(2000 * rng.standard_normal(16080)),
             SIGNALS["dc_offset"][:SR]]
    for x in cases:
        samples = (np.asarray(x, dtype=np.float32) / 32768.0).astype(np.float32)
        stream = extractor.create_stream()
        stream.accept_waveform(sample_rate=SR, waveform=samples)
        stream.input_finished()
        theirs = np.array(extractor.compute(stream), dtype=np.float64)
        ours = fbank(torch.from_numpy(samples) * 32768.0).numpy()
        assert theirs[-1] == ours.shape[0] == num_frames(len(x))
        assert np.abs(theirs - _summary(ours)).max() <= 1e-3
        # Kaldi's settings are measurably different features (frames and values).
        kaldi = fbank(torch.from_numpy(samples) * 32768.0, **KALDI).numpy()
        assert kaldi.shape[0] == ours.shape[0] - 2
        assert np.abs(theirs[:-1] - _summary(kaldi)[:-1]).max() > 0.5
