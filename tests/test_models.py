"""MFA-Conformer: shapes, parameter count, relative positions, ONNX parity, a few train steps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wespeaker_mfcon.losses import MFConLoss
from wespeaker_mfcon.models import build_model, build_projection
from wespeaker_mfcon.models.conformer import rel_shift, rel_sinusoids
from train_utils import EmbedOnly

TINY = dict(input_dim=80, num_blocks=2, output_size=32, attention_heads=2, linear_units=64,
            cnn_module_kernel=5, embed_dim=16)
PAPER_PARAMS = 19_759_424   # = the authors' conformer_cat (conv2d2): see test below


def num_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("rate, t_out", [(2, (200 - 1) // 2), (4, ((200 - 1) // 2 - 1) // 2)])
def test_mfa_conformer_shapes(rate, t_out):
    torch.manual_seed(0)
    model = build_model("mfa_conformer", dict(TINY, subsampling=rate))
    embeds, blocks = model(torch.randn(3, 200, 80))
    assert embeds.shape == (3, 16)
    assert model.embed_dim == 16 and model.block_dims == [32, 32]
    assert [tuple(b.shape) for b in blocks] == [(3, t_out, 32)] * 2
    # each block ends with a LayerNorm: unit variance over channels per frame
    assert torch.allclose(blocks[-1].var(-1, unbiased=False).mean(), torch.tensor(1.0), atol=1e-2)


@pytest.mark.parametrize("rate", [2, 4])
def test_mfa_conformer_short_input_batch_one(rate):
    model = build_model("mfa_conformer", dict(TINY, subsampling=rate)).eval()
    with torch.no_grad():
        embeds, blocks = model(torch.randn(1, 20, 80))
    assert embeds.shape == (1, 16) and torch.isfinite(embeds).all()
    assert blocks[0].shape[1] == (9 if rate == 2 else 4)


def test_paper_parameter_count():
    model = build_model("mfa_conformer", {})
    n = num_params(model)
    print(f"MFA-Conformer paper config (1/2 subsampling): {n:,} parameters")
    # conv2d2 subsampling 2,558,720 + 6 blocks x 2,635,520 + LN(1536) 3,072
    # + ASP 788,352 + BN(3072) 6,144 + Linear(3072, 192) 590,016
    assert n == PAPER_PARAMS
    assert abs(n - 19.8e6) / 19.8e6 < 0.01
    n4 = num_params(build_model("mfa_conformer", {"subsampling": 4}))
    print(f"MFA-Conformer with 1/4 subsampling: {n4:,} parameters")
    assert n4 == PAPER_PARAMS - 2_558_720 + 1_838_080
    assert model(torch.randn(2, 100, 80))[0].shape == (2, 192)


def test_rel_shift_indexes_relative_distance():
    t = 7
    # column k of the unshifted scores stands for relative position (t - 1 - k)
    dist = (t - 1) - torch.arange(2 * t - 1, dtype=torch.float32)
    scores = dist.expand(2, 3, t, 2 * t - 1)                          # (B, H, T, 2T-1)
    shifted = rel_shift(scores)                                       # (B, H, T, T)
    i = torch.arange(t, dtype=torch.float32)
    assert torch.equal(shifted[1, 2], i[:, None] - i[None, :])


def test_rel_sinusoids_layout():
    pe = rel_sinusoids(5, 8, "cpu", torch.float32)                    # (1, 9, 8)
    assert pe.shape == (1, 9, 8)
    # centre row is relative position 0: sin 0 = 0, cos 0 = 1 interleaved
    assert torch.allclose(pe[0, 4], torch.tensor([0.0, 1.0] * 4))
    # row 0 is position +4, last row position -4; channel pair 0 uses frequency 1
    assert pe[0, 0, 0].item() == pytest.approx(np.sin(4.0), abs=1e-6)
    assert pe[0, 8, 0].item() == pytest.approx(np.sin(-4.0), abs=1e-6)
    assert pe[0, 8, 1].item() == pytest.approx(np.cos(4.0), abs=1e-6)


def onnx_parity(model, tmp_path, lengths=(200, 317)):
    """Export with dynamic B and T, return max |ORT - torch| per (batch, length) checked."""
    import onnxruntime as ort
    from torch.export import Dim
    wrapper = EmbedOnly(model.eval()).eval()
    path = str(tmp_path / "model.onnx")
    torch.onnx.export(wrapper, (torch.randn(2, 200, 80),), path, dynamo=True,
                      external_data=False, dynamic_shapes=({0: Dim("B"), 1: Dim("T")},),
                      input_names=["feats"], output_names=["embs"], verbose=False)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    errors = {}
    gen = torch.Generator().manual_seed(1)
    for batch, t in [(2, lengths[0]), (1, lengths[1]), (3, lengths[1])]:
        feats = torch.randn(batch, t, 80, generator=gen)
        with torch.no_grad():
            ref = wrapper(feats).numpy()
        out = sess.run(["embs"], {"feats": feats.numpy()})[0]
        assert out.shape == ref.shape
        errors[(batch, t)] = float(np.abs(out - ref).max())
    return errors


def test_mfa_conformer_onnx_parity(tmp_path):
    torch.manual_seed(0)
    model = build_model("mfa_conformer", TINY)
    model.train()
    with torch.no_grad():                       # non-trivial BatchNorm statistics
        model(torch.randn(4, 150, 80) * 2 + 0.5)
    errors = onnx_parity(model, tmp_path)
    print("MFA-Conformer ORT vs torch max abs error:", errors)
    assert max(errors.values()) < 1e-4


def train_steps(model, steps=12, seed=0):
    """CE(AM-softmax) + 0.01 * MFCon on a fixed 4 speakers x 2 batch: [(ce, mfcon)] per step."""
    torch.manual_seed(seed)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    speaker_offset = 0.5 * torch.randn(4, 1, 1, 80)                  # a spectral tilt per speaker
    feats = (speaker_offset + torch.randn(4, 2, 60, 80)).flatten(0, 1)  # (8, 60, 80)
    proj = build_projection("am_softmax", model.embed_dim, 4, scale=30.0, margin=0.2)
    mfcon = MFConLoss(model.block_dims, embed_dim=16)
    params = [*model.parameters(), *proj.parameters(), *mfcon.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    model.train(), mfcon.train()
    for _ in range(steps):
        embeds, blocks = model(feats)
        ce = F.cross_entropy(proj(embeds, labels), labels)
        con, per_block = mfcon(blocks, labels)
        assert per_block.shape == (len(model.block_dims),)
        loss = ce + 0.01 * con
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((ce.item(), con.item()))
    return np.array(losses)


def test_mfa_conformer_training_lowers_loss():
    torch.manual_seed(0)
    model = build_model("mfa_conformer", dict(TINY, dropout_rate=0.0,
                                              positional_dropout_rate=0.0,
                                              attention_dropout_rate=0.0))
    losses = train_steps(model)
    print("MFA-Conformer (CE, MFCon) per step:", np.round(losses, 3).tolist())
    assert np.isfinite(losses).all()
    total = losses[:, 0] + 0.01 * losses[:, 1]
    assert total[-1] < 0.5 * total[0]
    assert losses[-1, 0] < 0.5 * losses[0, 0]       # classification improves
    assert losses[-1, 1] < 0.5 * losses[0, 1]       # and so does every block's SupCon


def test_build_model_rejects_unknown():
    with pytest.raises(ValueError, match="unknown model_type"):
        build_model("resnet", {})
    with pytest.raises(ValueError, match="subsampling"):
        build_model("mfa_conformer", {"subsampling": 3})
