"""MFCon weighting schemes (losses/weighting.py): the gradient ratio each one promises on a toy
model, no effect with MFCon off, exact resume with the weighting state, config errors."""

import math
from types import SimpleNamespace

import pytest
import torch

from train_utils import make_feats_dir, tiny_config
from wespeaker_mfcon.bin.train import main as train_main
from wespeaker_mfcon.losses.weighting import build_weighting
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.config import load_train_config, parse_overrides
from wespeaker_mfcon.utils.errors import UserError

# Toy: a shared feature h = w * x (what the backbone gives both losses), with
# L_cls = sum(c * h) and L_mfcon = sum(m * h), so dL_cls/dh = c and dL_mfcon/dh = m exactly.
X = torch.tensor([1.0, 2.0, -1.0])
C = torch.tensor([3.0, 0.0, 4.0])          # ||c|| = 5
M = torch.tensor([0.0, 1.0, 0.0])          # ||m|| = 1
R = 0.5                                    # target ratio


def args(weighting, weight=2.0, momentum=0.0, ramp_steps=4):
    return SimpleNamespace(weighting=weighting, weight=weight, target_ratio=R,
                           ratio_momentum=momentum, ramp_steps=ramp_steps)


def toy_step(weighting):
    """One forward/backward of the toy; returns (dL/dw, L_cls, L_mfcon)."""
    w = torch.ones(3, requires_grad=True)
    h = w * X
    blocks = weighting.tap([h], [0])
    loss_cls, loss_mfcon = (C * h).sum(), (M * blocks[0]).sum()
    weighting(loss_cls, loss_mfcon).backward()
    return w.grad, loss_cls.detach(), loss_mfcon.detach()


def mfcon_share(grad_w, lam):
    """The toy's dL/dw = x * (c + lam * m): lam from the gradient, checked to be of that form."""
    expected = X * (C + lam * M)
    assert torch.allclose(grad_w, expected), (grad_w, expected)
    return lam


def test_constant_gradient_is_cls_plus_lambda_mfcon():
    weighting = build_weighting(args("constant")).train()
    grad, _, _ = toy_step(weighting)
    mfcon_share(grad, 2.0)


def test_loss_ratio_weighted_term_is_r_times_cls_with_a_detached_ratio():
    weighting = build_weighting(args("loss_ratio")).train()
    grad, loss_cls, loss_mfcon = toy_step(weighting)
    lam = R * loss_cls / loss_mfcon                         # (3 - 4) * 0.5 / 2 = -0.25
    mfcon_share(grad, lam)                                  # no gradient through the ratio
    assert torch.allclose(weighting.effective_weight() * loss_mfcon, R * loss_cls)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_grad_ratio_sets_the_mfcon_gradient_to_r_times_the_cls_gradient(momentum):
    weighting = build_weighting(args("grad_ratio", momentum=momentum)).train()
    grad, _, _ = toy_step(weighting)
    mfcon_share(grad, 2.0)                                  # step 0: lambda_0 = weight
    # measured in that backward: ||dL_cls/dh|| / ||dL_mfcon/dh|| = 5 / 1; the debiased EMA of
    # one measurement is the measurement, whatever the momentum
    assert weighting.effective_weight().item() == pytest.approx(R * 5.0)
    grad, _, _ = toy_step(weighting)
    lam = mfcon_share(grad, R * 5.0)
    assert (lam * M).norm() == pytest.approx(R * C.norm())  # the promise, on h
    assert weighting.effective_weight().item() == pytest.approx(R * 5.0)


def test_grad_ratio_leaves_the_blocks_alone_in_eval():
    weighting = build_weighting(args("grad_ratio")).eval()
    h = torch.ones(3, requires_grad=True) * X
    assert weighting.tap([h], [0])[0] is h


def test_uncertainty_gradients_follow_the_log_variances():
    weighting = build_weighting(args("uncertainty", weight=2.0)).train()
    grad, loss_cls, loss_mfcon = toy_step(weighting)
    s_cls, s_mfcon = 0.0, -math.log(2.0)
    # dL/dh = exp(-s_c) c + exp(-s_m) m: MFCon relative weight exp(s_c - s_m) = 2 at the start
    mfcon_share(grad, math.exp(s_cls - s_mfcon))
    expected = torch.tensor([1 - math.exp(-s_cls) * loss_cls, 1 - math.exp(-s_mfcon) * loss_mfcon])
    assert torch.allclose(weighting.log_vars.grad, expected)
    assert [n for n, _ in weighting.named_parameters()] == ["log_vars"]   # optimized


def test_schedule_ramps_lambda_linearly_then_holds():
    weighting = build_weighting(args("schedule", weight=2.0, ramp_steps=4)).train()
    lams = [mfcon_share(toy_step(weighting)[0], 2.0 * min(1.0, (t + 1) / 4)) for t in range(6)]
    assert lams == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert weighting.state_dict()["step"].item() == 6


# ------------------------------------------------------------------- through training

ADAPTIVE = ["grad_ratio", "loss_ratio", "uncertainty", "schedule"]


@pytest.fixture(scope="module")
def feats_dir(tmp_path_factory):
    return make_feats_dir(str(tmp_path_factory.mktemp("data") / "train"))


def train(conf, exp, data, *overrides):
    train_main(["--config", conf, "--exp_dir", str(exp), "--train_data", data, *overrides])
    return load_checkpoint(str(exp / "models" / f"model_{overrides[-1]}.pt"))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_weighting_has_no_effect_with_mfcon_off(feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"), mfcon=False)
    ref = train(conf, tmp_path / "constant", feats_dir, "--num_epochs", "1")
    for kind in ADAPTIVE:
        state = train(conf, tmp_path / kind, feats_dir, "--mfcon_args.weighting", kind,
                      "--num_epochs", "1")
        assert_same(ref["model"], state["model"])
        assert_same(ref["projection"], state["projection"])
        assert state["weighting"] == {} and state["mfcon"] == {}


@pytest.mark.parametrize("kind", ADAPTIVE)
def test_resume_with_the_weighting_state_equals_an_unbroken_run(kind, feats_dir, tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"),
                       mfcon_args={"enable": True, "weight": 0.5, "weighting": kind,
                                   "ramp_steps": 6, "ratio_momentum": 0.5})
    straight = train(conf, tmp_path / "straight", feats_dir, "--num_epochs", "2")
    train(conf, tmp_path / "broken", feats_dir, "--num_epochs", "1")
    broken = train(conf, tmp_path / "broken", feats_dir, "--num_epochs", "2")
    for part in ("model", "mfcon", "weighting"):
        assert_same(straight[part], broken[part])
    if kind != "loss_ratio":                     # loss_ratio keeps no state
        assert straight["weighting"]
    log = (tmp_path / "straight" / "train.log").read_text()
    assert " lambda " in log


# ------------------------------------------------------------------------ config


@pytest.mark.parametrize("tokens, expected", [
    (["--mfcon_args.weighting", "grad_ration"],
     "mfcon_args.weighting: must be one of constant, grad_ratio, loss_ratio, uncertainty, "
     "schedule; got 'grad_ration' (did you mean 'grad_ratio'?)"),
    (["--mfcon_args.target_ratio", "0"], "must be > 0.0, got 0.0"),
    (["--mfcon_args.ratio_momentum", "1.0"], "must be in [0.0, 1.0), got 1.0"),
    (["--mfcon_args.ramp_steps", "0"], "must be >= 1, got 0"),
    (["--mfcon_args.ramp_steps", "2.5"], "must be int, got float 2.5"),
])
def test_bad_weighting_keys_are_one_line_errors(tmp_path, tokens, expected):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    with pytest.raises(UserError) as e:
        load_train_config(conf, parse_overrides(tokens))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"override {tokens[0]}: ")
    assert message.endswith(expected)


def test_weighting_that_starts_at_lambda_needs_a_positive_weight(tmp_path):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    with pytest.raises(UserError, match=r"mfcon_args.weight: weighting uncertainty starts"):
        load_train_config(conf, parse_overrides(["--mfcon_args.weight", "0",
                                                 "--mfcon_args.weighting", "uncertainty"]))
