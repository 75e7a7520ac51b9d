"""Stage 7: Cllr / min Cllr / actual DCF, logistic-regression calibration, QMF features,
calibration trials from the training set, scoring/calibrate.py and local/calibrate.sh."""

import json
import math
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
from scipy import integrate, stats

from wespeaker_mfcon.scoring import calibrate as stage7
from wespeaker_mfcon.scoring import calibration as cal
from wespeaker_mfcon.scoring import calibration_trials as ctrials
from wespeaker_mfcon.scoring.calibrate import CalibrationOptions, calibrate
from wespeaker_mfcon.scoring.cosine import score_trial_lists
from wespeaker_mfcon.scoring.results import compute_metrics, format_table
from wespeaker_mfcon.scoring.score_norm import normalize_score_files
from wespeaker_mfcon.scoring.trial_pairs import count_pairs
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.scoring.metrics import compute_eer, compute_min_dcf
from wespeaker_mfcon.scoring.cosine import l2_normalize
from wespeaker_mfcon.scoring.score_norm import cohort_stats
from wespeaker_mfcon.scoring.trials import read_scores

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------- metrics

def test_cllr_hand_computed():
    # Targets with LLRs 0 and ln 3: log2(1 + e^0) = 1, log2(1 + e^-ln3) = log2(4/3) = 0.415037
    #   -> mean 0.707519. Nontargets 0 and -ln 3: log2(1 + e^0) = 1, log2(1 + 1/3) = 0.415037
    #   -> mean 0.707519. Cllr = 0.5 * (0.707519 + 0.707519) = 0.707519 bits.
    llr = [0.0, math.log(3), 0.0, -math.log(3)]
    assert cal.cllr(llr, [1, 1, 0, 0]) == pytest.approx(0.5 * (1 + math.log2(4 / 3)), abs=1e-12)
    assert cal.cllr([0.0, 0.0], [1, 0]) == pytest.approx(1.0)  # "always llr 0": 1 bit
    # Wrong-sided, confident: nontarget at llr 20 costs log2(1 + e^20) ~ 20 / ln 2 bits.
    assert cal.cllr([20.0, 20.0], [1, 0]) == pytest.approx(0.5 * 20 / LOG2, rel=1e-6)
    assert cal.cllr([-1e4, 1e4], [0, 1]) == 0.0  # no overflow (logaddexp)


def test_min_cllr_hand_computed():
    # Scores n:0 t:1 n:2 t:3 -> labels sorted by score [0, 1, 0, 1]; PAV pools the violating
    # pair (1, 0) -> posteriors [0, .5, .5, 1]. The empirical prior is 1/2 (prior log-odds 0),
    # so the LLRs are [-inf, 0, 0, +inf]. Targets: score 1 costs log2(1 + e^0) = 1, score 3
    # costs 0 -> mean 0.5; nontargets: 0 and 1 -> mean 0.5. min Cllr = 0.5.
    assert cal.min_cllr([1, 3, 0, 2], [1, 1, 0, 0]) == pytest.approx(0.5, abs=1e-12)
    # Unequal priors: n:0 t:1 n:2 n:3 -> [0, 1, 0, 0]; PAV -> [0, 1/3, 1/3, 1/3]. Prior 1/4
    # (log-odds ln 1/3); block posterior 1/3 (log-odds ln 1/2) -> LLR ln(1/2) - ln(1/3) = ln 1.5.
    # Target: log2(1 + 1/1.5) = log2(5/3); nontargets: 0, log2(2.5), log2(2.5) -> mean
    # 2 log2(2.5) / 3. min Cllr = 0.5 (log2(5/3) + 2 log2(2.5) / 3) = 0.809125.
    ref = 0.5 * (math.log2(5 / 3) + 2 * math.log2(2.5) / 3)
    assert cal.min_cllr([0, 1, 2, 3], [0, 1, 0, 0]) == pytest.approx(ref, abs=1e-12)
    np.testing.assert_allclose(cal.pav_llrs([0, 1, 2, 3], [0, 1, 0, 0]),
                               [-np.inf, math.log(1.5), math.log(1.5), math.log(1.5)])
    # Ties: identical scores are one block, whatever their order -> llr 0 -> 1 bit.
    assert cal.min_cllr([5, 5, 5, 5], [1, 0, 0, 1]) == pytest.approx(1.0)
    # Perfect separation: 0 bits (the infinite LLRs cost nothing).
    assert cal.min_cllr([3, 4, 1, 2], [1, 1, 0, 0]) == 0.0


def _gaussian_llrs(rng, m, n_tar, n_non):
    """Perfectly calibrated Gaussian LLRs: target N(m, 2m), nontarget N(-m, 2m)."""
    sd = math.sqrt(2 * m)
    llr = np.concatenate([rng.normal(m, sd, n_tar), rng.normal(-m, sd, n_non)])
    return llr, np.concatenate([np.ones(n_tar, np.int8), np.zeros(n_non, np.int8)])


def test_cllr_of_calibrated_gaussian_matches_analytic():
    m = 4.0
    # Analytic: Cllr = E[log2(1 + e^-L)], L ~ N(m, 2m) (the nontarget half is the same by
    # symmetry), by quadrature.
    dens = stats.norm(m, math.sqrt(2 * m)).pdf
    ref = integrate.quad(lambda x: np.logaddexp(0, -x) / LOG2 * dens(x), -60, 60)[0]
    llr, lab = _gaussian_llrs(np.random.default_rng(0), m, 40000, 40000)
    assert 0.2 < ref < 0.4
    assert cal.cllr(llr, lab) == pytest.approx(ref, abs=0.006)
    # Calibrated already: PAV can hardly do better.
    assert cal.cllr(llr, lab) - 0.01 < cal.min_cllr(llr, lab) <= cal.cllr(llr, lab)


def test_actual_dcf_known_case():
    llr = [2, -1, 3, -2, 0.5, -3, -4]
    lab = [1, 1, 1, 0, 0, 0, 0]
    # p = 0.5: threshold 0; miss: -1 (1/3), false alarm: 0.5 (1/4);
    # (0.5/3 + 0.5/4) / 0.5 = 7/12.
    assert cal.actual_dcf(llr, lab, 0.5) == pytest.approx(7 / 12)
    # p = 0.2: threshold ln 4 = 1.386; miss 1/3, no false alarm -> (0.2/3) / 0.2 = 1/3.
    assert cal.actual_dcf(llr, lab, 0.2) == pytest.approx(1 / 3)
    # p = 0.01: threshold ln 99 = 4.6 rejects all: P_miss = 1 -> 0.01 / 0.01 = 1.
    assert cal.actual_dcf(llr, lab, 0.01) == pytest.approx(1.0)
    # A false alarm weighs c_fa: p = 0.5, c_fa = 3: threshold ln 3 = 1.0986; miss 1/3, fa 0
    # -> (0.5 / 3) / 0.5 = 1/3.
    assert cal.actual_dcf(llr, lab, 0.5, c_fa=3.0) == pytest.approx(1 / 3)
    # Never below minDCF (same normalization).
    assert cal.actual_dcf(llr, lab, 0.5) >= compute_min_dcf(llr, lab, 0.5)


# ----------------------------------------------------------------------------- fitting

def test_calibration_keeps_eer_and_lowers_cllr():
    rng = np.random.default_rng(1)
    true_llr, lab = _gaussian_llrs(rng, 3.0, 2000, 8000)  # unequal counts: the prior weighting
    scores = 10.0 * true_llr + 5.0  # overconfident and shifted
    before = cal.cllr(scores, lab)
    c = cal.fit(scores, lab, ["score"])
    llr = c.llr(scores)
    assert c.weights[0] > 0
    assert compute_eer(llr, lab)[0] == compute_eer(scores, lab)[0]  # monotone
    after = cal.cllr(llr, lab)
    assert before > 1.5 and after < 0.4  # worse than useless (> 1 bit) -> well calibrated
    assert cal.min_cllr(scores, lab) <= after < cal.min_cllr(scores, lab) + 0.01
    # The true map is llr = (s - 5) / 10: recovered whatever the target/nontarget counts.
    assert c.weights[0] == pytest.approx(0.1, rel=0.05)
    assert c.bias == pytest.approx(-0.5, abs=0.1)
    ev = cal.evaluate_llrs(llr, lab, [0.01, 0.05])
    assert ev["act_dcf_0.01"] >= ev["min_dcf_0.01"] and ev["cllr"] == pytest.approx(after, abs=1e-6)


def test_qmf_uses_a_quality_measure():
    """Scores whose scale depends on a quality q: QMF (score, q) beats the plain fit."""
    rng = np.random.default_rng(2)
    true_llr, lab = _gaussian_llrs(rng, 3.0, 3000, 3000)
    q = rng.uniform(0, 1, len(lab))
    scores = true_llr + 4.0 * q  # the offset is known from q
    plain = cal.fit(scores, lab, ["score"])
    qmf = cal.fit(np.stack([scores, q], 1), lab, ["score", "q"])
    assert qmf.weights[1] == pytest.approx(-4.0, rel=0.1)
    assert cal.cllr(qmf.llr({"score": scores, "q": q}), lab) < cal.cllr(plain.llr(scores), lab) - 0.05


def test_json_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    lab = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
    c = cal.fit(x, lab, ["score", "min_logdur", "max_logdur"], p_train=0.2, meta={"score": "asnorm"})
    c.save(str(tmp_path / "c.json"))
    d = json.loads((tmp_path / "c.json").read_text())  # plain JSON
    assert d["names"] == ["score", "min_logdur", "max_logdur"] and d["score"] == "asnorm"
    assert d["p_train"] == 0.2 and len(d["weights"]) == 3 and isinstance(d["bias"], float)
    back = cal.Calibration.load(str(tmp_path / "c.json"))
    np.testing.assert_array_equal(back.llr(x), c.llr(x))
    assert back.to_dict() == d
    with pytest.raises(ValueError, match="weights"):
        cal.Calibration.from_dict({**d, "weights": [1.0]})
    (tmp_path / "bad.json").write_text('{"names": ["score"], "weights": [1], "bias": "x"}')
    with pytest.raises(UserError, match=r"bad\.json: not a calibration file"):
        cal.Calibration.load(str(tmp_path / "bad.json"))


# ----------------------------------------------------------------------------- features

def test_trial_features_as_documented():
    per_utt = {"logdur": np.log([1.0, 2.0, 4.0]), "imp": np.array([0.1, 0.3, 0.2]),
               "norm": np.array([5.0, 7.0, 6.0])}
    ei, ti = np.array([0, 2, 1]), np.array([1, 0, 2])
    names = list(ctrials.FEATURES)
    f = ctrials.trial_features(names, [0.5, -0.1, 0.2], ei, ti, per_utt)
    np.testing.assert_allclose(f, [
        # score, min_logdur, max_logdur, min_imp, max_imp, min_norm, max_norm
        [0.5, np.log(1), np.log(2), 0.1, 0.3, 5.0, 7.0],   # utts 0, 1
        [-0.1, np.log(1), np.log(4), 0.1, 0.2, 5.0, 6.0],  # utts 2, 0
        [0.2, np.log(2), np.log(4), 0.2, 0.3, 6.0, 7.0],   # utts 1, 2
    ])
    with pytest.raises(ValueError, match="unknown feature 'mean_imp'"):
        ctrials.trial_features(["mean_imp"], [0.0], ei[:1], ti[:1], per_utt)


def test_durations_from_utt2dur_or_frames(tmp_path):
    (tmp_path / "utt2num_frames").write_text("a/s/1 250\nb/s/1 100\n")
    assert ctrials.read_durations(str(tmp_path)) == {"a/s/1": 2.5, "b/s/1": 1.0}
    (tmp_path / "utt2dur").write_text("a/s/1 3.0\nb/s/1 0\n")
    with pytest.raises(UserError, match=r"utt2dur: b/s/1: duration must be a positive"):
        ctrials.read_durations(str(tmp_path))
    with pytest.raises(UserError, match="neither utt2dur nor utt2num_frames"):
        ctrials.read_durations(str(tmp_path / "nope"))


def test_imposter_means_leave_out_own_speaker():
    rng = np.random.default_rng(4)
    cohort = l2_normalize(rng.normal(size=(6, 8)))
    emb = l2_normalize(cohort[[0, 0, 3]] + 0.1 * rng.normal(size=(3, 8)))
    own = np.array([0, 0, 3])
    mean, std = ctrials.imposter_stats(emb, cohort, 2, own)
    for u in range(3):  # brute force: top 2 of the scores against the other 5 speakers
        sc = np.sort(np.delete(cohort, own[u], 0) @ emb[u])[-2:]
        assert mean[u] == pytest.approx(sc.mean(), abs=1e-6)
        assert std[u] == pytest.approx(sc.std(), abs=1e-5)
    full_mean, _ = cohort_stats(emb, cohort, 2)
    assert np.all(full_mean > mean + 0.2)  # own speaker's mean would have been the top score
    np.testing.assert_allclose(ctrials.imposter_stats(emb, cohort, 2)[0], full_mean)


# ----------------------------------------------------------------------------- trials

def _utt2spk(n_spk, n_sess, n_utt):
    return {f"id{s:05d}/vid{v}/{u:05d}": f"id{s:05d}"
            for s in range(n_spk) for v in range(n_sess) for u in range(n_utt)}


def _check_trials(u2s, enroll, test, labels):
    pairs = list(zip(enroll, test))
    assert len(set(pairs)) == len(pairs) and all(e < t for e, t in pairs)
    for (e, t), lab in zip(pairs, labels):
        same_spk = u2s[e] == u2s[t]
        assert bool(lab) == same_spk
        if lab:
            assert ctrials.session_of(e) != ctrials.session_of(t)


@pytest.mark.parametrize("shape,num", [((4, 2, 2), 40), ((30, 3, 4), 300)])
def test_training_trials(shape, num):
    """Small set: every pair enumerated; larger: rejection sampling. Both deterministic."""
    u2s = _utt2spk(*shape)
    u2s["id99999/only/00001"] = "id99999"  # one session: never in a target
    enroll, test, labels = ctrials.make_training_trials(u2s, num, seed=5)
    _check_trials(u2s, enroll, test, labels)
    avail_tar, _ = count_pairs(*ctrials._trial_tables(u2s, "x")[1:])
    assert labels.sum() == min(num // 2, avail_tar) and len(labels) == num
    again = ctrials.make_training_trials(u2s, num, seed=5)
    assert again[0] == enroll and again[1] == test and np.array_equal(again[2], labels)
    other = ctrials.make_training_trials(u2s, num, seed=6)
    if shape[0] == 30:
        assert (other[0], other[1]) != (enroll, test)


def test_training_trials_counts_and_errors():
    u2s = _utt2spk(3, 2, 1)  # 3 speakers x 2 sessions x 1: 3 targets, 12 nontargets
    enroll, test, labels = ctrials.make_training_trials(u2s, 100, seed=0)
    assert labels.sum() == 3 and len(labels) == 15  # all of them
    _check_trials(u2s, enroll, test, labels)
    enroll, test, labels = ctrials.make_training_trials(u2s, 10, seed=0)
    assert labels.sum() == 3 and len(labels) == 10  # missing targets made up with nontargets
    with pytest.raises(UserError, match="'a1' is not spk/session/utt"):
        ctrials.make_training_trials({"a1": "a", "b1": "b"}, 10, source="utt2spk")
    with pytest.raises(UserError, match="0 cross-session target"):
        ctrials.make_training_trials(_utt2spk(3, 1, 2), 10)


# ----------------------------------------------------------------------------- the CLI

DIM = 16


def _write_emb(path_noext, table):
    os.makedirs(os.path.dirname(path_noext), exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{path_noext}.ark,{path_noext}.scp") as w:
        for k, v in table.items():
            w(k, v.astype(np.float32))
    return f"{path_noext}.scp"


def _fake_set(rng, prefix, n_spk, offset, noise=1.0):
    """n_spk speakers x 3 sessions x 3 utterances; session and utterance noise (x noise)."""
    tab, dur = {}, {}
    for s in range(n_spk):
        spk = rng.normal(0, 1, DIM)
        for v in range(3):
            sess = rng.normal(0, 0.5 * noise, DIM)
            for u in range(3):
                k = f"{prefix}{s:04d}/v{v}/{u:05d}"
                dur[k] = float(rng.uniform(1, 6))
                sd = noise * 1.5 / math.sqrt(dur[k])
                tab[k] = offset + spk + sess + rng.normal(0, sd, DIM)
    return tab, dur


def _all_pairs(tab, path):
    """Write the Kaldi trial list of every pair of utterances of a set."""
    keys = sorted(tab)
    lines = [f"{a} {b} {'target' if a.split('/')[0] == b.split('/')[0] else 'nontarget'}"
             for i, a in enumerate(keys) for b in keys[i + 1:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_parts(root, exp, parts):
    """data/<part>/{utt2dur,utt2spk} and exp/embeddings/<part>/xvector.scp of every part."""
    for part, (tab, dur) in parts.items():
        _write_emb(str(exp / "embeddings" / part / "xvector"), tab)
        d = root / "data" / part
        d.mkdir(parents=True)
        (d / "utt2dur").write_text("".join(f"{k} {v:.3f}\n" for k, v in dur.items()))
        (d / "utt2spk").write_text("".join(f"{k} {k.split('/')[0]}\n" for k in tab))


def _make_exp(tmp_path, parts):
    """A stage-4 experiment of parts {"train", "test", ...: (embeddings, durations)}."""
    root, exp = tmp_path / "recipe", tmp_path / "recipe" / "exp" / "e"
    _write_parts(root, exp, parts)
    trials = _all_pairs(parts["test"][0], root / "data" / "test" / "trials" / "t.kaldi")
    emb, scores = exp / "embeddings", exp / "scores"
    score_trial_lists([("t", str(trials))], str(emb / "test/xvector.scp"), str(scores),
                      cohort_scp=str(emb / "train/xvector.scp"))
    normalize_score_files([str(scores / "t.score")], str(emb / "test/xvector.scp"),
                          str(emb / "train/xvector.scp"), str(root / "data/train/utt2spk"),
                          top_n=5)
    compute_metrics([str(scores / "t.score"), str(scores / "t.asnorm.score")], str(scores),
                    det=False)
    return dict(root=root, exp=exp, train=parts["train"][0])


@pytest.fixture
def fake_exp(tmp_path):
    """A stage-4 experiment: train (cohort) and test embeddings, trials, score files."""
    rng = np.random.default_rng(7)
    offset = rng.normal(0, 1, DIM)
    train = _fake_set(rng, "id0", 12, offset)
    test = _fake_set(rng, "id1", 5, offset)
    return dict(_make_exp(tmp_path, {"train": train, "test": test}), test=test[0])


def test_calibrate_cli_end_to_end(fake_exp, capsys):
    root, exp = fake_exp["root"], fake_exp["exp"]
    calibrate(CalibrationOptions(exp_dir=str(exp), data=str(root / "data"), trials=["t"],
                                 top_n=5, num_trials=600, seed=3))
    out = capsys.readouterr().out
    assert "feature ablation" in out and "+dur+imp" in out and "actDCF0.01" in out
    systems = ["cosine_plain", "cosine_qmf", "asnorm_plain", "asnorm_qmf"]
    res = json.loads((exp / "scores/results.json").read_text())["t"]
    assert set(res) == {"cosine", "asnorm", *systems}  # stage 4's entries kept
    for s in systems:
        r = res[s]
        assert {"eer", "min_dcf_0.01", "cllr", "min_cllr", "act_dcf_0.01", "act_dcf_0.05"} <= set(r)
        assert 0 <= r["min_cllr"] <= r["cllr"] and r["act_dcf_0.05"] >= r["min_dcf_0.05"] - 1e-9
        assert cal.Calibration.load(str(exp / "calibration" / f"{s}.json")).meta["score"] == \
            s.split("_")[0]
    # Plain calibration is monotone: EER of the LLR file = EER of the stage-4 scores.
    for system, f in (("cosine", "t.score"), ("asnorm", "t.asnorm.score")):
        assert res[f"{system}_plain"]["eer"] == pytest.approx(res[system]["eer"], abs=1e-9)
        e, t, sc, lab = read_scores(str(exp / "scores" / f))
        e2, t2, llr, lab2 = read_scores(str(exp / "scores" / f"t.{system}_plain.llr.score"))
        assert (e, t) == (e2, t2) and np.array_equal(lab, lab2)
        c = cal.Calibration.load(str(exp / "calibration" / f"{system}_plain.json"))
        np.testing.assert_allclose(llr, c.weights[0] * sc + c.bias, atol=2e-6)
    # The test data is calibrated by the training trials: well below 1 bit.
    assert res["asnorm_qmf"]["cllr"] < 0.8 and res["cosine_plain"]["cllr"] < 0.8
    _check_raw_cosine_calibration(fake_exp)
    trials = (exp / "calibration/train_trials.kaldi").read_text().split("\n")[:-1]
    assert len(trials) == 600 and sum(x.endswith(" target") for x in trials) == 300
    abl = json.loads((exp / "calibration/ablation.json").read_text())
    source = {"data": str(root / "data/train"), "held_out": False,
              "embeddings": str(exp / "embeddings/train/xvector.scp"),
              "trials": f"drawn from {root / 'data/train/utt2spk'} (seed 3)"}
    assert abl.pop("calibration_data") == source
    assert set(abl) == {f"{s} {n}" for s in ("cosine", "asnorm") for n in ctrials.ABLATION}
    for s in systems:
        assert json.loads((exp / f"calibration/{s}.json").read_text())[
            "calibration_data"] == source


def _check_raw_cosine_calibration(fake_exp):
    d = json.loads((fake_exp["exp"] / "calibration.json").read_text())
    assert d["score"] == "raw_cosine" and d["names"] == ["score"]
    assert d["trained_on"].startswith("600 trials from ") and d["weights"][0] > 0
    # It is a function of the raw cosine of two embeddings: higher for the same speaker.
    train = fake_exp["train"]
    c = cal.Calibration.from_dict(d)
    a, b, o = (train[k] for k in ("id00000/v0/00000", "id00000/v1/00000", "id00001/v0/00000"))
    cos = [float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in ((a, b), (a, o))]
    llr = c.llr(np.array(cos))
    assert llr[0] > llr[1] and llr[0] == pytest.approx(d["weights"][0] * cos[0] + d["bias"])


def test_calibrate_errors(fake_exp, tmp_path):
    root, exp = fake_exp["root"], fake_exp["exp"]
    common = dict(exp_dir=str(exp), data=str(root / "data"))
    with pytest.raises(UserError, match=r"nope\.score: no such file"):
        calibrate(CalibrationOptions(**common, trials=["nope"]))
    (root / "data/test/utt2dur").unlink()
    with pytest.raises(UserError, match="neither utt2dur nor utt2num_frames"):
        calibrate(CalibrationOptions(**common, trials=["t"]))
    # The recipe script checks its inputs; the CLI prints one 'error:' line.
    env = {**os.environ, "PYTHONPATH": REPO,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    os.symlink(os.path.join(REPO, "tools"), root / "tools")
    script = os.path.join(REPO, "examples/voxceleb/v2_mfcon/local/calibrate.sh")
    r = subprocess.run(["bash", script, "--exp_dir", "exp/e", "--trials", "nope"], cwd=root,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "missing exp/e/scores/nope.score" in r.stderr
    r = subprocess.run(["bash", script, "--exp_dir", "exp/e", "--num_trials", "50"], cwd=root,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: data/test: neither utt2dur")


def test_results_table_shows_calibration_columns():
    plain = {"eer": 1.0, "min_dcf_0.01": 0.1, "min_dcf_0.05": 0.05}
    calib = {**plain, "cllr": 0.5, "min_cllr": 0.25, "act_dcf_0.01": 0.2, "act_dcf_0.05": 0.1}
    lines = format_table([("t", "cosine", plain)], [0.01, 0.05]).splitlines()
    assert lines[0].split() == ["trials", "system", "EER(%)", "minDCF0.01", "minDCF0.05"]
    lines = format_table([("t", "cosine", plain), ("t", "cosine_qmf", calib)],
                         [0.01, 0.05]).splitlines()
    assert lines[0].split()[-4:] == ["Cllr", "minCllr", "actDCF0.01", "actDCF0.05"]
    assert lines[2].split()[-4:] == ["-"] * 4 and lines[3].split()[-4:] == [
        "0.5000", "0.2500", "0.2000", "0.1000"]


# ----------------------------------------------------------------------------- held-out set

@pytest.fixture
def separable_exp(tmp_path):
    """Training speakers nearly separable (as for a model that has seen them), held-out dev
    and test speakers noisy (as the mini corpus' test speakers are)."""
    rng = np.random.default_rng(11)
    offset = rng.normal(0, 1, DIM)
    parts = {"train": _fake_set(rng, "id0", 20, offset, noise=0.15),
             "dev": _fake_set(rng, "id2", 12, offset),
             "test": _fake_set(rng, "id1", 12, offset)}
    return _make_exp(tmp_path, parts)


def _run_calibrate(exp_info, **extra):
    root, exp = exp_info["root"], exp_info["exp"]
    calibrate(CalibrationOptions(exp_dir=str(exp), data=str(root / "data"), trials=["t"],
                                 top_n=5, num_trials=1000, **extra))
    return json.loads((exp / "scores/results.json").read_text())["t"]


def test_heldout_calibration_is_not_overconfident(separable_exp, capsys):
    """Trained-on speakers give overconfident LLRs on the test speakers; held-out ones do not."""
    root, exp = separable_exp["root"], separable_exp["exp"]
    systems = ("cosine_plain", "asnorm_plain", "asnorm_qmf")
    on_train = _run_calibrate(separable_exp)
    dev_scp = str(exp / "embeddings/dev/xvector.scp")
    on_dev = _run_calibrate(separable_exp, cal_data=str(root / "data/dev"),
                            cal_embeddings=dev_scp)
    assert "held-out" in capsys.readouterr().out
    for s in systems:
        gap_train = on_train[s]["cllr"] - on_train[s]["min_cllr"]
        gap_dev = on_dev[s]["cllr"] - on_dev[s]["min_cllr"]
        assert gap_dev < 0.1, (s, on_dev[s])
        assert gap_train > 0.5 and on_train[s]["cllr"] > on_dev[s]["cllr"] + 0.5, \
            (s, on_train[s])
    # The trials are the dev set's (drawn across sessions) and every JSON says so.
    trials = (exp / "calibration/cal_trials.kaldi").read_text().split()
    assert len(trials) == 3000 and all(u.startswith("id2") for u in trials[0::3] + trials[1::3])
    source = {"data": str(root / "data/dev"), "embeddings": dev_scp, "held_out": True,
              "trials": f"drawn from {root / 'data/dev/utt2spk'} (seed 0)"}
    for f in ["calibration.json", "calibration/ablation.json",
              *(f"calibration/{s}.json" for s in systems)]:
        assert json.loads((exp / f).read_text())["calibration_data"] == source, f
    assert json.loads((exp / "calibration.json").read_text())["trained_on"] == \
        f"1000 trials from {root / 'data/dev'}"


def test_heldout_trials_scored_as_stage4(fake_exp, caplog):
    """The test set given as the held-out set with its own trial list: the calibration
    scores are stage 4's score files, the durations its utt2dur; the overlap is reported."""
    root, exp = fake_exp["root"], fake_exp["exp"]
    args = CalibrationOptions(
        exp_dir=str(exp), data=str(root / "data"), trials=["t"], top_n=5,
        cal_data=str(root / "data/test"), cal_embeddings=str(exp / "embeddings/test/xvector.scp"),
        cal_trials="t")
    train = stage7.load_training(args)
    ts = stage7.heldout_trials(args, train, stage7.training_cohort(train), 5)
    # Stage 4 writes 6 decimals and AS-norm divides the rounded cosines by cohort stds ~0.1.
    for system, f, tol in (("cosine", "t.score", 2e-6), ("asnorm", "t.asnorm.score", 5e-5)):
        e, t, sc, lab = read_scores(str(exp / "scores" / f))
        assert (ts.enroll, ts.test) == (e, t) and np.array_equal(ts.labels, lab)
        np.testing.assert_allclose(ts.scores[system], sc, atol=tol)
    durs = ctrials.read_durations(str(root / "data/test"))
    used = sorted(set(ts.enroll) | set(ts.test))
    np.testing.assert_allclose(ts.per_utt["logdur"], np.log([durs[k] for k in used]))
    test = fake_exp["test"]
    raw = [float(test[a] @ test[b] / np.linalg.norm(test[a]) / np.linalg.norm(test[b]))
           for a, b in zip(ts.enroll[:5], ts.test[:5])]
    np.testing.assert_allclose(ts.scores["raw_cosine"][:5], raw, atol=1e-5)
    stage7.warn_overlap(ts, [("t", ts)])
    assert "share 45 utterances with the test list t" in caplog.text
    assert stage7.trials_source(args)["trials"] == str(root / "data/test/trials/t.kaldi")


def test_heldout_errors(fake_exp, tmp_path):
    root, exp = fake_exp["root"], fake_exp["exp"]
    keys = sorted(fake_exp["test"])
    sub = _write_emb(str(tmp_path / "sub" / "xvector"),
                     {k: fake_exp["test"][k] for k in keys[1:]})
    common = dict(exp_dir=str(exp), data=str(root / "data"), trials=["t"], top_n=5)

    def error(**extra):
        with pytest.raises(UserError) as e:
            calibrate(CalibrationOptions(**common, **{"cal_data": str(root / "data/test"),
                                                      **extra}))
        assert "\n" not in str(e.value)
        return str(e.value)
    msg = error(cal_embeddings=sub)
    assert msg.startswith(f"{sub}: no embedding for 1 of 45 utterances of "
                          f"{root / 'data/test/utt2spk'}, e.g. {keys[0]!r}")
    msg = error(cal_embeddings=sub, cal_trials="t")
    assert msg.startswith(f"{root / 'data/test/trials/t.kaldi'}: 1 utterance in 44 of 990 "
                          f"trials have no embedding in {sub}")
    full = str(exp / "embeddings/test/xvector.scp")
    assert error(cal_embeddings=full, cal_trials="nope") == \
        f"{root / 'data/test/trials/nope.kaldi'}: no such file"
    for bad in ({"cal_trials": "t"}, {"cal_embeddings": full}):  # without --cal_data
        with pytest.raises(UserError, match="need --cal_data"):
            CalibrationOptions(**common, **bad)
    assert error().startswith("--cal_data needs --cal_embeddings")  # (without it)
    # The recipe script passes the options through; its default is exp/e/embeddings/<name>.
    env = {**os.environ, "PYTHONPATH": REPO,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    os.symlink(os.path.join(REPO, "tools"), root / "tools")
    script = os.path.join(REPO, "examples/voxceleb/v2_mfcon/local/calibrate.sh")
    r = subprocess.run(["bash", script, "--exp_dir", "exp/e", "--cal_data", "data/dev"],
                       cwd=root, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "missing exp/e/embeddings/dev/xvector.scp" in r.stderr
    r = subprocess.run(["bash", script, "--exp_dir", "exp/e", "--cal_data", "data/test",
                        "--cal_embeddings", sub, "--cal_trials", "t"],
                       cwd=root, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "error: data/test/trials/t.kaldi: 1 utterance in 44 of 990 trials have no embedding")
