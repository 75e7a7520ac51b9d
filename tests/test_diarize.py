"""Diarization (apps/vad.py, apps/clustering.py, apps/diarize.py, scoring/rttm.py,
scoring/diarization.py): the streamed VAD equals silero's own, DER/JER equal hand-computed
values, the speaker count is obeyed, empty, silent and one-speaker input, RTTM format, the CLI
and the wav.scp entry point."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import python_env
from train_utils import TINY_MODEL
from wespeaker_mfcon.apps.clustering import cluster, cosine_threshold
from wespeaker_mfcon.apps.diarize import (diarize, diarize_rttm, diarize_scp, resegment,
                                          window_frames)
from wespeaker_mfcon.apps.embedder import StatsEmbedder
from wespeaker_mfcon.apps.vad import SileroVad, _silero_file
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.scoring.calibration import Calibration
from wespeaker_mfcon.scoring.diarization import score_rttm, score_turns
from wespeaker_mfcon.scoring.rttm import read_rttm, rttm_lines
from wespeaker_mfcon.synth.conversations import ConversationParams, synth_conversation
from wespeaker_mfcon.synth.mini_corpus import synth_utterance
from wespeaker_mfcon.utils.errors import UserError

SR = 16000
CAL = Calibration(["score"], [20.0], -10.0, {"score": "raw_cosine"})   # llr 0 at cosine 0.5


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A 3-speaker conversation (about 35 s), one speaker alone (about 25 s), silence, and
    an empty file."""
    root = tmp_path_factory.mktemp("rec")
    audio, _ = synth_conversation(ConversationParams(min_dur=30, max_dur=40, min_spk=3,
                                                     max_spk=3), 0)
    sf.write(root / "three.wav", audio, SR, subtype="PCM_16")
    one = np.concatenate([synth_utterance(777, "test", 3, 0, u, min_dur=4.0, max_dur=6.0)
                          for u in range(5)])
    sf.write(root / "one.wav", one, SR, subtype="PCM_16")
    sf.write(root / "silent.wav", np.zeros(5 * SR), SR, subtype="PCM_16")
    sf.write(root / "empty.wav", np.zeros(0), SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """An experiment dir: a randomly initialized tiny MFA-Conformer and a calibration."""
    root = tmp_path_factory.mktemp("exp")
    model_args = dict(TINY_MODEL, input_dim=80)
    (root / "models").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(
        {"model": "mfa_conformer", "model_args": model_args, "mfcon_args": {"enable": True}}))
    torch.manual_seed(0)
    model = build_model("mfa_conformer", model_args)
    torch.save({"model": model.state_dict()}, root / "models" / "avg_model.pt")
    (root / "calibration.json").write_text(json.dumps(CAL.to_dict()))
    return root


# ------------------------------------------------------------------------------------ RTTM
def test_rttm_lines_and_reader(tmp_path):
    lines = rttm_lines("rec1", [(0.5, 2.25, "spk1"), (2.25, 2.25, "spk2"), (3.0, 4.1234, "x")])
    assert lines == ["SPEAKER rec1 1 0.500 1.750 <NA> <NA> spk1 <NA> <NA>",
                     "SPEAKER rec1 1 3.000 1.123 <NA> <NA> x <NA> <NA>"]
    path = tmp_path / "a.rttm"
    path.write_text("\n".join(lines) + "\nSPKR-INFO rec1 1 <NA> <NA> <NA> unknown x <NA>\n")
    assert read_rttm(str(path)) == {"rec1": [(0.5, 2.25, "spk1"), (3.0, 4.123, "x")]}
    path.write_text("SPEAKER rec1 1 0.5 oops <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(UserError, match=r"a.rttm:1: not an RTTM SPEAKER line"):
        read_rttm(str(path))
    with pytest.raises(UserError, match="white space"):
        rttm_lines("a b", [])


def test_der_and_jer_equal_hand_computed_values(tmp_path):
    ref = {"r": [(0.0, 10.0, "A"), (8.0, 20.0, "B")]}            # 2 s of overlap
    hyp = {"r": [(0.0, 10.0, "x"), (10.0, 20.0, "y")]}
    s = score_turns(ref, hyp)
    # no collar: the overlap [8, 10] misses B: 2 s of 22 s of reference speech
    assert s["collar_0"]["der"] == pytest.approx(2 / 22)
    assert s["collar_0"]["miss"] == pytest.approx(2 / 22) and s["collar_0"]["confusion"] == 0
    # JER: A perfect, B 1 - 10/12; mean over the two speakers
    assert s["collar_0"]["jer"] == pytest.approx((0 + 2 / 12) / 2)
    # +-0.25 s collar (md-eval's -c 0.25) around the reference boundaries 0, 10, 20: 1 s
    # less to score, 0.25 s less of the confusion [10, 12]
    (tmp_path / "ref.rttm").write_text("\n".join(rttm_lines("r", [(0, 10, "A"), (10, 20, "B")])))
    (tmp_path / "hyp.rttm").write_text("\n".join(rttm_lines("r", [(0, 12, "x"), (12, 20, "y")])))
    s = score_rttm(str(tmp_path / "ref.rttm"), str(tmp_path / "hyp.rttm"))
    assert s["collar_0"]["der"] == pytest.approx(2 / 20)
    assert s["collar_0.25"]["confusion"] == pytest.approx(1.75 / 19.0)
    assert s["collar_0.25"]["files"]["r"]["der"] == pytest.approx(1.75 / 19.0)
    assert score_turns(ref, {})["collar_0"]["miss"] == pytest.approx(1.0)   # no hypothesis
    # one hypothesis speaker over [1, 25]: 1 s + the overlap missed, [20, 25] false alarm,
    # [1, 8] of A confused (the speaker maps to B, who has more of it)
    s = score_turns(ref, {"r": [(1.0, 25.0, "x")]})["collar_0"]
    assert (s["miss"], s["false_alarm"], s["confusion"]) == pytest.approx((3 / 22, 5 / 22, 7 / 22))


# -------------------------------------------------------------------- windows, resegmenting
def test_windows_cover_each_segment_and_the_last_ends_with_it():
    assert window_frames(500, 150, 75) == [(0, 150), (75, 225), (150, 300), (225, 375),
                                           (300, 450), (350, 500)]
    assert window_frames(150, 150, 75) == [(0, 150)] and window_frames(40, 150, 75) == [(0, 40)]
    assert window_frames(0, 150, 75) == []


def test_resegment_cuts_overlaps_in_the_middle_and_joins_a_speaker():
    index = np.array([0, 0, 0, 0, 1])
    spans = np.array([[0.0, 1.5], [0.75, 2.25], [1.5, 3.0], [2.0, 3.5], [5.0, 6.0]])
    labels = np.array([0, 0, 1, 1, 1])
    assert resegment(index, spans, labels) == [(0.0, 1.875, 0), (1.875, 3.5, 1),
                                               (5.0, 6.0, 1)]


# --------------------------------------------------------------------------------- VAD
def test_streamed_vad_equals_silero_on_the_whole_file():
    from silero_vad.sequence_vad import SileroVADSequence
    x = np.concatenate([np.zeros(SR), synth_utterance(777, "test", 0, 0, 0), np.zeros(7777),
                        synth_utterance(777, "test", 1, 0, 0)]).astype(np.float32)
    reference = SileroVADSequence(_silero_file("silero_vad_16k_sequence.onnx")).audio_forward(x)
    vad = SileroVad(max_frames=7)
    for size in (1000, 5000, len(x)):
        probs = vad.probabilities(x[i:i + size] for i in range(0, len(x), size))
        assert probs.shape == reference.shape and np.array_equal(probs, reference)


def test_vad_finds_the_speech(recordings, tmp_path):
    x = np.concatenate([np.zeros(2 * SR), synth_utterance(777, "test", 0, 0, 0), np.zeros(SR)])
    sf.write(tmp_path / "x.wav", x, SR, subtype="PCM_16")
    segments = SileroVad().segments(str(tmp_path / "x.wav"))
    assert segments[0][0] == pytest.approx(2.0, abs=0.15)
    assert segments[-1][1] == pytest.approx(len(x) / SR - 1.0, abs=0.2)
    assert SileroVad().segments(str(recordings / "silent.wav")) == []


# ---------------------------------------------------------------------------- clustering
def _blobs(k, n=120, dim=24, spread=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, dim))
    truth = rng.integers(k, size=n)
    return centers[truth] + spread * rng.standard_normal((n, dim)), truth


def _pure(labels, truth):
    """Every true cluster maps to one label."""
    return all(len(set(labels[truth == t])) == 1 for t in set(truth))


def test_cluster_count_automatic_calibrated_and_given():
    x, truth = _blobs(3)
    assert cosine_threshold(CAL) == pytest.approx(0.5)
    assert cosine_threshold(CAL, p_same=0.1) == pytest.approx((10 + np.log(9)) / 20)
    for calibration in (None, CAL):
        labels = cluster(x, calibration=calibration)
        assert len(set(labels)) == 3 and _pure(labels, truth)
        assert list(labels[:1]) == [0]                       # numbered in order of appearance
        for n in (1, 2, 4, 5):
            assert len(set(cluster(x, num_speakers=n, calibration=calibration))) == n
    one, _ = _blobs(1)
    assert len(set(cluster(one, calibration=CAL))) == 1    # (spectral's: one.wav below)


def test_cluster_on_kmeans_centroids_above_max_points():
    x, truth = _blobs(4, n=600)
    labels = cluster(x, calibration=CAL, max_points=100)
    assert len(set(labels)) == 4 and _pure(labels, truth)
    assert len(set(cluster(x, num_speakers=6, max_points=100))) == 6


def test_cluster_with_fewer_windows_than_speakers(caplog):
    x, _ = _blobs(2, n=2)
    with caplog.at_level(logging.WARNING):
        assert sorted(cluster(x, num_speakers=3)) == [0, 1]
    assert "cannot hold 3 speakers" in caplog.text
    assert list(cluster(np.zeros((0, 4)))) == []
    with pytest.raises(UserError, match="num_speakers must be >= 1"):
        cluster(x, num_speakers=0)


# ----------------------------------------------------------------------- whole recordings
def test_num_speakers_is_obeyed_on_a_conversation(recordings):
    path = str(recordings / "three.wav")
    for n in (2, 3, 4):
        turns = diarize(StatsEmbedder(), path, num_speakers=n)
        assert {k for *_, k in turns} == set(range(n))
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(turns, turns[1:]))   # one at a time
        assert all(e > s for s, e, _ in turns)


def test_one_speaker_silence_and_empty_input(recordings, caplog):
    turns = diarize(StatsEmbedder(), str(recordings / "one.wav"))
    assert {k for *_, k in turns} == {0} and sum(e - s for s, e, _ in turns) > 15.0
    with caplog.at_level(logging.WARNING):
        assert diarize_rttm(StatsEmbedder(), str(recordings / "silent.wav")) == []
    assert "silent.wav: no speech found" in caplog.text
    with pytest.raises(UserError, match="empty.wav: audio file holds no samples"):
        diarize(StatsEmbedder(), str(recordings / "empty.wav"))


def test_cli_writes_rttm_and_obeys_the_count(exp, recordings, tmp_path):
    cmd = [sys.executable, "-m", "wespeaker_mfcon.apps.cli", "diarize", "--model", str(exp)]
    out = tmp_path / "out.rttm"
    proc = subprocess.run(cmd + [str(recordings / "three.wav"), str(recordings / "silent.wav"),
                                 "--num_speakers", "3", "--rttm", str(out)],
                          capture_output=True, text=True, env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    turns = read_rttm(str(out))
    assert list(turns) == ["three"] and {k for *_, k in turns["three"]} == {"spk1", "spk2",
                                                                              "spk3"}
    stdout = subprocess.run(cmd + [str(recordings / "three.wav"), "--num_speakers", "3"],
                            capture_output=True, text=True, env=python_env())
    assert stdout.stdout == out.read_text()
    empty = subprocess.run(cmd + [str(recordings / "empty.wav")], capture_output=True,
                           text=True, env=python_env())
    assert empty.returncode == 1 and empty.stderr.strip().splitlines()[-1] == (
        f"error: {recordings / 'empty.wav'}: audio file holds no samples")


def test_wav_scp_entry_point_with_counts_per_recording(exp, recordings, tmp_path):
    (tmp_path / "wav.scp").write_text(f"a {recordings / 'three.wav'}\n"
                                      f"b {recordings / 'one.wav'}\n")
    (tmp_path / "reco2num_spk").write_text("a 2\nb 1\n")
    out = tmp_path / "all.rttm"
    diarize_scp(str(exp / "models" / "avg_model.pt"), str(tmp_path / "wav.scp"), str(out), nj=2,
                reco2num_spk=str(tmp_path / "reco2num_spk"))
    turns = read_rttm(str(out))
    assert list(turns) == ["a", "b"]
    assert len({k for *_, k in turns["a"]}) == 2 and len({k for *_, k in turns["b"]}) == 1
    (tmp_path / "reco2num_spk").write_text("a 2\n")
    with pytest.raises(UserError, match="no count for b"):
        diarize_scp(str(exp), str(tmp_path / "wav.scp"), str(out),
                    reco2num_spk=str(tmp_path / "reco2num_spk"))


def test_docs_tables_show_the_json_figures():
    from wespeaker_mfcon.analysis.tables import renderers
    scores = dict(der=0.1234, miss=0.05, false_alarm=0.01, confusion=0.0634, jer=0.2)
    data = dict(systems={"model, calibrated count": {"collar_0.25": scores, "collar_0": dict(
        scores, der=0.2), "count_exact": 0.75, "count_mae": 0.3, "count_bias": -0.1}},
        recordings=20,
        audio_hours=1.5, model="exp/E", load_after="1.00 1.00 1.00", host="h",
        rtf={"vad": 0.02, "embed_model": 0.05})
    table = renderers()["diarization"](data)
    assert "| model, calibrated count | 12.34 | 5.00 | 1.00 | 6.34 | 20.00 | 20.00 | 20.00 | " \
           "75% | 0.30 | -0.10 |" in table
    assert "| vad | 0.0200 | 50x |" in renderers()["diarization_speed"](data)
    long = dict(runs={"60 min": dict(audio_s=3600.0, peak_rss_mb=612.4, rtf=0.05,
                                     scores={"collar_0.25": scores}, speakers=[4, 3])},
                model="exp/E", load_after="1", host="h")
    assert "| 60 min | 60.0 | 612 | 0.0500 | 12.34 | 5.00 | 20.00 | 3 of 4 |" in renderers()[
        "diarization_long"](long)


def test_count_option_picks_the_calibration_or_the_eigengap():
    from wespeaker_mfcon.apps.diarize import DiarizeOptions
    calibrated = StatsEmbedder()
    calibrated.calibration = CAL
    assert DiarizeOptions().calibration(calibrated) is CAL                 # auto
    assert DiarizeOptions(count="eigengap").calibration(calibrated) is None
    assert DiarizeOptions().calibration(StatsEmbedder()) is None
    with pytest.raises(UserError, match="no calibration.json"):
        DiarizeOptions(count="calibration").calibration(StatsEmbedder())
    with pytest.raises(UserError, match="count must be one of"):
        DiarizeOptions(count="bic").check()


def test_the_wespeaker_facade_returns_wespeaker_rows(recordings, exp):
    """Speaker.diarize: WeSpeaker's [[utt, begin, end, label]] rows of the library's turns."""
    from wespeaker_mfcon.apps.speaker import load_model as wespeaker_load

    speaker = wespeaker_load(str(exp))
    path = str(recordings / "three.wav")
    rows = speaker.diarize(path, utt="r1", num_speakers=2)
    turns = diarize(speaker.embedder, path, num_speakers=2)
    assert rows == [["r1", round(s, 3), round(e, 3), k] for s, e, k in turns]
    assert {r[3] for r in rows} == {0, 1}
