"""ECAPA-TDNN: shapes, published parameter counts, ONNX parity, a few train steps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wespeaker_mfcon.losses import MFConLoss
from wespeaker_mfcon.models import build_model, build_projection
from train_utils import EmbedOnly

TINY = dict(input_dim=80, channels=32, embed_dim=16, mfa_channels=48, se_channels=8)


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def test_ecapa_shapes():
    torch.manual_seed(0)
    model = build_model("ecapa_tdnn", TINY)
    embeds, blocks = model(torch.randn(3, 123, 80))
    assert embeds.shape == (3, 16)
    assert model.embed_dim == 16 and model.block_dims == [32, 32, 32]
    assert [tuple(b.shape) for b in blocks] == [(3, 123, 32)] * 3
    model.eval()
    with torch.no_grad():
        e1, b1 = model(torch.randn(1, 20, 80))
    assert e1.shape == (1, 16) and b1[2].shape == (1, 20, 32)


@pytest.mark.parametrize("channels, exact, published", [(512, 6_194_048, 6.2e6),
                                                        (1024, 14_660_416, 14.7e6)])
def test_ecapa_parameter_counts(channels, exact, published):
    model = build_model("ecapa_tdnn", {"channels": channels})
    n = num_params(model)
    print(f"ECAPA-TDNN C={channels}: {n:,} parameters (published ~{published / 1e6:.1f} M)")
    assert n == exact
    assert abs(n - published) / published < 0.01


def onnx_parity(model, tmp_path):
    """Export with dynamic B and T; max |ORT - torch| at T = 200 and 317 (batch 2, 1, 3)."""
    import onnxruntime as ort
    from torch.export import Dim
    wrapper = EmbedOnly(model.eval()).eval()
    path = str(tmp_path / "ecapa.onnx")
    torch.onnx.export(wrapper, (torch.randn(2, 200, 80),), path, dynamo=True,
                      external_data=False, dynamic_shapes=({0: Dim("B"), 1: Dim("T")},),
                      input_names=["feats"], output_names=["embs"], verbose=False)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    errors = {}
    for batch, t in [(2, 200), (1, 317), (3, 317)]:
        feats = torch.randn(batch, t, 80, generator=gen)
        with torch.no_grad():
            ref = wrapper(feats).numpy()
        errors[(batch, t)] = float(np.abs(sess.run(["embs"], {"feats": feats.numpy()})[0] - ref).max())
    return errors


def test_ecapa_onnx_parity(tmp_path):
    torch.manual_seed(0)
    model = build_model("ecapa_tdnn", TINY)
    with torch.no_grad():
        model(torch.randn(4, 150, 80) * 2 + 0.5)
    errors = onnx_parity(model, tmp_path)
    print("ECAPA ORT vs torch max abs error:", errors)
    assert max(errors.values()) < 1e-4


def test_ecapa_training_lowers_loss():
    torch.manual_seed(0)
    model = build_model("ecapa_tdnn", TINY)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    speaker_offset = 0.5 * torch.randn(4, 1, 1, 80)
    feats = (speaker_offset + torch.randn(4, 2, 60, 80)).flatten(0, 1)
    proj = build_projection("arc_margin", 16, 4, scale=32.0, margin=0.2)
    mfcon = MFConLoss(model.block_dims, embed_dim=16, blocks=[1, 2], weights=[0.5, 1.0])
    opt = torch.optim.Adam([*model.parameters(), *proj.parameters(), *mfcon.parameters()],
                           lr=1e-3)
    losses = []
    for _ in range(12):
        embeds, blocks = model(feats)
        ce = F.cross_entropy(proj(embeds, labels), labels)
        con, _ = mfcon(blocks, labels)
        opt.zero_grad()
        (ce + 0.01 * con).backward()
        opt.step()
        losses.append((ce.item(), con.item()))
    losses = np.array(losses)
    print("ECAPA (CE, MFCon) per step:", np.round(losses, 3).tolist())
    total = losses[:, 0] + 0.01 * losses[:, 1]
    assert total[-1] < 0.5 * total[0]
    assert losses[-1, 1] < 0.5 * losses[0, 1]
