"""Gradient diagnostics (training/diagnostics.py): the ratios equal those of plain separate
backward passes, SupCon at chance reads 1, and a run with diagnostics trains bit-identically
to one without."""

import json
import math

import numpy as np
import pytest
import torch

from train_utils import TINY_MODEL, make_feats_dir, tiny_config
from wespeaker_mfcon.bin.train import main as train_main
from wespeaker_mfcon.losses.mfcon import supcon_loss
from wespeaker_mfcon.training.diagnostics import GradientDiagnostics, per_block
from wespeaker_mfcon.training.run import TrainingRun
from wespeaker_mfcon.utils.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def feats_dir(tmp_path_factory):
    return make_feats_dir(str(tmp_path_factory.mktemp("diag") / "train"), num_spk=6, utts=4)


def _grad_norm(net, loss):
    """||d loss / d backbone|| by an ordinary backward into .grad (the oracle)."""
    net.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad.reshape(-1) for p in net.model.parameters() if p.grad is not None]
    return torch.cat(grads).norm(), torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
         for p in net.model.parameters()])


@pytest.mark.parametrize("weighting", ["constant", "grad_ratio"])
def test_ratios_equal_separate_backward_passes(feats_dir, tmp_path, weighting):
    conf = tiny_config(str(tmp_path / "c.yaml"), model_args=dict(TINY_MODEL, dropout_rate=0.0))
    run = TrainingRun(conf, str(tmp_path / "exp"), feats_dir, "cpu",
                      {"mfcon_args.weighting": weighting, "mfcon_args.weight": 0.5})
    net = run.net.train()                    # no dropout: every forward gives the same graph
    chunks, labels = next(iter(run.loader))

    def forward():
        return net(chunks, labels)

    _, loss_cls, _, _, block_losses = forward()
    n_blocks = len(net.mfcon.block_ids)
    diag = GradientDiagnostics(1)
    lam_before = net.weighting.effective_weight().clone()
    diag.measure(net, loss_cls, block_losses / n_blocks, lam=0.5)
    assert torch.equal(net.weighting.effective_weight(), lam_before)   # hooks paused
    summary = diag.summary()

    with net.weighting.hooks_paused():
        cls_norm, g_cls = _grad_norm(net, forward()[1])
        g_sum = torch.zeros_like(g_cls)
        for k in range(n_blocks):
            norm_k, g_k = _grad_norm(net, forward()[4][k] / n_blocks)
            g_sum += g_k
            assert summary[f"raw_ratio_{k}"] == pytest.approx(float(norm_k / cls_norm), rel=1e-4)
    assert summary["raw_ratio"] == pytest.approx(float(g_sum.norm() / cls_norm), rel=1e-4)
    assert summary["ratio"] == pytest.approx(0.5 * summary["raw_ratio"], rel=1e-6)
    cosine = torch.dot(g_sum, g_cls) / (g_sum.norm() * g_cls.norm())
    assert summary["cosine"] == pytest.approx(float(cosine), abs=1e-4)
    assert summary["grad_cls_norm"] == pytest.approx(float(cls_norm), rel=1e-4)


def test_supcon_of_uninformative_embeddings_is_chance():
    """Identical embeddings: every similarity equal, SupCon = log(B - 1), so the ratio is 1."""
    z = torch.ones(12, 8)
    labels = torch.arange(12) % 4
    diag = GradientDiagnostics(0)
    diag.record_losses(torch.stack([supcon_loss(z, labels), torch.tensor(0.5 * math.log(11))]), 12)
    assert per_block(diag.summary(), "supcon_rel_chance") == pytest.approx([1.0, 0.5])


@pytest.mark.parametrize("weighting", ["constant", "grad_ratio"])
def test_training_with_diagnostics_is_bit_identical(feats_dir, tmp_path, weighting):
    conf = tiny_config(str(tmp_path / "c.yaml"))
    common = ["--config", conf, "--train_data", feats_dir, "--mfcon_args.weighting", weighting]
    train_main([*common, "--exp_dir", str(tmp_path / "plain")])
    train_main([*common, "--exp_dir", str(tmp_path / "diag"), "--diagnostics_interval", "1"])
    plain = load_checkpoint(str(tmp_path / "plain/models/model_2.pt"))
    diag = load_checkpoint(str(tmp_path / "diag/models/model_2.pt"))
    for part in ("model", "projection", "mfcon"):
        for name, tensor in plain[part].items():
            assert torch.equal(tensor, diag[part][name]), f"{part}.{name}"
    rows = [json.loads(line) for line in open(tmp_path / "diag/diagnostics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["ratio"] > 0 and r["supcon_rel_chance_0"] > 0 for r in rows)
    assert not (tmp_path / "plain/diagnostics.jsonl").exists()
    assert "diagnostics: grad ratio" in open(tmp_path / "diag/train.log").read()


def test_paper_gradients_probe_measures_the_configured_steps(tmp_path):
    """analysis/paper_gradients.py on a tiny config: a row per measured step, and the applied
    ratio is lambda x the raw one."""
    from wespeaker_mfcon.analysis import paper_gradients

    conf = tiny_config(str(tmp_path / "c.yaml"), model_args=dict(TINY_MODEL, input_dim=20))
    out = tmp_path / "probe.json"
    paper_gradients.main(["--config", conf, "--classes", "12", "--steps", "12", "--interval",
                          "4", "--frames", "60", "--out", str(out), "--mfcon_args.weight", "0.5"])
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["step"] for r in rows] == [0, 4, 8] and result["classes"] == 12
    assert result["lambda"] == 0.5 and result["batch"] == 6
    assert all(r["ratio"] == pytest.approx(0.5 * r["raw_ratio"], rel=1e-6) for r in rows)
    assert result["chance_supcon"] == pytest.approx(math.log(5))


def test_synthetic_speakers_survive_mean_normalization():
    """The probe's speakers differ in the variance envelope of their frames: after CMN, the
    per-dimension log-std of one utterance names its speaker (nearest of the true envelopes)
    far above chance (1 in 50)."""
    from wespeaker_mfcon.analysis.paper_gradients import SyntheticSpeakers
    from wespeaker_mfcon.frontend.fbank import apply_cmn

    data = SyntheticSpeakers(classes=50, feat_dim=80, frames=200, seed=0)
    labels = np.arange(50).repeat(2)
    feats, _ = data.batch(labels)
    log_std = apply_cmn(feats).std(dim=1).log().numpy()                 # (100, 80)
    guess = np.argmin(((log_std[:, None, :] - data.log_scales[None]) ** 2).sum(-1), axis=1)
    assert (guess == labels).mean() > 0.9
