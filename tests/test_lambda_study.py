"""The lambda-study report (analysis/lambda_study.py) on a hand-made study: the best constant,
each seed's best, the gains, the diagnostics of the last epoch and the convergence check,
against values worked out by hand; the docs renderer shows them."""

import json
import os
import shutil

import pytest
import yaml

from wespeaker_mfcon.analysis import lambda_study, study
from wespeaker_mfcon.analysis.summarize_comparison import build_summary

# cosine EER per variant and seed (seeds 1, 2); AS-norm = cosine - 1
EERS = {"baseline": [10.0, 12.0], "mfcon_l1": [9.0, 9.6], "mfcon_l3": [8.0, 10.0],
        "mfcon_l10": [8.5, 9.5], "mfcon_grad_ratio": [9.0, 10.0]}
# the held-out check (seeds 1-3): the rule beats seeds 1 and 3 by 20%, loses seed 2 by 5%
HELDOUT = {"baseline": [10.0, 10.0, 12.0], "mfcon_rule": [8.0, 10.5, 9.6]}


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("conf/compare")
    with open("conf/c.yaml", "w") as f:
        f.write("seed: 1\n")
    with open("conf/compare/v.yaml", "w") as f:
        yaml.safe_dump({v: {"config": "conf/c.yaml"} for v in EERS}, f)
    os.makedirs("data_s/train")
    with open("data_s/train/spk2utt", "w") as f:
        f.writelines(f"spk{i} u{i}\n" for i in range(40))
    with open("conf/compare/rule.yaml", "w") as f:
        yaml.safe_dump({v: {"config": "conf/c.yaml"} for v in HELDOUT}, f)
    spec = {"out": "exp/l", "seeds": [1, 2], "report": "lambda_speakers", "settings": {
        "s40": {"data": "data_s", "variants": "conf/compare/v.yaml"},
        "s40_2x": {"data": "data_s", "variants": "conf/compare/v.yaml"},
        "heldout_s40": {"title": "held out", "data": "data_s", "seeds": [1, 2, 3],
                        "variants": "conf/compare/rule.yaml"}}}
    with open("study.yaml", "w") as f:
        yaml.safe_dump(spec, f)
    runs = {}
    for v, eers in EERS.items():
        runs[v] = []
        for seed, eer in zip((1, 2), eers):
            exp = f"exp/l/s40/{v}/seed{seed}"
            os.makedirs(exp)
            rows = [{"epoch": e, "step": 3 * e, "train_acc": 0.5 * e, "lambda": seed * e,
                     "ratio": 0.1 * e * seed, "raw_ratio": 0.2, "supcon_rel_chance_0": 0.4}
                    for e in (1, 2)]
            with open(f"{exp}/diagnostics.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            with open(f"{exp}/validation.json", "w") as f:     # 6 epochs: 20 -> 15 + seed
                json.dump({"epochs": [{"epoch": e, "eer": 20.0 - e + seed * (e == 6)}
                                      for e in range(1, 7)]}, f)
            runs[v].append({"seed": str(seed), "exp_dir": exp, "blocks": None, "results": {
                "t": {"cosine": {"eer": eer}, "asnorm": {"eer": eer - 1.0}}}})
    shutil.copytree("exp/l/s40", "exp/l/s40_2x")     # the control: the same curves
    heldout = {v: [{"seed": str(seed), "exp_dir": f"exp/l/heldout_s40/{v}/seed{seed}",
                    "blocks": None,
                    "results": {"t": {"cosine": {"eer": e}, "asnorm": {"eer": e - 1.0}}}}
                   for seed, e in zip((1, 2, 3), eers)] for v, eers in HELDOUT.items()}
    os.makedirs("exp/l/heldout_s40")
    with open("exp/l/heldout_s40/comparison.json", "w") as f:
        json.dump(build_summary(heldout, "baseline"), f)
    for name in ("s40", "s40_2x"):
        with open(f"exp/l/{name}/comparison.json", "w") as f:
            json.dump(build_summary(runs, "baseline"), f)
    return study.load_study("study.yaml")


def test_best_lambda_gains_diagnostics_and_convergence(tiny_study):
    data = lambda_study.write_study_report(
        tiny_study, {s: f"exp/l/{s}/comparison.json" for s in ("s40", "s40_2x")})
    (p,) = data["points"]
    assert p["speakers"] == 40 and p["cohort"] == 40 and p["seeds"] == ["1", "2"]
    # mean cosine: l1 9.3, l3 9.0, l10 9.0 -> the first lowest, 3; seed 1: l3 8.0, seed 2: l1 9.6
    assert p["lambdas"] == [1.0, 3.0, 10.0] and p["best_lambda"] == 3.0
    assert p["seed_best_lambda"] == [3.0, 10.0] and p["at_edge"] is False
    # gains of l3 vs baseline, per seed: 8/10 - 1 = -20 %, 10/12 - 1 = -16.67 %
    assert p["gain_pct"]["cosine"]["values"] == pytest.approx([-20.0, -100 / 6])
    assert p["gain_pct"]["asnorm"]["values"] == pytest.approx([100 * (7 / 9 - 1),
                                                               100 * (9 / 11 - 1)])
    diag = p["diagnostics"]["mfcon_l3"]                 # epoch 2, mean over seeds 1 and 2
    assert diag["lambda"] == pytest.approx(3.0) and diag["ratio"] == pytest.approx(0.3)
    assert diag["train_acc"] == pytest.approx(1.0)
    conv = p["convergence"]                             # last 19 - 5 + seed; two epochs back 16
    assert conv["epochs"] == 6 and conv["last"] == pytest.approx(15.5)
    assert conv["last_third_change"] == pytest.approx(-0.5)
    assert conv["last_2x"] == pytest.approx(15.5)
    text = open("exp/l/lambda_speakers.md").read()
    assert "| 40 | 3 | 3 / 10 | -18.3 ± 2.4 |" in text
    assert "| mfcon_l3 | 2 | 9.00 ± 1.41 | 8.00 ± 1.41 |" in text
    assert os.path.getsize("exp/l/lambda_speakers.png") > 10000


def test_trajectory_and_the_held_out_check(tiny_study):
    data = lambda_study.collect(tiny_study, {
        n: f"exp/l/{n}/comparison.json" for n in ("s40", "s40_2x", "heldout_s40")})
    traj = data["points"][0]["trajectory"]["mfcon_l3"]
    # epochs 1-2: acc 0.5 and 1.0 -> only epoch 1 learns; ratio 0.1 e s: start = 0.1 s
    assert traj["ratio_start"] == pytest.approx(0.15) and traj["raw_start"] == 0.2
    assert traj["ratio_learning"] == pytest.approx(0.15) and traj["learning_epochs"] == 1
    (h,) = data["heldout"]
    assert h["rule"] == "mfcon_rule" and h["speakers"] == 40
    assert h["gain_pct"]["cosine"]["values"] == pytest.approx([-20.0, 5.0, -20.0])
    assert h["gain_pct"]["cosine"]["mean"] == pytest.approx(-35 / 3)
    assert not h["every_seed_better"] and not h["goal_met"]
    text = lambda_study.render_heldout(data)
    assert "| gain (%) | -20.0 / +5.0 / -20.0 |" in text and "not met (every seed better: no)" in text
    headline = lambda_study.render_headline(data)
    assert "| 40 | 3 | 2 / 2 | 11.00 ± 1.41 | 9.00 ± 1.41 | -18.3% | -20.2% |" in headline
    assert "| 40, held out | rule (mfcon_rule) | 3 / 3 | 10.67 ± 1.15 | 9.37 ± 1.27 | -11.7% |" in headline
    assert "| 40 | 6 | 15.50 | -0.50 | 15.50 | 11.00 ± 1.41 | 11.00 ± 1.41 |" in \
        lambda_study.render_convergence(data)
    assert "| 40 | mfcon_l3 (best) | 0.200 | 0.15 | 0.15 | 1 | 0.400 | 1.000 |" in \
        lambda_study.render_diagnostics(data)


def test_an_adaptive_weighting_against_the_baseline_and_its_lambda(tiny_study):
    data = lambda_study.collect(tiny_study, {"s40": "exp/l/s40/comparison.json"})
    (p,) = data["points"]
    assert list(p["adaptive_gain_pct"]) == ["mfcon_grad_ratio"]     # constants are not in it
    # grad_ratio 9, 10 against the baseline 10, 12: -10 % and -16.67 %
    gain = p["adaptive_gain_pct"]["mfcon_grad_ratio"]
    assert gain["values"] == pytest.approx([-10.0, -100 / 6])
    traj = p["trajectory"]["mfcon_grad_ratio"]        # lambda = seed x epoch; epoch 1 learns
    assert (traj["lambda_start"], traj["lambda_learning"], traj["lambda_last"]) == \
        pytest.approx((1.5, 1.5, 3.0))
    assert "| 40 | mfcon_grad_ratio | 2 | 9.50 ± 0.71 | -13.3 ± 4.7 | 9.00 ± 1.41 (lambda 3) " \
        "| 1.5 / 1.5 / 3 | 0.15 |" in lambda_study.render_adaptive(data)


def test_gains_pair_each_seed_with_the_baseline_of_the_same_seed():
    """A variant trained with seed 1 only is compared with the baseline's seed 1, not its mean."""
    g = lambda_study.relative_gains({"1": 10.0, "2": 20.0}, {"1": 8.0})
    assert g == {"mean": pytest.approx(-20.0), "values": [pytest.approx(-20.0)], "seeds": ["1"],
                 "std": None}


def test_the_rule_and_the_probe_tables():
    """rule_weight: the target over the raw ratio at step 0 (lambda 30 at the small config's
    0.313); the probe tables show the measured ratios and the rule's lambda."""
    from wespeaker_mfcon.analysis import paper_gradients
    from wespeaker_mfcon.losses.weighting import rule_weight
    assert rule_weight(0.313) == pytest.approx(30.03, abs=0.01)
    assert rule_weight(0.25, target=5.0) == pytest.approx(20.0)
    probe = {"config": "conf/x.yaml", "classes": 1211, "batch": 200, "sampler": "pk",
             "frames": 100, "lambda": 0.01, "temperature": 0.07, "host": "h", "target_ratio": 5.0,
             "rows": [{"step": 0, "lr": 1e-6, "loss_cls": 15.4, "train_acc": 0.0,
                       "supcon_rel_chance_0": 0.5, "supcon_rel_chance_1": 0.6,
                       "raw_ratio": 0.25, "ratio": 0.0025}]}
    text = paper_gradients.render(probe)
    assert "| 0 | 1.0e-06 | 15.40 | 0.000 | 0.550 | 0.250 | 0.0025 |" in text
    assert "gives lambda 20.0 for this config" in text
    assert "| x.yaml | 1211 | 200 | 100 | 15.40 | 0.250 | 20.0 |" in \
        paper_gradients.render_step0({"probes": [probe]})


def test_the_best_constant_is_chosen_on_the_seeds_every_constant_has():
    """lambda 10 has seeds 1 and 2, lambda 3 seed 1 only: they are compared on seed 1."""
    def variant(values, seeds):
        return {"seeds": seeds, "results": {"t": {"cosine": {"eer": {
            "mean": sum(values) / len(values), "std": None, "values": values}},
            "asnorm": {"eer": {"mean": sum(values) / len(values), "std": None,
                               "values": values}}}}}
    variants = {"baseline": variant([10.0, 10.0], ["1", "2"]),
                "mfcon_l3": variant([8.0], ["1"]), "mfcon_l10": variant([7.9, 9.0], ["1", "2"])}
    out = lambda_study.best_constant(variants, "baseline", {3.0: "mfcon_l3", 10.0: "mfcon_l10"})
    assert out["best_lambda"] == 10.0 and out["seed_best_lambda"] == [10.0]
    assert out["gain_pct"]["cosine"]["values"] == [pytest.approx(-21.0), pytest.approx(-10.0)]
