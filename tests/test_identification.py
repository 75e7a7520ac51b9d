"""enroll / identify / db from the CLI and the Python API (apps/identification.py,
apps/db_commands.py) and the WeSpeaker-compatible facade (apps/speaker.py), checked against
numpy on the Embedder's own embeddings."""

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import python_env, write_tree
from train_utils import TINY_MODEL
from wespeaker_mfcon.apps import speaker
from wespeaker_mfcon.apps.cli import main as cli_main
from wespeaker_mfcon.apps.embedder import load_model
from wespeaker_mfcon.apps.identification import Identifier, decide
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.scoring.calibration import Calibration
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError


def _save_model(path, seed):
    torch.manual_seed(seed)
    model = build_model("mfa_conformer", dict(TINY_MODEL, input_dim=80))
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(torch.randn(8, 120, 80) * 3)
    torch.save({"model": model.state_dict()}, path)


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """An experiment (config, avg_model.pt, a second model other.pt) and 3 speakers' wavs."""
    root = tmp_path_factory.mktemp("exp")
    (root / "models").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(
        {"model": "mfa_conformer", "model_args": dict(TINY_MODEL, input_dim=80)}))
    _save_model(root / "models" / "avg_model.pt", 0)
    _save_model(root / "models" / "other.pt", 1)
    rels = write_tree(str(root / "wavs"), speakers=3, videos=2, utts=2, seconds=1.3)
    wavs = {r[:-4]: str(root / "wavs" / r) for r in rels}       # id1000S/vidV/0000U
    (root / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in wavs.items()))
    return root, wavs


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _cli(argv, capsys):
    cli_main(argv)
    return capsys.readouterr().out.strip().splitlines()


def _enroll_three(model, db, wavs, capsys):
    plan = {"alice": ["id10000/vid0/00001", "id10000/vid0/00002"],
            "bob": ["id10001/vid0/00001"], "carol": ["id10002/vid0/00001"]}
    out = _cli(["enroll", "--model", str(model), "--db", str(db), "--speaker", "alice"] +
               [wavs[u] for u in plan["alice"]], capsys)
    assert out == [f"enrolled alice: 2 enrollment(s) in {db}"]
    with Identifier(load_model(str(model)), str(db)) as ident:           # the same from Python
        for name in ("bob", "carol"):
            assert ident.enroll(name, [wavs[u] for u in plan[name]]).count == 1
    return plan


def test_decide_hand_computed():
    cal = Calibration(["score"], [20.0], -10.0)                  # llr = 20 cos - 10
    result = decide(["a", "b", "c"], [0.9, 0.8, 0.3], cal, p_target=0.01)
    assert [c.llr for c in result.candidates] == pytest.approx([8.0, 6.0, -4.0])
    assert [c.accepted for c in result.candidates] == [True, True, False]  # log(99) = 4.595
    assert result.answer == "a"
    assert str(result).splitlines()[0] == "a llr 8.0000 accept (cosine 0.900000)"
    strict = decide(["a", "b"], [0.9, 0.8], cal, p_target=1e-4)  # threshold log(9999) = 9.21
    assert strict.answer is None and str(strict).splitlines()[-1] == (
        "none of them: no candidate has llr >= 9.2102 (Bayes threshold at p_target 0.0001)")
    plain = decide(["a", "b"], [0.9, 0.8])
    assert [c.accepted for c in plain.candidates] == [None, None] and plain.answer is None
    assert str(plain).splitlines() == ["a cosine 0.900000 -", "b cosine 0.800000 -",
                                       "no decision: no calibration (give a threshold on the "
                                       "cosine)"]
    assert decide(["a", "b"], [0.9, 0.8], threshold=0.85).answer == "a"
    assert decide(["a"], [0.9], threshold=0.95).lines()[-1] == (
        "none of them: no candidate has cosine >= 0.95")


def test_cli_enroll_identify_list_remove_match_numpy(exp, tmp_path, capsys):
    root, wavs = exp
    db = tmp_path / "s.db"
    plan = _enroll_three(root, db, wavs, capsys)
    emb = load_model(str(root))
    means = {n: _unit(_unit([emb.embed_wav(wavs[u]) for u in utts]).mean(0))
             for n, utts in plan.items()}
    query = wavs["id10001/vid1/00002"]
    cos = {n: float(m @ _unit(emb.embed_wav(query))) for n, m in means.items()}
    oracle = sorted(cos, key=cos.get, reverse=True)[:2]
    for search in (["--search", "exact"], ["--search", "index", "--expansion", "16"]):
        out = _cli(["identify", "--model", str(root), "--db", str(db), query, "--top_k", "2"] +
                   search, capsys)
        assert [line.split()[0] for line in out[:2]] == oracle
        assert [float(line.split()[2]) for line in out[:2]] == pytest.approx(
            [cos[n] for n in oracle], abs=2e-6)
        assert out[2].startswith("no decision: no calibration")
    assert _cli(["db", "list", "--db", str(db)], capsys)[1:] == ["alice 2", "bob 1", "carol 1"]
    paths = _cli(["db", "list", "--db", str(db), "--paths"], capsys)[1:]
    assert paths[:2] == [f"alice {wavs['id10000/vid0/00001']}",
                         f"alice {wavs['id10000/vid0/00002']}"]
    assert _cli(["db", "remove", "--db", str(db), "bob"], capsys) == [
        f"removed 1 speaker(s) from {db}"]
    with Identifier(emb, str(db)) as ident:                    # the Python API, same answers
        assert [s.name for s in ident.speakers()] == ["alice", "carol"]
        result = ident.identify(query, top_k=5)
        assert [c.name for c in result.candidates] == sorted(["alice", "carol"], key=cos.get,
                                                             reverse=True)


def test_identify_is_open_set_through_the_calibration(exp, tmp_path, capsys):
    root, wavs = exp
    calibrated = tmp_path / "exp"
    shutil.copytree(root, calibrated, ignore=shutil.ignore_patterns("wavs"))
    (calibrated / "calibration.json").write_text(json.dumps(
        {"score": "raw_cosine", "names": ["score"], "weights": [20.0], "bias": -10.0}))
    db = tmp_path / "s.db"
    _enroll_three(calibrated, db, wavs, capsys)
    query = wavs["id10000/vid0/00001"]                          # enrolled audio itself
    with Identifier(load_model(str(calibrated)), str(db)) as ident:
        best = ident.identify(query, top_k=3).candidates[0]
        assert best.llr == pytest.approx(20 * best.cosine - 10, abs=1e-9)
    out = _cli(["identify", "--model", str(calibrated), "--db", str(db), query], capsys)
    assert out[0] == f"alice llr {best.llr:.4f} accept (cosine {best.cosine:.6f})"
    assert len(out) == 3                                        # 3 candidates, one accepted
    out = _cli(["identify", "--model", str(calibrated), "--db", str(db), query,
                "--p_target", "1e-6"], capsys)                  # threshold 13.8 > any llr
    assert all(" reject " in line for line in out[:3])
    assert out[3].startswith("none of them: no candidate has llr >= 13.8155")


def test_another_model_is_refused_then_reenrolled(exp, tmp_path, capsys):
    root, wavs = exp
    db, other = tmp_path / "s.db", root / "models" / "other.pt"
    _enroll_three(root, db, wavs, capsys)
    proc = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.apps.cli", "identify",
                           "--model", str(other), "--db", str(db), wavs["id10000/vid1/00001"]],
                          capture_output=True, text=True, env=python_env())
    assert proc.returncode == 1 and proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {db}: made with model ")
    assert f"not with {other}" in err[0] and "reenroll" in err[0]
    new = tmp_path / "new.db"
    assert _cli(["db", "reenroll", "--model", str(other), "--db", str(db), "--out", str(new)],
                capsys) == [f"re-enrolled 3 speaker(s) from {db} into {new}"]
    emb = load_model(str(other))
    with Identifier(emb, str(new)) as ident:                    # the new model's embeddings
        assert [(s.name, s.count) for s in ident.speakers()] == [("alice", 2), ("bob", 1),
                                                                 ("carol", 1)]
        stored = {p: e for _, p, e in ident.db.enrollments()}
        for path, e in stored.items():
            np.testing.assert_allclose(e, emb.embed_wav(path), atol=1e-5)
    with pytest.raises(UserError, match="exists"):
        cli_main(["db", "reenroll", "--model", str(other), "--db", str(db), "--out", str(new)])


@pytest.mark.parametrize("argv, message", [
    (["identify", "--db", "{tmp}/none.db", "{wav}"], "{tmp}/none.db: no such speaker database"),
    (["enroll", "--db", "{tmp}/s.db", "--speaker", "a b", "{wav}"], "speaker name 'a b'"),
    (["identify", "--db", "{tmp}/s.db", "{wav}", "--top_k", "0"], "top_k 0: must be >= 1"),
    (["db", "remove", "--db", "{tmp}/s.db", "zed"], "no speaker 'zed'; nothing removed"),
])
def test_cli_mistakes_are_one_error_line(exp, tmp_path, capsys, argv, message):
    root, wavs = exp
    wav = wavs["id10000/vid0/00001"]
    cli_main(["enroll", "--model", str(root), "--db", str(tmp_path / "s.db"), "--speaker", "x",
              wav])
    capsys.readouterr()
    argv = [a.format(tmp=tmp_path, wav=wav) for a in argv]
    if argv[0] != "db":
        argv += ["--model", str(root)]
    with pytest.raises(SystemExit) as stop:
        run_main(cli_main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 1 and len(err) == 1
    assert err[0].startswith("error: ") and message.format(tmp=tmp_path) in err[0]


def test_wespeaker_facade(exp, tmp_path, caplog):
    root, wavs = exp
    model = speaker.load_model(str(root))
    emb = load_model(str(root))
    a, b = wavs["id10000/vid0/00001"], wavs["id10001/vid1/00002"]
    tensor = model.extract_embedding(a)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (16,)
    np.testing.assert_allclose(tensor.numpy(), emb.embed_wav(a), atol=1e-6)
    assert model.compute_similarity(a, b) == pytest.approx((emb.cosine(a, b) + 1) / 2, abs=1e-6)
    names, embs = model.extract_embedding_list(str(root / "wav.scp"))
    assert names == list(wavs) and np.allclose(embs[0], tensor.numpy(), atol=1e-6)
    assert model.recognize(b) == {"name": "", "confidence": 0.0, "cosine": None, "llr": None,
                                  "accepted": None}
    model.register("alice", a)
    model.register("bob", wavs["id10001/vid0/00001"])
    with caplog.at_level(logging.WARNING):
        model.register("alice", b)                              # ignored, as WeSpeaker does
    assert "Speaker alice already registered, ignore" in caplog.text
    assert [(s.name, s.count) for s in model.identifier.speakers()] == [("alice", 1), ("bob", 1)]
    cos = {n: emb.cosine(b, wavs[u]) for n, u in (("alice", "id10000/vid0/00001"),
                                                    ("bob", "id10001/vid0/00001"))}
    best = max(cos, key=cos.get)
    result = model.recognize(b)
    assert result["name"] == best and result["llr"] is None and result["accepted"] is None
    assert result["confidence"] == pytest.approx((cos[best] + 1) / 2, abs=1e-6)
    wespeaker_dir = tmp_path / "wespeaker_model"                # config + avg_model.pt together
    wespeaker_dir.mkdir()
    shutil.copy(root / "config.yaml", wespeaker_dir)
    shutil.copy(root / "models" / "avg_model.pt", wespeaker_dir)
    same = speaker.load_model_local(str(wespeaker_dir)).extract_embedding(a)
    np.testing.assert_allclose(same.numpy(), tensor.numpy(), atol=1e-6)
    with pytest.raises(UserError, match="no model hub"):
        speaker.load_model("english")


def test_identification_eval_matches_numpy(exp, tmp_path):
    """analysis/identification_eval: closed-set top-1 and open-set outcomes recomputed here."""
    from wespeaker_mfcon.analysis import identification_eval

    root, wavs = exp
    calibrated = tmp_path / "exp"
    shutil.copytree(root, calibrated, ignore=shutil.ignore_patterns("wavs"))
    (calibrated / "calibration.json").write_text(json.dumps(
        {"score": "raw_cosine", "names": ["score"], "weights": [20.0], "bias": -19.0,
         "trained_on": "hand-made"}))
    (tmp_path / "utt2spk").write_text("".join(f"{u} {u.split('/')[0]}\n" for u in wavs))
    shutil.copy(root / "wav.scp", tmp_path / "wav.scp")
    result = identification_eval.evaluate(str(calibrated), str(tmp_path), p_targets=[0.5])
    emb = load_model(str(root))
    e = {u: _unit(emb.embed_wav(w)) for u, w in wavs.items()}
    speakers = sorted({u.split("/")[0] for u in wavs})
    model = {s: _unit((e[f"{s}/vid0/00001"] + e[f"{s}/vid0/00002"]) / 2) for s in speakers}
    queries = [u for u in wavs if "/vid1/" in u]

    def best(u, among):
        return max(among, key=lambda s: model[s] @ e[u])
    top1 = np.mean([best(u, speakers) == u.split("/")[0] for u in queries])
    assert result["closed_set"] == {"top1": round(top1, 4), "top5": 1.0, "queries": 6}
    outcomes = dict.fromkeys(identification_eval.OUTCOMES, 0)
    for enrolled in (speakers[0::2], speakers[1::2]):
        for u in queries:
            s = best(u, enrolled)
            answer = s if 20 * (model[s] @ e[u]) - 19 >= 0 else None      # Bayes at p 0.5
            outcomes[identification_eval._outcome(u.split("/")[0], answer,
                                                  u.split("/")[0] in enrolled)] += 1
    rates = result["open_set"]["by_p_target"]["0.5"]
    known = result["open_set"]["known_queries"]
    assert known + result["open_set"]["unknown_queries"] == 12
    assert rates == {o: round(n / (known if o in identification_eval.OUTCOMES[:3] else 12 - known),
                              4) for o, n in outcomes.items()}
    text = identification_eval.render(result)
    assert f"top-1 **{top1:.1%}**" in text and "calibration: hand-made" in text
