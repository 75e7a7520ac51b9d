"""Fine-tuning from a checkpoint (init_from): new speakers, large-margin fine-tuning, warm-up."""

import os
import shutil

import pytest
import torch
import yaml

import train_utils
from train_utils import make_feats_dir, tiny_config
from wespeaker_mfcon.training.average import average_last
from wespeaker_mfcon.training.loop import EpochRunner
from wespeaker_mfcon.training.run import TrainingRun
from wespeaker_mfcon.utils.checkpoint import load_checkpoint, mean_state_dicts
from wespeaker_mfcon.config import load_train_config, parse_overrides
from wespeaker_mfcon.utils.errors import UserError


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    """A 2-epoch run on 6 speakers (model_1.pt, model_2.pt, avg_model.pt of both) and a data
    dir of 4 other speakers."""
    root = tmp_path_factory.mktemp("pre")
    data = make_feats_dir(str(root / "data_a"), num_spk=6)
    new_data = make_feats_dir(str(root / "data_b"), num_spk=4, seed=1)
    conf = tiny_config(str(root / "c.yaml"))
    train_utils.run_train(conf, root / "exp", data)
    models = root / "exp" / "models"
    average_last(str(models), 2, str(models / "avg_model.pt"))
    return {"root": root, "data": data, "new_data": new_data, "conf": conf,
            "ckpt": str(models / "model_2.pt"), "avg": str(models / "avg_model.pt")}


def new_run(tmp_path, data, overrides, **conf_extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = tiny_config(str(tmp_path / "c.yaml"), **conf_extra)
    return TrainingRun(conf, str(tmp_path / "exp"), data, "cpu", overrides)


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_new_speakers_get_a_new_head_and_the_checkpoint_backbone(pre, tmp_path, caplog):
    caplog.set_level("INFO")
    run = new_run(tmp_path / "ft", pre["new_data"], {"init_from": pre["ckpt"]})
    rng_after_init = torch.get_rng_state()
    scratch = new_run(tmp_path / "scratch", pre["new_data"], {})
    state = load_checkpoint(pre["ckpt"])
    assert_same(run.net.model.state_dict(), state["model"])        # step 0: the checkpoint's
    assert_same(run.net.mfcon.state_dict(), state["mfcon"])        # init_mfcon_heads: default on
    assert run.net.projection.weight.shape == (4, 16) and run.conf.num_classes == 4
    # the new head is the one a run from scratch draws: init_from consumes no random numbers
    assert_same(run.net.projection.state_dict(), scratch.net.projection.state_dict())
    assert torch.equal(rng_after_init, torch.get_rng_state())
    log = caplog.text
    assert f"initialized from {pre['ckpt']}: backbone, MFCon heads; new: classification head" in log
    no_heads = new_run(tmp_path / "nh", pre["new_data"],
                       {"init_from": pre["ckpt"], "init_mfcon_heads": False})
    assert_same(no_heads.net.mfcon.state_dict(), scratch.net.mfcon.state_dict())


def test_averaged_checkpoint_heads_come_from_the_epochs_it_averaged(pre, tmp_path):
    run = new_run(tmp_path, pre["data"], {"init_from": pre["avg"], "init_projection": True})
    parts = [load_checkpoint(str(pre["root"] / "exp" / "models" / f"model_{e}.pt"))
             for e in (1, 2)]
    assert_same(run.net.model.state_dict(), load_checkpoint(pre["avg"])["model"])
    assert torch.allclose(run.net.projection.weight,
                          (parts[0]["projection"]["weight"] + parts[1]["projection"]["weight"]) / 2)
    assert_same(run.net.mfcon.state_dict(), mean_state_dicts([p["mfcon"] for p in parts]))
    # alone (its epochs not beside it) it has no heads: init_projection cannot be met
    alone = tmp_path / "alone" / "avg.pt"
    alone.parent.mkdir()
    shutil.copy(pre["avg"], alone)
    with pytest.raises(UserError, match="init_projection: the checkpoint has no classification"):
        new_run(tmp_path / "b", pre["data"], {"init_from": str(alone), "init_projection": True})


def test_init_projection_needs_the_same_speakers_and_head_shape(pre, tmp_path):
    with pytest.raises(UserError) as e:
        new_run(tmp_path / "a", pre["new_data"], {"init_from": pre["ckpt"],
                                                  "init_projection": True})
    assert "init_projection: the speakers of" in str(e.value) and "(6 vs 4)" in str(e.value)
    bare = tmp_path / "bare" / "m.pt"                  # no config.yaml / spk2id beside it
    bare.parent.mkdir()
    shutil.copy(pre["ckpt"], bare)
    with pytest.raises(UserError) as e:
        new_run(tmp_path / "b", pre["new_data"], {"init_from": str(bare), "init_projection": True})
    assert str(e.value) == (f"{bare}: init_projection: its classification head has 6 classes, "
                            "this run 4 (num_classes); new speakers need a new head: "
                            "init_projection: false")


def test_architecture_mismatch_is_one_line_naming_parameter_shapes_and_key(pre, tmp_path):
    from train_utils import TINY_MODEL
    wider = {"model_args": dict(TINY_MODEL, output_size=48)}
    with pytest.raises(UserError) as e:
        new_run(tmp_path / "a", pre["new_data"], {"init_from": pre["ckpt"]}, **wider)
    message = str(e.value)
    assert message.startswith(f"{pre['ckpt']}: its model does not fit this config's: model.")
    assert "(32, 1, 3, 3) in the checkpoint, (48, 1, 3, 3) here" in message
    assert message.endswith("differs from " + str(pre["root"] / "exp" / "config.yaml")
                            + ": model_args.output_size (32 there, 48 here)")
    assert "\n" not in message
    bare = tmp_path / "bare" / "m.pt"
    bare.parent.mkdir()
    shutil.copy(pre["ckpt"], bare)
    with pytest.raises(UserError, match=r"here; probably model_args.output_size differs$"):
        new_run(tmp_path / "b", pre["new_data"], {"init_from": str(bare)}, **wider)
    deeper = {"model_args": dict(TINY_MODEL, num_blocks=3)}
    with pytest.raises(UserError, match=r"model.blocks.2.\S+ is missing in the checkpoint, "
                                        r".*model_args.num_blocks \(2 there, 3 here\)"):
        new_run(tmp_path / "c", pre["new_data"], {"init_from": pre["ckpt"]}, **deeper)
    torch.save({"weights": {}}, str(tmp_path / "other.pt"))
    with pytest.raises(UserError, match="not a checkpoint of this toolkit"):
        new_run(tmp_path / "d", pre["new_data"], {"init_from": str(tmp_path / "other.pt")})


def test_frozen_backbone_for_n_steps_then_it_trains(pre, tmp_path):
    run = new_run(tmp_path, pre["new_data"], {"init_from": pre["ckpt"],
                                              "freeze_backbone_steps": 2})
    backbone, head, mfcon = params(run.net.model), params(run.net.projection), params(run.net.mfcon)
    assert run.steps_per_epoch == 2
    for step, batch in enumerate(run.loader):                     # epoch 1: steps 0 and 1
        run.runner.step(*batch, step)
    assert_same(params(run.net.model), backbone)
    assert not torch.equal(params(run.net.projection)["weight"], head["weight"])
    assert any(not torch.equal(v, mfcon[k]) for k, v in params(run.net.mfcon).items())
    assert not any(p in run.optimizer.state for p in run.net.model.parameters())
    run.sampler.set_epoch(1, 0)
    run.runner.step(*next(iter(run.loader)), 2)
    changed = [not torch.equal(v, backbone[k]) for k, v in params(run.net.model).items()]
    assert sum(changed) > 0.9 * len(changed)


def run_train(conf, exp, data, *args):
    train_utils.run_train(conf, exp, data, *args)


def killed_run(monkeypatch, after_steps, *args):
    """Run train, raising KeyboardInterrupt at step after_steps + 1."""
    real_step, calls = EpochRunner.step, []

    def dying_step(self, *step_args):
        if len(calls) == after_steps:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(self, *step_args)

    monkeypatch.setattr(EpochRunner, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_train(*args)
    monkeypatch.setattr(EpochRunner, "step", real_step)


def test_fine_tuning_resumed_in_and_after_the_warm_up_equals_an_unbroken_run(
        pre, tmp_path, monkeypatch):
    conf = tiny_config(str(tmp_path / "c.yaml"), save_interval_steps=1)
    ft = ("--init_from", pre["ckpt"], "--freeze_backbone_steps", "2")   # 2 steps per epoch
    run_train(conf, tmp_path / "straight", pre["new_data"], *ft)
    assert load_train_config(str(tmp_path / "straight" / "config.yaml")).init_from == pre["ckpt"]
    run_train(conf, tmp_path / "after", pre["new_data"], *ft, "--num_epochs", "1")  # step 2
    run_train(conf, tmp_path / "after", pre["new_data"], *ft)
    killed_run(monkeypatch, 1, conf, tmp_path / "inside", pre["new_data"], *ft)     # step 1
    assert sorted(os.listdir(tmp_path / "inside" / "models")) == ["step_1.pt"]
    run_train(conf, tmp_path / "inside", pre["new_data"], *ft)
    final = load_checkpoint(str(tmp_path / "straight" / "models" / "model_2.pt"))
    for name in ("after", "inside"):
        state = load_checkpoint(str(tmp_path / name / "models" / "model_2.pt"))
        for part in ("model", "projection", "mfcon"):
            assert_same(state[part], final[part])
    log = (tmp_path / "inside" / "train.log").read_text()
    assert f"init_from {pre['ckpt']} not used (a fresh run only)" in log
    assert "backbone frozen until step 2" in log and "step 2: the backbone is unfrozen" in log


def test_large_margin_run_from_the_averaged_model_resumes_after_a_kill(pre, tmp_path, monkeypatch):
    lm = {"dataset_args": {"num_frames": 80, "sampler": "pk", "spk_per_batch": 3,
                           "utts_per_spk": 2},
          "projection_args": {"project_type": "am_softmax", "scale": 30.0, "margin": 0.5},
          "optimizer_args": {"lr": 0.0005}, "scheduler_args": {"decay": "none"},
          "init_from": pre["avg"], "init_projection": True, "save_interval_steps": 2,
          "num_epochs": 1}
    conf = tiny_config(str(tmp_path / "lm.yaml"), **lm)
    run_train(conf, tmp_path / "straight", pre["data"])
    killed_run(monkeypatch, 3, conf, tmp_path / "killed", pre["data"])    # after step_2.pt
    assert sorted(os.listdir(tmp_path / "killed" / "models")) == ["step_2.pt"]
    run_train(conf, tmp_path / "killed", pre["data"])
    a = load_checkpoint(str(tmp_path / "straight" / "models" / "model_1.pt"))
    b = load_checkpoint(str(tmp_path / "killed" / "models" / "model_1.pt"))
    for part in ("model", "projection", "mfcon"):
        assert_same(a[part], b[part])
    log = (tmp_path / "straight" / "train.log").read_text()
    assert "backbone, classification head, MFCon heads (heads averaged from epochs [1, 2])" in log
    assert "margin 0.500" in log


@pytest.mark.parametrize("tokens, expected", [
    (["--init_projection", "true"], "override --init_projection: needs init_from"),
    (["--freeze_backbone_steps", "5"], "override --freeze_backbone_steps: needs init_from"),
    (["--init_from", "x.pt", "--freeze_backbone_steps", "-1"],
     "override --freeze_backbone_steps: must be >= 0, got -1"),
    (["--init_from", "''"], "override --init_from: must be a checkpoint path or null"),
    (["--init_from", "3"], "override --init_from: must be str, got int 3"),
    (["--init_mfcon_heads", "yes please"], "override --init_mfcon_heads: must be bool"),
    (["--init_fom", "x.pt"], "override --init_fom: unknown key (did you mean 'init_from'?)"),
])
def test_fine_tuning_keys_are_validated(tmp_path, tokens, expected):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    with pytest.raises(UserError) as e:
        load_train_config(conf, parse_overrides(tokens))
    assert str(e.value).startswith(expected), str(e.value)


def test_wespeaker_model_init_is_init_from(tmp_path):
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump({"model_init": "exp/x/models/avg_model.pt"}))
    assert load_train_config(str(path)).init_from == "exp/x/models/avg_model.pt"
