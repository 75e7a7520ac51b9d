"""The synthetic mini corpus: determinism, layout, trials, speed, and that it is not trivial."""

import filecmp
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from wespeaker_mfcon.synth import mini_corpus as mc
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.scoring.metrics import compute_eer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "make_mini_corpus.py")

TINY = dict(num_train_spk=2, num_test_spk=3, sessions_per_spk=2, utts_per_session=2,
            min_dur=0.6, max_dur=1.0, num_trials=20, progress=False)


def _files(root):
    """Relative paths of all regular files under root, sorted."""
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(out)


def _same_tree(a, b, skip=("meta.json",)):
    fa, fb = _files(a), _files(b)
    assert fa == fb
    match, mismatch, errors = filecmp.cmpfiles(a, b, [f for f in fa if f not in skip],
                                               shallow=False)
    return not mismatch and not errors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tiny") / "c")
    st = mc.make_corpus(root, seed=5, **TINY)
    return root, st


@pytest.fixture(scope="module")
def default_test_set(tmp_path_factory):
    """The test split of the corpus the CLI makes by default (train split not needed)."""
    root = str(tmp_path_factory.mktemp("default") / "c")
    st = mc.make_corpus(root, splits=("test",), progress=False)
    return root, st


# ---------------------------------------------------------------------------------------------
# (a) determinism, layout
# ---------------------------------------------------------------------------------------------
def test_layout_and_wav_format(tiny):
    root, st = tiny
    assert os.path.isfile(os.path.join(root, ".done"))
    assert not os.path.exists(os.path.join(root, ".incomplete"))
    assert st["files"] == (2 + 3) * 2 * 2
    train = _files(os.path.join(root, "train", "wav"))
    test = _files(os.path.join(root, "test", "wav"))
    assert len(train) == 8 and len(test) == 12
    train_ids = {p.split(os.sep)[0] for p in train}
    test_ids = {p.split(os.sep)[0] for p in test}
    assert train_ids == {"id00001", "id00002"}
    assert test_ids == {"id10001", "id10002", "id10003"}
    for rel in test:
        spk, sess, name = rel.split(os.sep)
        assert len(sess) == 11 and name in ("00001.wav", "00002.wav")
        info = sf.info(os.path.join(root, "test", "wav", rel))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 0.6 - 1e-3 <= info.duration <= 1.0 + 1e-3
    # Two sessions per speaker with distinct names; audio is not silent and does not clip.
    x, _ = sf.read(os.path.join(root, "test", "wav", test[0]))
    assert 1e-3 < np.sqrt(np.mean(x ** 2)) < 0.3 and np.max(np.abs(x)) < 0.99
    assert len({p.split(os.sep)[1] for p in test if p.startswith("id10001")}) == 2


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    root, _ = tiny
    again = str(tmp_path / "again")
    mc.make_corpus(again, seed=5, **TINY)
    assert _same_tree(root, again)
    other = str(tmp_path / "other")
    mc.make_corpus(other, seed=6, **TINY)
    a = sorted(open(os.path.join(root, "test", "wav", p), "rb").read()
               for p in _files(os.path.join(root, "test", "wav")))
    b = sorted(open(os.path.join(other, "test", "wav", p), "rb").read()
               for p in _files(os.path.join(other, "test", "wav")))
    assert not set(a) & set(b)  # no file of seed 6 equals any file of seed 5


def test_order_independent(tiny, tmp_path):
    root, _ = tiny
    # One utterance synthesized alone (fresh cache) equals the file in the corpus.
    rel, spk, sess, utt = mc.utterance_paths(5, "test", 3, 2, 2)[7]
    alone = mc.to_wav_bytes(mc.synth_utterance(5, "test", spk, sess, utt, 0.6, 1.0))
    assert alone == open(os.path.join(root, "test", "wav", rel), "rb").read()
    # The test split does not depend on the size of the train split.
    bigger = str(tmp_path / "bigger")
    mc.make_corpus(bigger, seed=5, **dict(TINY, num_train_spk=3))
    assert _same_tree(os.path.join(root, "test"), os.path.join(bigger, "test"))


def test_first_test_spk_gives_disjoint_test_set(tiny, tmp_path):
    root, _ = tiny                                  # test speakers id10001..id10003
    later = str(tmp_path / "later")
    mc.make_corpus(later, seed=5, **dict(TINY, num_test_spk=2), first_test_spk=3)
    assert _same_tree(os.path.join(root, "train"), os.path.join(later, "train"))
    test_wav = os.path.join(later, "test", "wav")
    assert sorted(os.listdir(test_wav)) == ["id10004", "id10005"]
    # the same speakers as in a corpus with 5 test speakers, byte for byte
    five = str(tmp_path / "five")
    mc.make_corpus(five, seed=5, **dict(TINY, num_test_spk=5), splits=("test",))
    for spk in ("id10004", "id10005"):
        assert _same_tree(os.path.join(test_wav, spk), os.path.join(five, "test", "wav", spk))
    trials = open(os.path.join(later, "test", "trials.txt")).read().split()
    assert trials and {t.split("/")[0] for t in trials[1::3] + trials[2::3]} == {
        "id10004", "id10005"}
    with pytest.raises(UserError, match="first_test_spk"):
        mc.make_corpus(str(tmp_path / "bad"), **TINY, first_test_spk=-1)


# ---------------------------------------------------------------------------------------------
# (b) parallel jobs
# ---------------------------------------------------------------------------------------------
def test_jobs2_same_bytes_as_jobs1(tiny, tmp_path):
    root, _ = tiny
    par = str(tmp_path / "par")
    st = mc.make_corpus(par, seed=5, jobs=2, **TINY)
    assert st["files"] == 20
    assert _same_tree(root, par)


# ---------------------------------------------------------------------------------------------
# (c) trials
# ---------------------------------------------------------------------------------------------
def _check_trials(root, n_expected):
    wav = os.path.join(root, "test", "wav")
    lines = open(os.path.join(root, "test", "trials.txt")).read().splitlines()
    assert len(lines) == n_expected
    pairs = set()
    n_target = 0
    for line in lines:
        fields = line.split(" ")
        assert len(fields) == 3 and fields[0] in ("0", "1"), line
        a, b = fields[1:]
        for p in (a, b):
            assert not os.path.isabs(p) and os.path.isfile(os.path.join(wav, p)), p
            assert len(p.split("/")) == 3 and p.endswith(".wav")
        (spk_a, sess_a, _), (spk_b, sess_b, _) = a.split("/"), b.split("/")
        if fields[0] == "1":
            n_target += 1
            assert spk_a == spk_b and sess_a != sess_b, line  # targets cross sessions
        else:
            assert spk_a != spk_b, line
        key = tuple(sorted((a, b)))
        assert a != b and key not in pairs, line
        pairs.add(key)
    return n_target / len(lines)


def test_trials_default(default_test_set):
    root, st = default_test_set
    frac = _check_trials(root, mc.DEFAULTS["num_trials"])
    assert 0.45 <= frac <= 0.55
    assert st["trials_target"] + st["trials_nontarget"] == mc.DEFAULTS["num_trials"]
    spk_ids = {p.split(os.sep)[0] for p in _files(os.path.join(root, "test", "wav"))}
    assert len(spk_ids) == mc.DEFAULTS["num_test_spk"]


def test_trials_tiny_and_more_than_possible(tiny):
    root, _ = tiny
    assert 0.45 <= _check_trials(root, 20) <= 0.55
    # 3 speakers x (2 sessions x 2 utts): 4 cross-session pairs each = 12 targets at most,
    # and 66 - 3 x 6 = 48 nontarget pairs: asking for more gives all of them, once each.
    trials = mc.make_trials(5, 3, 2, 2, 100)
    assert sum(t[0] for t in trials) == 12
    assert len(trials) == 60 and len({(a, b) for _, a, b in trials}) == 60
    assert mc.make_trials(5, 3, 2, 2, 100) == trials  # deterministic


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="sessions_per_spk"):
        mc.make_corpus(str(tmp_path / "x"), **dict(TINY, sessions_per_spk=1))
    with pytest.raises(UserError, match="min_dur"):
        mc.make_corpus(str(tmp_path / "x"), **dict(TINY, min_dur=3.0, max_dur=2.0))
    assert not os.path.exists(tmp_path / "x" / ".done")


# ---------------------------------------------------------------------------------------------
# Re-runs: .done, --force, interrupted runs, CLI
# ---------------------------------------------------------------------------------------------
def test_rerun_semantics(tmp_path):
    out = str(tmp_path / "c")
    small = dict(TINY, num_train_spk=1, num_test_spk=2, num_trials=6)
    assert not mc.make_corpus(out, seed=1, **small)["skipped"]
    assert mc.make_corpus(out, seed=1, **small)["skipped"]
    with pytest.raises(UserError, match="other parameters"):
        mc.make_corpus(out, seed=2, **small)
    # An interrupted run: no .done, stale files from a bigger corpus; the next run clears them.
    os.remove(os.path.join(out, ".done"))
    open(os.path.join(out, ".incomplete"), "w").close()
    stale = os.path.join(out, "train", "wav", "id00099", "x", "00001.wav")
    os.makedirs(os.path.dirname(stale))
    open(stale, "w").close()
    st = mc.make_corpus(out, seed=2, **small)
    assert not st["skipped"] and not os.path.exists(stale)
    assert mc.make_corpus(out, seed=1, force=True, **small)["files"] == 12
    # Someone else's data is never overwritten.
    foreign = str(tmp_path / "foreign")
    os.makedirs(os.path.join(foreign, "train"))
    with pytest.raises(UserError, match="not made by"):
        mc.make_corpus(foreign, seed=1, **small)


def test_cli(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = str(tmp_path / "cli")
    args = [sys.executable, TOOL, "--out_dir", out, "--num_train_spk", "1", "--num_test_spk",
            "2", "--sessions_per_spk", "2", "--utts_per_session", "1", "--min_dur", "0.5",
            "--max_dur", "0.8", "--num_trials", "4", "--no_progress"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "real-time factor" in r.stdout and "6 files" in r.stdout
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "skipping" in r.stdout
    r = subprocess.run(args[:-1] + ["--seed", "9"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0 and "--num_trials" in r.stdout


# ---------------------------------------------------------------------------------------------
# (d) speed
# ---------------------------------------------------------------------------------------------
def test_faster_than_real_time(default_test_set):
    _, st = default_test_set
    audio_s = st["audio_s"]
    assert 0.9 * 240 * 2.0 < audio_s < 1.1 * 240 * 4.0
    print(f"\nmini corpus: {audio_s:.0f} s of audio in {st['cpu_s']:.1f} s CPU: "
          f"real-time factor {st['rtf']:.0f}x (one job)")
    assert st["rtf"] > 50  # design target: > 100x; generous against loaded test machines


# ---------------------------------------------------------------------------------------------
# (e) not trivial, but not noise either
# ---------------------------------------------------------------------------------------------
def _logmel_stats(path):
    import kaldi_native_fbank as knf
    x, sr = sf.read(path, dtype="float32")
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = sr
    opts.frame_opts.frame_length_ms = 25
    opts.frame_opts.frame_shift_ms = 10
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(sr, (x * 32768).tolist())
    fb.input_finished()
    feats = np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)])
    return np.concatenate([feats.mean(0), feats.std(0)])


def test_trivial_embedding_is_poor_but_better_than_chance(default_test_set):
    root, _ = default_test_set
    wav = os.path.join(root, "test", "wav")
    trials = [line.split() for line in open(os.path.join(root, "test", "trials.txt"))]
    utts = sorted({t[1] for t in trials} | {t[2] for t in trials})
    emb = {u: _logmel_stats(os.path.join(wav, u)) for u in utts}
    emb = {u: e / np.linalg.norm(e) for u, e in emb.items()}
    scores = np.array([emb[a] @ emb[b] for _, a, b in trials])
    labels = np.array([int(t[0]) for t in trials])
    eer = compute_eer(scores, labels)[0]
    print(f"\ntrivial log-mel mean+std cosine embedding on the default trials: "
          f"EER {100 * eer:.1f}%")
    assert eer >= 0.15  # hard enough
    assert eer < 0.45   # the speakers are distinguishable at all
