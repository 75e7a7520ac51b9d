import logging

import numpy as np
import pytest
import soundfile as sf

from wespeaker_mfcon.utils.audio import audio_info, load_wav, resample
from wespeaker_mfcon.utils.errors import UserError


def _tone(sr, seconds, freq=440.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_reads_int16_wav(tmp_path):
    x = np.round(_tone(16000, 0.5) * 32767) / 32768
    p = tmp_path / "a.wav"
    sf.write(p, x, 16000, subtype="PCM_16")
    y = load_wav(str(p), 16000)
    assert y.dtype == np.float32 and y.shape == (8000,)
    assert np.abs(y - x).max() < 1e-6  # int16 values / 32768, exactly
    assert np.allclose(np.round(y * 32768), y * 32768)


def test_resample_warns_and_has_right_length(tmp_path, caplog):
    p = tmp_path / "a8k.wav"
    sf.write(p, _tone(8000, 1.0, freq=500), 8000, subtype="PCM_16")
    with caplog.at_level(logging.WARNING):
        y = load_wav(str(p), 16000)
    assert any("a8k.wav" in r.getMessage() and "8000" in r.getMessage() for r in caplog.records)
    assert y.shape == (16000,) and y.dtype == np.float32
    # Still a 500 Hz tone at 16 kHz: spectral peak at 500 Hz.
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / len(y) - 500) <= 1
    p2 = tmp_path / "a441.wav"
    sf.write(p2, _tone(44100, 0.5), 44100, subtype="PCM_16")
    assert load_wav(str(p2), 16000).shape == (8000,)


def test_multichannel_takes_first_with_warning(tmp_path, caplog):
    left, right = _tone(16000, 0.25, 300), _tone(16000, 0.25, 1000, amp=0.1)
    p = tmp_path / "stereo.wav"
    sf.write(p, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        y = load_wav(str(p), 16000)
    assert any("stereo.wav" in r.getMessage() and "channel" in r.getMessage()
               for r in caplog.records)
    assert np.array_equal(y, left)


def test_resample_rates_and_round_trip():
    x = _tone(16000, 1.0, freq=300)
    assert resample(x, 16000, 16000) is x
    for target in (8000, 22050, 44100):
        y = resample(x, 16000, target)
        assert y.dtype == np.float32 and len(y) == -(-len(x) * target // 16000)
        spec = np.abs(np.fft.rfft(y))
        assert abs(np.argmax(spec) * target / len(y) - 300) <= 1
    # down and up again: a tone well below the new Nyquist comes back (edges aside)
    back = resample(resample(x, 16000, 8000), 8000, 16000)
    assert np.abs(back - x)[500:-500].max() < 1e-2


def test_segment_read_and_warn_flag(tmp_path, caplog):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((8000, 2))).astype(np.float32)
    p = tmp_path / "seg8k.wav"
    sf.write(p, x, 8000, subtype="FLOAT")
    assert audio_info(str(p)) == (8000, 8000, 2)
    with caplog.at_level(logging.WARNING):
        seg = load_wav(str(p), 16000, start=1000, stop=3000, warn=False)
    assert not caplog.records
    # channel 0 of the native frames 1000:3000, then the one resampler
    assert np.array_equal(seg, resample(x[1000:3000, 0], 8000, 16000)) and len(seg) == 4000
    assert np.array_equal(load_wav(str(p), 8000, start=7000), x[7000:, 0])
    with pytest.raises(UserError, match="seg8k.wav.*no samples in frames 9000"):
        load_wav(str(p), 8000, start=9000)


def _bad(tmp_path, name, content, why=""):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(UserError, match=f"{name}.*{why}"):
        load_wav(str(p), 16000)


def test_bad_files_name_the_file(tmp_path):
    _bad(tmp_path, "empty.wav", b"")
    _bad(tmp_path, "garbage.wav", np.random.default_rng(0).bytes(3000))
    good = tmp_path / "good.wav"
    sf.write(good, _tone(16000, 1.0), 16000, subtype="PCM_16")
    data = good.read_bytes()
    _bad(tmp_path, "truncated.wav", data[:len(data) // 2], "truncated")
    _bad(tmp_path, "header_only.wav", data[:30])
    zero = tmp_path / "nosamples.wav"
    sf.write(zero, np.zeros(0, np.float32), 16000)
    with pytest.raises(UserError, match="nosamples.wav.*no samples"):
        load_wav(str(zero), 16000)
    with pytest.raises(UserError, match="missing.wav"):
        load_wav(str(tmp_path / "missing.wav"), 16000)


def test_nan_inf_rejected(tmp_path):
    x = _tone(16000, 0.1)
    x[100] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(UserError, match="nan.wav.*NaN"):
        load_wav(str(p), 16000)
