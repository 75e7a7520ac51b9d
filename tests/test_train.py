import os
import subprocess
import sys

import pytest
import torch

from conftest import python_env
from train_utils import make_feats_dir, tiny_config
from wespeaker_mfcon.bin.average_model import main as average_main
from wespeaker_mfcon.bin.train import main as train_main
from wespeaker_mfcon.trainer import EpochRunner
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.utils.config import load_config
from wespeaker_mfcon.utils.errors import UserError


@pytest.fixture(scope="module")
def feats_dir(tmp_path_factory):
    return make_feats_dir(str(tmp_path_factory.mktemp("data") / "train"))


def run_train(conf, exp, data, *overrides):
    train_main(["--config", conf, "--exp_dir", str(exp), "--train_data", data, *overrides])


def model_params(path):
    return load_checkpoint(path)["model"]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_config_and_checkpoints_are_written(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    run_train(conf, tmp_path / "exp", feats_dir, "--num_epochs", "2")
    saved = load_config(str(tmp_path / "exp" / "config.yaml"))
    assert saved["num_classes"] == 6 and saved["num_epochs"] == 2
    state = load_checkpoint(str(tmp_path / "exp" / "models" / "model_2.pt"))
    assert state["epoch"] == 2 and state["step"] == 2 * 4 and state["mfcon"]
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "epoch 2 done: loss" in log and " mfcon " in log and " margin 0.200" in log


def test_resume_after_a_stop_equals_an_unbroken_run(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    run_train(conf, tmp_path / "straight", feats_dir, "--num_epochs", "2")
    run_train(conf, tmp_path / "broken", feats_dir, "--num_epochs", "1")
    run_train(conf, tmp_path / "broken", feats_dir, "--num_epochs", "2")
    assert_same_state(model_params(str(tmp_path / "straight/models/model_2.pt")),
                      model_params(str(tmp_path / "broken/models/model_2.pt")))


def test_killed_mid_epoch_resumes_to_the_same_parameters(feats_dir, tmp_path, monkeypatch):
    conf = tiny_config(str(tmp_path / "c.yaml"), save_interval_steps=3)
    run_train(conf, tmp_path / "straight", feats_dir, "--num_epochs", "2")
    real_step, calls = EpochRunner.step, []

    def dying_step(self, *args):
        if len(calls) == 6:  # killed during step 7 of 8 (epoch 2, after batch 2)
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(self, *args)

    monkeypatch.setattr(EpochRunner, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_train(conf, tmp_path / "killed", feats_dir, "--num_epochs", "2")
    assert sorted(os.listdir(tmp_path / "killed/models")) == ["model_1.pt", "step_6.pt"]
    monkeypatch.setattr(EpochRunner, "step", real_step)
    run_train(conf, tmp_path / "killed", feats_dir, "--num_epochs", "2")
    assert "resumed from" in (tmp_path / "killed/train.log").read_text()
    assert_same_state(model_params(str(tmp_path / "straight/models/model_2.pt")),
                      model_params(str(tmp_path / "killed/models/model_2.pt")))


def test_corrupt_checkpoint_is_a_clear_error_and_the_previous_one_survives(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"), mfcon=False)
    exp = tmp_path / "exp"
    run_train(conf, exp, feats_dir, "--num_epochs", "2")
    good = model_params(str(exp / "models/model_1.pt"))
    last = exp / "models/model_2.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(UserError, match="model_2.pt: corrupt or truncated"):
        run_train(conf, exp, feats_dir, "--num_epochs", "3")
    assert_same_state(good, model_params(str(exp / "models/model_1.pt")))


def test_average_of_last_two_epochs(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    exp = tmp_path / "exp"
    run_train(conf, exp, feats_dir, "--num_epochs", "2")
    average_main(["--models_dir", str(exp / "models"), "--num", "2",
                  "--dst", str(exp / "models/avg.pt")])
    a, b = model_params(str(exp / "models/model_1.pt")), model_params(str(exp / "models/model_2.pt"))
    avg = model_params(str(exp / "models/avg.pt"))
    key = "fc.weight"
    assert torch.allclose(avg[key], (a[key] + b[key]) / 2, atol=1e-6)


def test_two_process_gloo_ddp_keeps_ranks_in_sync(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    exp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "wespeaker_mfcon.bin.train", "--config", conf, "--exp_dir", str(exp),
           "--train_data", feats_dir, "--num_epochs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (exp / "train.log").read_text()
    assert log.count("ranks in sync") == 2 and "on 2 process(es)" in log
    state = load_checkpoint(str(exp / "models/model_2.pt"))
    assert state["step"] == 2 * 2  # 4 global batches per epoch split over 2 ranks
