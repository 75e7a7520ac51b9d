"""Stage 0 on real VoxCeleb2-like .m4a (AAC) trees: conversion, resume, bad files.

The .m4a files are made from small generated wavs (conftest.write_tree) with the same ffmpeg
that stage 0 uses (PATH, else the imageio-ffmpeg package from requirements.txt), so the test
runs wherever the recipe can. The converted wavs are checked against their sources: rate,
channels, duration and waveform.

Duration tolerance: AAC codes 1024-sample frames and the encoder adds priming samples in front
and padding behind. ffmpeg's mp4 muxer writes an edit list that tells the decoder to trim both,
and here the lengths then agree to the sample, but a decoder or muxer that honours it only in
part leaves up to a frame of silence, so 0.05 s is allowed (less than one 1024-sample frame at
16 kHz, 64 ms, and far below anything utt2dur is used for).
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import python_env, write_tree, write_vox_trials
from wespeaker_mfcon.dataset.voxceleb import find_ffmpeg, prepare_sets
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp, read_table

FFMPEG = find_ffmpeg()
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg on PATH and the imageio-ffmpeg "
                                                       "package is not installed")
TOLERANCE_S = 0.05


def encode_m4a(wav, m4a, extra=()):
    """wav -> AAC in an .m4a (mp4) container, as VoxCeleb2 ships it."""
    os.makedirs(os.path.dirname(m4a), exist_ok=True)
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", wav, *extra,
                    "-c:a", "aac", "-b:a", "48k", m4a], check=True)


@pytest.fixture(scope="module")
def m4a_tree(tmp_path_factory):
    """(m4a root, wav root, {utt: source seconds}, trials): 24 files of 0.4-1.0 s; the first
    is encoded at 44.1 kHz stereo, so conversion must resample and downmix."""
    base = tmp_path_factory.mktemp("vox2")
    wav_root, m4a_root = str(base / "wav"), str(base / "aac")
    rels = write_tree(wav_root, speakers=3, videos=2, utts=4, seconds=1.0)
    seconds = {}
    for i, rel in enumerate(rels):
        wav = os.path.join(wav_root, rel)
        n = 16000 * (4 + i % 7) // 10  # 0.4 ... 1.0 s
        sf.write(wav, sf.read(wav)[0][:n], 16000, subtype="PCM_16")
        extra = ("-ar", "44100", "-ac", "2") if i == 0 else ()
        encode_m4a(wav, os.path.join(m4a_root, rel[:-4] + ".m4a"), extra)
        seconds[rel[:-4]] = n / 16000
    trials = str(base / "trials.txt")
    write_vox_trials(trials, [r[:-4] + ".m4a" for r in rels[:6]])
    return m4a_root, wav_root, seconds, trials


def prepare(m4a_root, data, trials=None, **kwargs):
    sets = [(m4a_root, str(data / "train"), ())]
    if trials:
        sets.append((m4a_root, str(data / "test"), [trials]))
    prepare_sets(sets, **kwargs)
    return read_scp(data / "train" / "wav.scp")


def tables(set_dir):
    return {p.relative_to(set_dir): p.read_bytes() for p in set_dir.rglob("*") if p.is_file()}


def check_converted(wav_scp, m4a_tree, data):
    _, wav_root, seconds, _ = m4a_tree
    utt2dur = read_scp(data / "train" / "utt2dur")
    assert sorted(wav_scp) == sorted(seconds)
    for utt, path in wav_scp.items():
        assert path == str(data / "wav_m4a" / "train" / (utt + ".wav"))
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.frames / 16000 - seconds[utt]) < TOLERANCE_S, utt
        assert float(utt2dur[utt]) == pytest.approx(info.frames / 16000, abs=1e-3)
        ref, got = sf.read(os.path.join(wav_root, utt + ".wav"))[0], sf.read(path)[0]
        n = min(len(ref), len(got))
        assert np.corrcoef(ref[:n], got[:n])[0, 1] > 0.9, utt  # aligned, same signal


def test_m4a_tree_converts_to_16k_mono_wavs(m4a_tree, tmp_path, caplog):
    m4a_root, _, seconds, trials = m4a_tree
    caplog.set_level(logging.INFO)
    wav_scp = prepare(m4a_root, tmp_path / "data", trials, nj=2)
    check_converted(wav_scp, m4a_tree, tmp_path / "data")
    assert f"{len(seconds)} .m4a files: {len(seconds)} converted, 0 reused" in caplog.text
    kaldi = (tmp_path / "data" / "test" / "trials" / "trials.kaldi").read_text().split("\n")
    assert len(kaldi) == 16 and kaldi[0].startswith("id10000/vid0/00001 id10000/vid0/00002 ")


def test_second_run_reuses_every_wav_whatever_nj(m4a_tree, tmp_path, caplog):
    m4a_root, _, seconds, _ = m4a_tree
    data = tmp_path / "data"
    wav_scp = prepare(m4a_root, data, nj=2)
    first = tables(data / "train")
    mtimes = {p: os.stat(p).st_mtime_ns for p in wav_scp.values()}
    caplog.set_level(logging.INFO)
    prepare(m4a_root, data, nj=1)
    assert f"{len(seconds)} .m4a files: 0 converted, {len(seconds)} reused" in caplog.text
    assert {p: os.stat(p).st_mtime_ns for p in wav_scp.values()} == mtimes
    assert tables(data / "train") == first


def test_leftovers_of_a_killed_run_are_not_taken_as_complete(m4a_tree, tmp_path, caplog):
    m4a_root, _, seconds, _ = m4a_tree
    data = tmp_path / "data"
    wav_scp = prepare(m4a_root, data)
    partial = wav_scp["id10001/vid1/00003"]  # killed mid-write: atomic_path's temporary
    leftover = os.path.join(os.path.dirname(partial), ".tmp_00003.wav.k1ll3d.wav")
    shutil.move(partial, leftover)
    with open(leftover, "r+b") as f:
        f.truncate(3000)
    foreign = wav_scp["id10002/vid0/00001"]  # a half file at the final name (not ours)
    with open(foreign, "r+b") as f:
        f.truncate(3000)
    caplog.set_level(logging.INFO)
    wav_scp = prepare(m4a_root, data)
    assert f"{len(seconds)} .m4a files: 2 converted, {len(seconds) - 2} reused" in caplog.text
    assert not os.path.exists(leftover)
    check_converted(wav_scp, m4a_tree, data)


def test_a_killed_conversion_restarts_where_it_stopped(m4a_tree, tmp_path, caplog):
    m4a_root, _, seconds, trials = m4a_tree
    data = tmp_path / "data"
    wav_dir = data / "wav_m4a" / "train"
    proc = subprocess.Popen([sys.executable, "-m", "wespeaker_mfcon.bin.prepare_data",
                             "--train_root", m4a_root, "--test_root", m4a_root, "--trials",
                             trials, "--data", str(data), "--nj", "2"],
                            env=python_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(wav_dir.rglob("0*.wav")) and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its workers and their ffmpeg
    proc.wait()
    done = len(list(wav_dir.rglob("0*.wav")))
    assert 0 < done < len(seconds) and not (data / "train").exists()
    caplog.set_level(logging.INFO)
    wav_scp = prepare(m4a_root, data, nj=2)
    converted = len(seconds) - done
    assert f"{len(seconds)} .m4a files: {converted} converted, {done} reused" in caplog.text
    check_converted(wav_scp, m4a_tree, data)
    assert not list(wav_dir.rglob(".tmp_*"))


@pytest.fixture
def tree_with_bad_m4a(m4a_tree, tmp_path):
    root = tmp_path / "aac"
    shutil.copytree(m4a_tree[0], root)
    bad = root / "id10001" / "vid0" / "00002.m4a"
    bad.write_bytes(b"\0\0\0\x20ftypM4A " + os.urandom(2000))
    return root, bad


def test_a_bad_m4a_stops_the_stage_with_the_list(tree_with_bad_m4a, tmp_path):
    root, bad = tree_with_bad_m4a
    data = tmp_path / "data"
    with pytest.raises(UserError, match="ffmpeg failed") as err:
        prepare(str(root), data, nj=2)
    assert str(err.value).startswith(f"{bad}: ") and "\n" not in str(err.value)
    assert "bad audio files: 1 of 24" in str(err.value) and not (data / "train").exists()
    assert [u for u, _ in read_table(data / "train.bad_audio.txt")] == ["id10001/vid0/00002"]
    assert not list((data / "wav_m4a").rglob(".tmp_*"))


def test_a_bad_m4a_is_skipped_on_request(tree_with_bad_m4a, tmp_path, caplog):
    root, bad = tree_with_bad_m4a
    data = tmp_path / "data"
    wav_scp = prepare(str(root), data, nj=2, on_bad_audio="skip")
    assert len(wav_scp) == 23 and "id10001/vid0/00002" not in wav_scp
    rows = read_table(data / "train" / "bad_audio.txt", min_fields=3)
    assert rows[0][0] == "id10001/vid0/00002" and rows[0][1][:2] == [str(bad), "ffmpeg"]
    assert "skipped 1 of 24" in caplog.text
