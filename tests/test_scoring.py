"""Stage 4 back end: cosine scoring, AS-norm / S-norm, metrics files, DET plot, score.sh."""

import json
import logging
import os
import shutil
import subprocess
import sys

import kaldiio
import numpy as np
import pytest

from wespeaker_mfcon.scoring.cosine import score_trial_lists
from wespeaker_mfcon.scoring.embeddings import load_embeddings, speaker_means
from wespeaker_mfcon.scoring.results import compute_metrics
from wespeaker_mfcon.scoring.score_norm import normalize_score_files
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.scoring.trials import (parse_score_name, read_scores, resolve_trials,
                                            score_files, trial_names)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 16


def _write_emb(path_noext, table):
    with kaldiio.WriteHelper(f"ark,scp:{path_noext}.ark,{path_noext}.scp") as w:
        for k, v in table.items():
            w(k, v.astype(np.float32))
    return f"{path_noext}.scp"


@pytest.fixture
def setup(tmp_path):
    """12 eval utterances of 4 speakers, cohort of 10 speakers x 3 utterances, 2 trial lists."""
    rng = np.random.default_rng(1)
    offset = rng.normal(0, 2.0, DIM)  # a common offset that mean subtraction should remove
    spk_eval = rng.normal(0, 1, (4, DIM))
    eval_tab = {}
    for s in range(4):
        for u in range(3):
            eval_tab[f"id1000{s}/vid{u}/0000{u}"] = offset + spk_eval[s] + rng.normal(0, .7, DIM)
    spk_coh = rng.normal(0, 1, (10, DIM))
    coh_tab, utt2spk = {}, {}
    for s in range(10):
        for u in range(3):
            k = f"id2{s:04d}/v{u}/00001"
            coh_tab[k] = offset + spk_coh[s] + rng.normal(0, .7, DIM)
            utt2spk[k] = f"id2{s:04d}"
    emb_dir = tmp_path / "emb"
    emb_dir.mkdir()
    eval_scp = _write_emb(str(emb_dir / "test"), eval_tab)
    coh_scp = _write_emb(str(emb_dir / "train"), coh_tab)
    u2s = tmp_path / "utt2spk"
    u2s.write_text("".join(f"{k} {v}\n" for k, v in utt2spk.items()))
    keys = list(eval_tab)
    trials_dir = tmp_path / "trials"
    trials_dir.mkdir()
    lists = {}
    for name, pairs in (("a", [(i, j) for i in range(12) for j in range(i + 1, 12)]),
                        ("b", [(i, (i * 5 + 1) % 12) for i in range(12) if (i * 5 + 1) % 12 != i])):
        lines = [f"{keys[i]} {keys[j]} {'target' if i // 3 == j // 3 else 'nontarget'}"
                 for i, j in pairs]
        (trials_dir / f"{name}.kaldi").write_text("\n".join(lines) + "\n")
        lists[name] = str(trials_dir / f"{name}.kaldi")
    return dict(tmp=tmp_path, eval_scp=eval_scp, coh_scp=coh_scp, utt2spk=str(u2s),
                eval_tab=eval_tab, coh_tab=coh_tab, spk_of=utt2spk, lists=lists)


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _run_score(s, mean_sub=True):
    out = s["tmp"] / "scores"
    score_trial_lists(resolve_trials(None, list(s["lists"].values())), s["eval_scp"], str(out),
                      cohort_scp=s["coh_scp"], mean_sub=mean_sub)
    return out


def test_load_embeddings_and_speaker_means(setup):
    keys, mat = load_embeddings(setup["coh_scp"])
    assert mat.shape == (30, DIM) and mat.dtype == np.float32
    np.testing.assert_allclose(mat[4], setup["coh_tab"][keys[4]], rtol=1e-6)
    spks, means = speaker_means(keys, mat, setup["utt2spk"])
    assert len(spks) == 10
    k3 = [k for k in keys if setup["spk_of"][k] == spks[3]]
    np.testing.assert_allclose(means[3], np.mean([setup["coh_tab"][k] for k in k3], 0), atol=1e-5)
    with pytest.raises(UserError, match=r"1 of 30 cohort embeddings have no speaker"):
        speaker_means(keys, mat, {k: v for k, v in setup["spk_of"].items() if k != keys[7]})


def test_cosine_scores_match_numpy(setup):
    out = _run_score(setup)
    mean = np.mean(np.stack(list(setup["coh_tab"].values())), 0)
    tab = setup["eval_tab"]
    enroll, test, scores, labels = read_scores(str(out / "a.score"))
    assert len(scores) == 66 and labels.sum() == 4 * 3
    ref = [_cos(tab[e] - mean, tab[t] - mean) for e, t in zip(enroll, test)]
    np.testing.assert_allclose(scores, ref, atol=2e-6)
    assert (out / "b.score").exists()
    # Mean subtraction matters here (a shared offset): without it scores are much higher.
    _run_score(setup, mean_sub=False)
    _, _, raw, _ = read_scores(str(out / "a.score"))
    np.testing.assert_allclose(raw, [_cos(tab[e], tab[t]) for e, t in zip(enroll, test)],
                               atol=2e-6)
    assert raw.mean() > scores.mean() + 0.3


def _slow_norm(s, method, top_n):
    """Per-trial reference: for each trial, score both sides against every cohort speaker."""
    mean = np.mean(np.stack(list(s["coh_tab"].values())), 0)
    spk = {}
    for k, v in s["coh_tab"].items():
        spk.setdefault(s["spk_of"][k], []).append(v - mean)
    cohort = [np.mean(v, 0) for v in spk.values()]
    enroll, test, scores, _ = read_scores(str(s["tmp"] / "scores" / "a.score"))
    out = []
    for e, t, sc in zip(enroll, test, scores):
        side = []
        for u in (e, t):
            cs = sorted((_cos(s["eval_tab"][u] - mean, c) for c in cohort), reverse=True)
            if method == "asnorm":
                cs = cs[:top_n]
            side.append((sc - np.mean(cs)) / np.std(cs))
        out.append(0.5 * (side[0] + side[1]))
    return np.array(out)


@pytest.mark.parametrize("method,top_n", [("asnorm", 4), ("snorm", 300)])
def test_score_norm_matches_per_trial_reference(setup, method, top_n):
    out = _run_score(setup)
    normalize_score_files([str(out / "a.score"), str(out / "b.score")], setup["eval_scp"],
                          setup["coh_scp"], setup["utt2spk"], method=method, top_n=top_n)
    e, t, got, lab = read_scores(str(out / f"a.{method}.score"))
    e0, t0, _, lab0 = read_scores(str(out / "a.score"))
    assert (e, t) == (e0, t0) and np.array_equal(lab, lab0)
    np.testing.assert_allclose(got, _slow_norm(setup, method, top_n), atol=2e-5)
    assert (out / f"b.{method}.score").exists()
    assert np.std(got) > 0.5  # z-scored: not the tiny cosine spread


def test_top_n_clamped_to_cohort(setup, caplog):
    out = _run_score(setup)
    common = [[str(out / "a.score")], setup["eval_scp"], setup["coh_scp"], setup["utt2spk"]]
    with caplog.at_level(logging.WARNING):
        normalize_score_files(*common, method="asnorm", top_n=1000)
    assert "top_n=1000 is larger than the cohort (10 speakers); using 10" in caplog.text
    normalize_score_files(*common, method="snorm")
    _, _, a, _ = read_scores(str(out / "a.asnorm.score"))
    _, _, b, _ = read_scores(str(out / "a.snorm.score"))
    np.testing.assert_allclose(a, b, atol=1e-6)  # all 10 speakers = S-norm
    np.testing.assert_allclose(a, _slow_norm(setup, "snorm", 0), atol=2e-5)


def test_missing_embedding_error(setup, tmp_path):
    bad = tmp_path / "bad.kaldi"
    first = next(iter(setup["eval_tab"]))
    bad.write_text(f"{first} id99999/x/00001 nontarget\n{first} {first} target\n"
                   f"id99998/y/00002 id99999/x/00001 nontarget\n")
    with pytest.raises(UserError) as err:
        score_trial_lists([("bad", str(bad))], setup["eval_scp"], str(tmp_path / "s"),
                          cohort_scp=setup["coh_scp"])
    msg = str(err.value)
    assert "2 utterances in 2 of 3 trials have no embedding" in msg
    assert "'id99999/x/00001', 'id99998/y/00002'" in msg and "bad.kaldi" in msg
    assert not (tmp_path / "s").exists()  # nothing written
    # From the command line: one 'error:' line, exit status 1, no traceback.
    r = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.bin.score", "--eval_scp",
                        setup["eval_scp"], "--no_mean_sub", "--trials", str(bad),
                        "--out_dir", str(tmp_path / "s")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": REPO})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in r.stderr


def test_bad_trial_label_names_line(setup, tmp_path):
    bad = tmp_path / "c.kaldi"
    k = list(setup["eval_tab"])
    bad.write_text(f"{k[0]} {k[1]} target\n{k[0]} {k[2]} maybe\n")
    with pytest.raises(UserError, match=r"c\.kaldi:2: label must be"):
        score_trial_lists([("c", str(bad))], setup["eval_scp"], str(tmp_path), mean_sub=False)


def test_compute_metrics_results_json_and_det(setup, capsys):
    out = _run_score(setup)
    normalize_score_files([str(out / "a.score")], setup["eval_scp"], setup["coh_scp"],
                          setup["utt2spk"], top_n=5)
    # An earlier run's entry for another list must survive the merge.
    (out / "results.json").write_text(json.dumps({"old": {"cosine": {"eer": 9.0}}}))
    files = [str(out / "a.score"), str(out / "a.asnorm.score"), str(out / "b.score")]
    compute_metrics(files, str(out))
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"old", "a", "b"} and set(res["a"]) == {"cosine", "asnorm"}
    from wespeaker_mfcon.scoring.metrics import compute_eer, compute_min_dcf
    for f in files:
        trials, system = parse_score_name(f)
        _, _, sc, lab = read_scores(f)
        r = res[trials][system]
        assert r["eer"] == pytest.approx(compute_eer(sc, lab)[0] * 100, abs=1e-5)
        assert r["min_dcf_0.01"] == pytest.approx(compute_min_dcf(sc, lab, 0.01), abs=1e-6)
        assert r["min_dcf_0.05"] == pytest.approx(compute_min_dcf(sc, lab, 0.05), abs=1e-6)
        assert 0 <= r["eer"] <= 100
    assert res["a"]["cosine"]["num_trials"] == 66 and res["a"]["cosine"]["num_target"] == 12
    text = (out / "a.asnorm.result").read_text()
    assert f"EER = {res['a']['asnorm']['eer']:.3f} %" in text and "p_target=0.05" in text
    png = (out / "det.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg
    img = mpimg.imread(str(out / "det.png"))
    assert img.shape[0] >= 300 and img.shape[1] >= 300
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["trials", "system", "EER(%)"] and len(table) == 2 + 3
    assert table[3].split()[:2] == ["a", "asnorm"]


def test_parse_score_name():
    assert parse_score_name("x/vox1_O.score") == ("vox1_O", "cosine")
    assert parse_score_name("x/vox1_O.asnorm.score") == ("vox1_O", "asnorm")
    assert parse_score_name("x/v1.2.snorm.score") == ("v1.2", "snorm")


def test_trial_lists_resolved_by_name_or_path(tmp_path):
    folder = tmp_path / "data" / "test" / "trials"
    folder.mkdir(parents=True)
    for name in ("vox1_O", "vox1_E"):
        (folder / f"{name}.kaldi").write_text("a b target\n")
    other = tmp_path / "mine.kaldi"
    other.write_text("a b nontarget\n")
    data = str(tmp_path / "data")
    o, e = str(folder / "vox1_O.kaldi"), str(folder / "vox1_E.kaldi")
    assert resolve_trials(data) == [("vox1_E", e), ("vox1_O", o)]            # sorted by name
    assert resolve_trials(data, ["vox1_O", "vox1_E.kaldi", str(other)]) == [
        ("vox1_O", o), ("vox1_E", e), ("mine", str(other))]                 # as given
    assert resolve_trials(None, [str(other)]) == [("mine", str(other))]
    with pytest.raises(UserError, match=f"^no trial list {folder / 'nope.kaldi'}$"):
        resolve_trials(data, ["vox1_O", "nope"])
    (tmp_path / "vox1_O.kaldi").write_text("a b target\n")
    with pytest.raises(UserError, match=r"same name would overwrite each other: \['vox1_O'\]"):
        resolve_trials(data, ["vox1_O", str(tmp_path / "vox1_O.kaldi")])
    with pytest.raises(UserError, match="give the data dir"):
        resolve_trials(None)
    with pytest.raises(UserError, match=r"no trial lists \(\*\.kaldi\); run stage 0"):
        resolve_trials(str(tmp_path / "empty"))
    # Steps that read score files need the names only.
    assert trial_names(data) == ["vox1_E", "vox1_O"]
    assert trial_names(data, ["x/vox1_H.kaldi", "vox1_O"]) == ["vox1_H", "vox1_O"]
    assert score_files("s", data, systems=("cosine", "snorm")) == [
        "s/vox1_E.score", "s/vox1_E.snorm.score", "s/vox1_O.score", "s/vox1_O.snorm.score"]


def test_score_sh_end_to_end(setup, tmp_path):
    """The recipe script runs the three entry points on every trial list."""
    recipe = tmp_path / "recipe"
    (recipe / "local").mkdir(parents=True)
    os.symlink(os.path.join(REPO, "tools"), recipe / "tools")
    exp = recipe / "exp" / "e"
    for part, src in (("test", setup["eval_tab"]), ("train", setup["coh_tab"])):
        (exp / "embeddings" / part).mkdir(parents=True)
        _write_emb(str(exp / "embeddings" / part / "xvector"), src)
    (recipe / "data" / "test" / "trials").mkdir(parents=True)
    (recipe / "data" / "train").mkdir(parents=True)
    for n, p in setup["lists"].items():
        (recipe / "data" / "test" / "trials" / f"{n}.kaldi").write_text(open(p).read())
    (recipe / "data" / "train" / "utt2spk").write_text(open(setup["utt2spk"]).read())
    script = os.path.join(REPO, "examples/voxceleb/v2_mfcon/local/score.sh")
    env = {**os.environ, "PYTHONPATH": REPO,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    r = subprocess.run(["bash", script, "--exp_dir", "exp/e", "--score_norm_method", "snorm",
                        "--top_n", "5"], cwd=recipe, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads((exp / "scores" / "results.json").read_text())
    assert set(res) == {"a", "b"} and set(res["a"]) == {"cosine", "snorm"}
    assert (exp / "scores" / "det.png").exists() and (exp / "scores" / "b.snorm.result").exists()
    r = subprocess.run(["bash", script, "--exp_dir", "exp/e", "--trials", "nope"], cwd=recipe,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "no trial list data/test/trials/nope.kaldi" in r.stderr
    # --cohort_scp / --cohort_utt2spk: the same cohort moved elsewhere scores the same; half of
    # it (its first speakers' utterances) scores otherwise
    other = recipe / "cohort"
    shutil.copytree(exp / "embeddings" / "train", other)
    shutil.copy(recipe / "data" / "train" / "utt2spk", other / "utt2spk")
    before = (exp / "scores" / "a.snorm.score").read_text()
    shutil.rmtree(exp / "embeddings" / "train")
    cohort = ["--cohort_scp", "cohort/xvector.scp", "--cohort_utt2spk", "cohort/utt2spk"]
    run = ["bash", script, "--exp_dir", "exp/e", "--score_norm_method", "snorm", "--top_n", "5"]
    r = subprocess.run(run + cohort, cwd=recipe, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert (exp / "scores" / "a.snorm.score").read_text() == before
    lines = (other / "xvector.scp").read_text().splitlines()
    (other / "xvector.scp").write_text("\n".join(lines[:len(lines) // 2]) + "\n")
    r = subprocess.run(run + cohort, cwd=recipe, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert (exp / "scores" / "a.snorm.score").read_text() != before
