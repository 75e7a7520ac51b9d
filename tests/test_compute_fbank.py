import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from wespeaker_mfcon.bin import compute_fbank
from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS, fbank, num_frames
from wespeaker_mfcon.utils.audio import load_wav
from wespeaker_mfcon.utils.entrypoint import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_FBANK = os.path.join(ROOT, "tools", "make_fbank.sh")


def _make_data(root, n=5, sr=16000):
    """A data dir with n utterances of 0.6 .. 2.2 s (one at 8 kHz); keys not in sorted order."""
    rng = np.random.default_rng(0)
    os.makedirs(root / "wav", exist_ok=True)
    lines = []
    for i in range(n):
        rate = 8000 if i == 1 else sr
        secs = 0.6 + 0.4 * i
        t = np.arange(int(rate * secs)) / rate
        x = 0.2 * np.sin(2 * np.pi * (150 + 50 * i) * t) + 0.05 * rng.standard_normal(len(t))
        path = root / "wav" / f"u{i}.wav"
        sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
        lines.append(f"spk{i % 2}-utt{n - i} {path}\n")
    (root / "wav.scp").write_text("".join(lines))
    return {line.split()[0]: line.split()[1] for line in lines}


def _expected(path):
    """The project's front end (sherpa-onnx's: high_freq -400, snip_edges=False)."""
    return fbank(torch.from_numpy(load_wav(path, 16000)) * 32768.0, **FBANK_DEFAULTS).numpy()


def test_compute_fbank_matches_fbank(tmp_path):
    wavs = _make_data(tmp_path)
    out = tmp_path / "out"
    # Small batches and chunks: exercises grouping and the split of long utterances.
    compute_fbank.main(["--wav_scp", str(tmp_path / "wav.scp"), "--ark", str(out / "f.ark"),
                        "--scp", str(out / "f.scp"), "--utt2num_frames", str(out / "u2nf"),
                        "--batch_size", "2", "--max_chunk_frames", "50", "--no_progress"])
    assert sorted(os.listdir(out)) == ["f.ark", "f.scp", "u2nf"]  # no temp files left
    feats = dict(kaldiio.load_scp(str(out / "f.scp")))
    u2nf = dict(line.split() for line in open(out / "u2nf"))
    assert list(feats) == list(wavs)  # wav.scp order
    for utt, path in wavs.items():
        got, want = feats[utt], _expected(path)
        assert got.dtype == np.float32
        n = len(load_wav(path, 16000))
        assert got.shape == want.shape == (num_frames(n), 80) == ((n + 80) // 160, 80)
        assert int(u2nf[utt]) == got.shape[0]
        assert np.abs(got - want).max() <= 1e-4
    assert feats["spk1-utt4"].shape[0] == 100  # the 8 kHz file, resampled: 1.0 s
    assert all(line.split()[1].startswith(str(out / "f.ark") + ":")
               for line in open(out / "f.scp"))


@pytest.mark.parametrize("chunk,batch", [(1, 3), (7, 2), (1000, 4), (100000, 1)])
def test_compute_fbank_odd_lengths_exact(tmp_path, chunk, batch):
    """Edges reflected per utterance (snip_edges=False), cut into pieces, batched: the same
    features as one fbank call per utterance, for lengths that are not whole frames, down to
    one frame (80 samples), and with pieces of a single frame."""
    rng = np.random.default_rng(3)
    lengths = [80, 239, 401, 12345, 16080, 16079, 33333]
    os.makedirs(tmp_path / "wav")
    lines = []
    for i, n in enumerate(lengths):
        path = tmp_path / "wav" / f"x{i}.wav"
        x = 0.1 * rng.standard_normal(n) + 0.3 * np.sin(np.arange(n) * 0.05 * (i + 1))
        sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
        lines.append(f"x{i} {path}\n")
    (tmp_path / "wav.scp").write_text("".join(lines))
    out = tmp_path / "out"
    compute_fbank.main(["--wav_scp", str(tmp_path / "wav.scp"), "--ark", str(out / "f.ark"),
                        "--scp", str(out / "f.scp"), "--utt2num_frames", str(out / "u2nf"),
                        "--batch_size", str(batch), "--max_chunk_frames", str(chunk),
                        "--no_progress"])
    feats = dict(kaldiio.load_scp(str(out / "f.scp")))
    for i, n in enumerate(lengths):
        got, want = feats[f"x{i}"], _expected(str(tmp_path / "wav" / f"x{i}.wav"))
        assert got.shape == want.shape == ((n + 80) // 160, 80)
        assert np.abs(got - want).max() <= 1e-4


def test_too_short_file_is_an_error(tmp_path, capsys):
    os.makedirs(tmp_path / "wav")
    sf.write(tmp_path / "wav" / "a.wav", np.zeros(79, np.float32), 16000, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(f"a {tmp_path}/wav/a.wav\n")
    out = tmp_path / "out"
    err = _run_cli(["--wav_scp", str(tmp_path / "wav.scp"), "--ark", str(out / "f.ark"),
                    "--scp", str(out / "f.scp"), "--utt2num_frames", str(out / "u2nf"),
                    "--no_progress"], capsys)
    assert len(err) == 1 and "wav.scp:1" in err[0] and "too short" in err[0]
    assert not (out / "f.scp").exists()


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(compute_fbank.main, argv)
    assert e.value.code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return err


def test_missing_file_one_error_line(tmp_path, capsys):
    _make_data(tmp_path, n=3)
    with open(tmp_path / "wav.scp", "a") as f:
        f.write(f"bad {tmp_path}/nope.wav\n")
    out = tmp_path / "out"
    err = _run_cli(["--wav_scp", str(tmp_path / "wav.scp"), "--ark", str(out / "f.ark"),
                    "--scp", str(out / "f.scp"), "--utt2num_frames", str(out / "u2nf")], capsys)
    assert len(err) == 1 and err[0].startswith("error:")
    assert "wav.scp:4" in err[0] and f"{tmp_path}/nope.wav" in err[0]
    assert not (out / "f.scp").exists()


def test_failure_midway_leaves_nothing_complete(tmp_path, capsys):
    _make_data(tmp_path, n=4)
    out = tmp_path / "out"
    argv = ["--wav_scp", str(tmp_path / "wav.scp"), "--ark", str(out / "f.ark"),
            "--scp", str(out / "f.scp"), "--utt2num_frames", str(out / "u2nf"),
            "--batch_size", "1", "--max_chunk_frames", "20", "--no_progress"]
    compute_fbank.main(argv)
    assert (out / "f.scp").exists()
    # Second run: the third file is now garbage; it fails after writing two utterances.
    (tmp_path / "wav" / "u2.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    err = _run_cli(argv, capsys)
    assert len(err) == 1 and "u2.wav" in err[0] and "wav.scp:3" in err[0]
    assert os.listdir(out) == []  # old outputs removed, temp files cleaned up


def _make_fbank(data, nj):
    return subprocess.run(["bash", MAKE_FBANK, "--nj", str(nj), "--python", sys.executable,
                           str(data)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _read_feats(data):
    return {k: v for k, v in kaldiio.load_scp(str(data / "feats.scp")).items()}


def test_make_fbank_parallel_equals_serial(tmp_path):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    wavs = _make_data(d1)
    _make_data(d2)
    r1, r2 = _make_fbank(d1, 1), _make_fbank(d2, 2)
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    f1, f2 = _read_feats(d1), _read_feats(d2)
    keys = [line.split()[0] for line in open(d2 / "feats.scp")]
    assert keys == sorted(wavs) == list(f1)
    assert {line.split()[1].split("/fbank/")[1].split(":")[0] for line in open(d2 / "feats.scp")} \
        == {"raw_fbank.1.ark", "raw_fbank.2.ark"}
    for k in keys:
        assert f1[k].shape == f2[k].shape
        assert np.abs(f1[k] - f2[k]).max() <= 1e-5
        assert np.abs(f1[k] - _expected(wavs[k])).max() <= 1e-4
    assert open(d1 / "utt2num_frames").read() == open(d2 / "utt2num_frames").read()
    assert [line.split()[0] for line in open(d2 / "utt2num_frames")] == keys
    assert os.path.exists(d2 / "log" / "fbank.2.log")
    # Re-run: complete, so skipped.
    r = _make_fbank(d2, 2)
    assert r.returncode == 0 and "skipping" in r.stdout

    # A missing file: the job fails, the message names the file, no feats.scp is left.
    with open(d2 / "wav.scp", "a") as f:
        f.write(f"zz-bad {tmp_path}/missing.wav\n")
    r = _make_fbank(d2, 2)
    assert r.returncode != 0
    assert "job 2 of 2 failed" in r.stderr and "fbank.2.log" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.strip().startswith("error:")]
    assert len(errors) == 1 and f"{tmp_path}/missing.wav" in errors[0]
    assert not (d2 / "feats.scp").exists() and not (d2 / "utt2num_frames").exists()
