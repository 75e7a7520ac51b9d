"""The study scheduler (analysis/study.py) with a stand-in for run.sh: every setting x variant x
seed reaches the recipe with the right options, finished steps are skipped, runs made with
other options are refused, data is made once, models_from scores without training, and the
shipped study files resolve; validation curves and the lambda-study report on real files."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import RECIPE, ROOT, python_env
from analysis_utils import MODEL_ARGS
from wespeaker_mfcon.analysis import study
from wespeaker_mfcon.utils.errors import UserError

FAKE_RUN_SH = r"""#!/usr/bin/env bash
# Stand-in for run.sh: stages 0-1 copy the tiny features; stages 2-4 a fixed tiny model and
# seed-dependent results.json.
set -euo pipefail
stage=0; stop_stage=5; config=""; exp_dir=""; data=data; nj=1; gpus=""; num_avg=1
top_n=1; score_norm_method=asnorm; train_opts=""; mini_opts=""
. tools/parse_options.sh
if [ "$stage" = 0 ]; then
  echo "prep|$data|$stop_stage|$mini_opts" >> calls.log
  mkdir -p "$data/train" "$data/test/trials"
  cp "$TINY_FEATS" "$data/train/feats.scp"; cp "$TINY_FEATS" "$data/test/feats.scp"
  cp "$TINY_TRIALS" "$data/test/trials/t.kaldi"
  exit 0
fi
echo "$config|$train_opts|$stage-$stop_stage|$num_avg|$top_n|$data" >> calls.log
seed=$(echo "$train_opts" | sed -n 's/.*--seed=\([0-9]*\).*/\1/p')
mkdir -p "$exp_dir/models" "$exp_dir/scores"
[ -f "$exp_dir/models/model_1.pt" ] || echo "$exp_dir" > "$exp_dir/models/model_1.pt"
cp "$TINY_EXP/config.yaml" "$exp_dir/config.yaml"
cp "$TINY_EXP/models/avg_model.pt" "$exp_dir/models/avg_model.pt"
case "$config" in *mfcon*) base=8 ;; *) base=10 ;; esac
echo "{\"t\": {\"cosine\": {\"eer\": $((base + seed)), \"min_dcf_0.01\": 0.5}}}" \
  > "$exp_dir/scores/results.json"
if [ "$seed" = 2 ]; then   # seed 2 brings its own block_eer.json (must not be recomputed)
  echo '{"trials": "t", "blocks": [{"block": 1, "eer": 30.0}], "embedding": {"eer": 20.0}}' \
    > "$exp_dir/block_eer.json"
fi
"""

STUDY = {"out": "exp/s", "seeds": [1, 2], "num_avg": 2,
         "data": {"data80": "--num_test_spk 80"},
         "settings": {"t": {"title": "tiny", "data": "data80", "variants": "conf/compare/v.yaml",
                            "train_opts": "--num_epochs 1"}}}


def _recipe(setup, tmp_path, spec=STUDY):
    """A recipe dir with the stand-in run.sh, two configs and a variant file."""
    recipe = tmp_path / "recipe"
    (recipe / "conf" / "compare").mkdir(parents=True)
    os.symlink(os.path.join(ROOT, "tools"), recipe / "tools")
    (recipe / "run.sh").write_text(FAKE_RUN_SH)
    for name in ("base.yaml", "mfcon.yaml"):
        (recipe / "conf" / name).write_text("seed: 1\nnum_epochs: 1\nmfcon_args: {weight: 0}\n")
    (recipe / "conf" / "compare" / "v.yaml").write_text(
        "baseline: {config: conf/base.yaml}\n"
        "mfcon: {config: conf/mfcon.yaml, overrides: '--mfcon_args.weight 0.01'}\n")
    (recipe / "study.yaml").write_text(yaml.safe_dump(spec))
    env = python_env()
    env.update(TINY_EXP=str(setup["exp"]), TINY_FEATS=str(setup["scp"]),
               TINY_TRIALS=str(setup["trials"]))
    return recipe, env


def _run(recipe, env, *args):
    return subprocess.run([sys.executable, "-m", "wespeaker_mfcon.analysis.study", *args],
                          cwd=recipe, env=env, capture_output=True, text=True, timeout=300)


def test_every_run_once_with_its_options_then_resumed(tiny_setup, tmp_path):
    recipe, env = _recipe(tiny_setup, tmp_path)
    proc = _run(recipe, env, "study.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = (recipe / "calls.log").read_text().splitlines()
    assert calls == [
        "prep|data80|1|--num_test_spk 80",
        "conf/base.yaml|--seed=1 --num_epochs=1|2-4|2|100|data80",
        "conf/base.yaml|--seed=2 --num_epochs=1|2-4|2|100|data80",
        "conf/mfcon.yaml|--seed=1 --mfcon_args.weight=0.01 --num_epochs=1|2-4|2|100|data80",
        "conf/mfcon.yaml|--seed=2 --mfcon_args.weight=0.01 --num_epochs=1|2-4|2|100|data80"]
    summary = json.loads((recipe / "exp/s/t/comparison.json").read_text())
    eer = summary["variants"]["mfcon"]["results"]["t"]["cosine"]["eer"]
    assert eer["values"] == [9.0, 10.0]
    assert eer["rel_change_pct"] == pytest.approx((9.5 - 11.5) / 11.5 * 100)
    blocks = json.loads((recipe / "exp/s/t/baseline/seed1/block_eer.json").read_text())
    assert len(blocks["blocks"]) == MODEL_ARGS["num_blocks"] and blocks["trials"] == "t"
    kept = json.loads((recipe / "exp/s/t/mfcon/seed2/block_eer.json").read_text())
    assert kept["blocks"] == [{"block": 1, "eer": 30.0}]          # existed: not recomputed

    proc = _run(recipe, env, "study.yaml")                        # all done: nothing runs
    assert proc.returncode == 0 and len((recipe / "calls.log").read_text().splitlines()) == 5
    assert "done already" in proc.stderr
    dry = _run(recipe, env, "study.yaml", "--dry_run", "--variants", "mfcon")
    assert dry.stdout.splitlines() == [
        "t/mfcon/seed1: done: conf/mfcon.yaml --seed=1 --mfcon_args.weight=0.01 --num_epochs=1",
        "t/mfcon/seed2: done: conf/mfcon.yaml --seed=2 --mfcon_args.weight=0.01 --num_epochs=1"]

    changed = dict(STUDY, settings={"t": dict(STUDY["settings"]["t"], train_opts="--num_epochs 2")})
    (recipe / "study.yaml").write_text(yaml.safe_dump(changed))
    proc = _run(recipe, env, "study.yaml", "--seeds", "1")
    assert proc.returncode == 1 and "was made with" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: 2 of 2 runs failed; the first: ")


def test_a_missing_data_dir_not_in_the_study_is_one_line(tiny_setup, tmp_path):
    spec = dict(STUDY, data={})
    recipe, env = _recipe(tiny_setup, tmp_path, spec)
    proc = _run(recipe, env, "study.yaml")
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: data80: no feats.scp; run stages 0-1 for it first, "
                                   "or list it under 'data' in study.yaml")


def test_models_from_scores_another_setting_s_models_without_training(tiny_setup, tmp_path):
    spec = dict(STUDY, data={"data80": "", "data_h": "--first_test_spk 80"}, settings={
        "t": STUDY["settings"]["t"],
        "h": dict(STUDY["settings"]["t"], data="data_h", models_from="t")})
    recipe, env = _recipe(tiny_setup, tmp_path, spec)
    proc = _run(recipe, env, "study.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for v in ("baseline", "mfcon"):
        model = recipe / f"exp/s/h/{v}/seed1/models/model_1.pt"
        assert model.read_text().strip() == f"exp/s/t/{v}/seed1"    # linked, not retrained
        assert os.path.samefile(model, recipe / f"exp/s/t/{v}/seed1/models/model_1.pt")
        assert (recipe / f"exp/s/h/{v}/seed1/scores/results.json").is_file()
    assert (recipe / "exp/s/h/comparison.json").is_file()


def test_the_shipped_studies_resolve(monkeypatch):
    monkeypatch.chdir(RECIPE)
    weighting = study.load_study("conf/studies/weighting.yaml")
    assert weighting.report == "weighting" and weighting.settings["t80_aug"].baseline == \
        "aug_baseline"
    t80 = [v for v, _, _ in weighting.settings["t80"].variants]
    assert t80.count("baseline") == 1 and "mfcon_grad_ratio" in t80 and "mfcon_l3.0" in t80
    runs = study.plan(weighting, ["medium"], [1], ["mfcon_l10"])
    assert [r.train_opts for r in runs] == [["--seed=1", "--mfcon_args.weight=10.0",
                                             "--model_args.num_blocks=6",
                                             "--model_args.output_size=144"]]
    lam = study.load_study("conf/studies/lambda_speakers.yaml")
    assert [lam.settings[s].data for s in ("s40", "s200", "s600")] == \
        ["data_ls40", "data_ls200", "data_ls600"]
    assert all(s.validation == "data_ldev" for n, s in lam.settings.items()
               if not n.startswith("heldout"))
    assert lam.report == "lambda_speakers" and lam.settings["heldout_s120"].seeds == [1, 2, 3]
    assert [v for v, _, _ in lam.settings["heldout_s120"].variants] == ["baseline", "mfcon_rule"]
    t80h = study.load_study("conf/studies/mfcon_t80.yaml")
    assert t80h.settings["h80"].models_from == "t80"


def test_bad_study_files_are_one_line_errors(tmp_path):
    path = tmp_path / "s.yaml"
    for spec, message in [
        ({"settings": {}}, "'settings' must map"),
        ({"settings": {"a": {"data": "d"}}}, "setting a: missing 'variants'"),
        ({"settings": {"a": {"data": "d", "variants": "v", "seed": 1}}}, "unknown keys ['seed']"),
        ({"outt": 1, "settings": {"a": {}}}, "unknown keys ['outt']"),
        ({"seeds": [-1], "settings": {"a": {}}}, "seeds: expected a list of non-negative"),
    ]:
        path.write_text(yaml.safe_dump(spec))
        with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
            study.load_study(str(path))


def test_validation_curve_scores_every_epoch_checkpoint(tiny_setup, tmp_path):
    """Epochs in numeric order; each epoch's EER is block_eer's of that checkpoint."""
    from wespeaker_mfcon.analysis import block_eer
    from wespeaker_mfcon.analysis.validation_curve import validation_curve
    from wespeaker_mfcon.models.embedding_net import load_embedding_net
    from wespeaker_mfcon.models import build_model

    exp = tmp_path / "exp"
    shutil.copytree(tiny_setup["exp"], exp)
    for epoch in (1, 2, 10):
        torch.manual_seed(epoch)
        torch.save({"model": build_model("mfa_conformer", MODEL_ARGS).state_dict()},
                   exp / "models" / f"model_{epoch}.pt")
    curve = validation_curve(str(exp), tiny_setup["scp"], tiny_setup["trials"])
    assert [r["epoch"] for r in curve["epochs"]] == [1, 2, 10]
    enroll, test, labels = block_eer.read_trials(tiny_setup["trials"])
    net, _ = load_embedding_net(str(exp / "models/model_10.pt"), str(exp / "config.yaml"))
    ref = block_eer.block_eer(net.model, tiny_setup["feats"], enroll, test, labels)
    assert curve["epochs"][-1]["eer"] == pytest.approx(ref["embedding"]["eer"])
    assert curve["epochs"][-1]["blocks"] == pytest.approx([b["eer"] for b in ref["blocks"]])
    assert len({r["eer"] for r in curve["epochs"]}) > 1              # different checkpoints
