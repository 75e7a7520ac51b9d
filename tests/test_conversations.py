"""The generated conversations (synth/conversations.py): seeded, a recording independent of the
others, turns as documented (2-6 speakers, at most two at once, pauses and some overlap), the
reference RTTM where the speech is."""

import numpy as np
import pytest
import soundfile as sf

from wespeaker_mfcon.scoring.rttm import read_rttm
from wespeaker_mfcon.synth.conversations import (ConversationParams, make_conversations,
                                                 plan_conversation, synth_conversation)
from wespeaker_mfcon.utils.errors import UserError

SHORT = ConversationParams(min_dur=20.0, max_dur=30.0, min_spk=2, max_spk=3)


def _overlap_depth(turns):
    """The largest number of reference turns active at one instant."""
    events = sorted([(s, 1) for s, _, _ in turns] + [(e, -1) for _, e, _ in turns],
                    key=lambda x: (x[0], x[1]))
    depth = best = 0
    for _, step in events:
        depth += step
        best = max(best, depth)
    return best


def test_plans_follow_the_documented_distribution():
    params = ConversationParams()
    counts, overlaps, pauses = [], 0, 0
    for index in range(12):
        speakers, turns, length = plan_conversation(params, index)
        counts.append(len(speakers))
        assert 2 <= len(speakers) <= 6 and len(set(speakers)) == len(speakers)
        assert all(0 <= s < params.num_test_spk for s in speakers)
        assert params.min_dur <= length <= params.max_dur + 16.0
        assert sorted({t.speaker for t in turns}) == list(range(len(speakers)))   # all speak
        assert all(0.6 <= t.dur <= 15.0 for t in turns)
        for a, b in zip(turns, turns[1:]):
            assert a.speaker != b.speaker
            overlaps += b.start < a.start + a.dur
            pauses += b.start > a.start + a.dur
    assert len(set(counts)) >= 3                      # the speaker count varies
    assert 0.05 < overlaps / (overlaps + pauses) < 0.35   # p_overlap 0.2, none after an overlap


def test_same_seed_same_recording_others_differ():
    a, ref_a = synth_conversation(SHORT, 3)
    b, ref_b = synth_conversation(SHORT, 3)
    assert np.array_equal(a, b) and ref_a == ref_b
    c, _ = synth_conversation(SHORT, 4)
    d, _ = synth_conversation(ConversationParams(**{**SHORT.__dict__, "seed": 778}), 3)
    assert not np.array_equal(a[:len(c)], c[:len(a)]) and not np.array_equal(a[:len(d)],
                                                                              d[:len(a)])


def test_reference_marks_the_speech():
    audio, reference = synth_conversation(SHORT, 1)
    assert np.max(np.abs(audio)) <= 0.98
    assert _overlap_depth(reference) <= 2
    frames = audio[:len(audio) // 160 * 160].reshape(-1, 160)
    energy_db = 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    speech = np.zeros(len(frames), bool)
    for start, end, _ in reference:
        speech[int(start * 100):int(end * 100)] = True
    # inside the reference turns the signal is far above the noise between them
    assert np.median(energy_db[speech]) > np.median(energy_db[~speech]) + 8.0
    assert speech.mean() > 0.6


def test_make_conversations_writes_the_layout_and_keeps_a_finished_set(tmp_path):
    meta = make_conversations(str(tmp_path), num=2, params=SHORT, jobs=1, progress=False)
    wav_scp = (tmp_path / "wav.scp").read_text().splitlines()
    assert [line.split()[0] for line in wav_scp] == ["conv0000", "conv0001"]
    reference = read_rttm(str(tmp_path / "ref.rttm"))
    assert sorted(reference) == ["conv0000", "conv0001"]
    audio, sr = sf.read(str(tmp_path / "wav" / "conv0001.wav"), dtype="float32")
    assert sr == 16000
    expected, turns = synth_conversation(SHORT, 1)
    assert np.abs(audio - expected).max() < 1.0 / 32000          # PCM16 of the same samples
    written = reference["conv0001"]
    assert [k for *_, k in turns] == [k for *_, k in written]
    assert np.abs(np.array([t[:2] for t in turns]) - np.array([t[:2] for t in written])).max() \
        <= 0.0011                                                 # RTTM keeps milliseconds
    assert meta["hours"] == pytest.approx(sum(
        sf.info(str(tmp_path / "wav" / f"conv000{i}.wav")).duration for i in range(2)) / 3600)
    stamp = (tmp_path / "wav" / "conv0000.wav").stat().st_mtime_ns
    make_conversations(str(tmp_path), num=2, params=SHORT, jobs=1, progress=False)
    assert (tmp_path / "wav" / "conv0000.wav").stat().st_mtime_ns == stamp


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(UserError, match="min_spk"):
        ConversationParams(min_spk=1).check()
    with pytest.raises(UserError, match="min_dur"):
        ConversationParams(min_dur=100.0, max_dur=50.0).check()
