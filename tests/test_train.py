import os
import subprocess
import sys

import pytest
import torch

from conftest import python_env
from train_utils import make_feats_dir, run_train, tiny_config
from wespeaker_mfcon.training.average import average_last
from wespeaker_mfcon.training.loop import EpochRunner
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.utils.errors import UserError


@pytest.fixture(scope="module")
def feats_dir(tmp_path_factory):
    return make_feats_dir(str(tmp_path_factory.mktemp("data") / "train"))


def model_params(path):
    return load_checkpoint(path)["model"]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_config_and_checkpoints_are_written(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    run_train(conf, tmp_path / "exp", feats_dir, "--num_epochs", "2")
    saved = load_train_config(str(tmp_path / "exp" / "config.yaml"))
    assert saved.num_classes == 6 and saved.num_epochs == 2
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
    # the same check from the command line, and its failure on different checkpoints
    tool = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools",
                        "compare_checkpoints.py")
    same = subprocess.run([sys.executable, tool, str(tmp_path / "straight/models/model_2.pt"),
                           str(tmp_path / "broken/models/model_2.pt")],
                          capture_output=True, text=True, env=python_env())
    assert same.returncode == 0 and "bit-identical" in same.stdout and ", step 8" in same.stdout
    other = subprocess.run([sys.executable, tool, str(tmp_path / "straight/models/model_2.pt"),
                            str(tmp_path / "broken/models/model_1.pt")],
                           capture_output=True, text=True, env=python_env())
    assert other.returncode == 1 and "differs (max |diff|" in other.stderr


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
    assert average_last(str(exp / "models"), 2, str(exp / "models/avg.pt")) == [1, 2]
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


def test_bf16_autocast_on_cpu_trains_with_mfcon_and_keeps_supcon_in_float32(feats_dir, tmp_path):
    """amp: bf16 runs the autocast path of the step, the heads and the losses on CPU."""
    from wespeaker_mfcon.losses.mfcon import supcon_loss
    from wespeaker_mfcon.training.run import TrainingRun

    conf = tiny_config(str(tmp_path / "c.yaml"), amp="bf16")
    run = TrainingRun(conf, str(tmp_path / "exp"), feats_dir, "cpu", {"num_epochs": 1})
    seen = {}
    model, mfcon = run.net.model, run.net.mfcon

    def record_block_dtype(module, inputs, out):
        seen.setdefault("block", out[1][0].dtype)

    model.register_forward_hook(record_block_dtype)
    real_supcon = supcon_loss

    def recording_supcon(z, labels, temperature):
        loss = real_supcon(z, labels, temperature)
        seen.setdefault("head", z.dtype)
        seen.setdefault("supcon", loss.dtype)
        return loss

    import wespeaker_mfcon.losses.mfcon as mfcon_module
    mfcon_module.supcon_loss = recording_supcon
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        stats = [run.runner.step(*batch, step) for step, batch in
                 zip(range(4), iter(run.loader))]
    finally:
        mfcon_module.supcon_loss = real_supcon
    assert seen == {"block": torch.bfloat16, "head": torch.bfloat16, "supcon": torch.float32}
    assert all(torch.isfinite(s).all() and s[2] > 0 for s in stats)    # loss, L_mfcon finite
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.dtype == torch.float32 for p in mfcon.parameters())   # weights stay fp32


def test_supcon_under_bf16_autocast_equals_its_float32_value():
    from wespeaker_mfcon.losses.mfcon import supcon_loss

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(12, 16, generator=gen).to(torch.bfloat16)
    labels = torch.arange(12) % 4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = supcon_loss(z, labels, 0.07)
    plain = supcon_loss(z.float(), labels, 0.07)
    assert auto.dtype == torch.float32 and torch.equal(auto, plain)


def test_fp16_on_cpu_is_a_clear_error(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"), amp="fp16")
    with pytest.raises(UserError, match="amp: fp16 needs a CUDA device"):
        run_train(conf, tmp_path / "exp", feats_dir)
