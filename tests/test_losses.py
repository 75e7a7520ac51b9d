"""SupCon / MFCon, margin projection heads and the margin scheduler."""

import math

import numpy as np
import pytest
import torch

from wespeaker_mfcon.losses import MarginScheduler, MFConLoss, supcon_loss
from wespeaker_mfcon.models.projections import build_projection


def supcon_reference(emb, labels, tau):
    """Khosla et al. L_out, one anchor at a time, in float64 numpy."""
    z = emb.detach().double().numpy()
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    lab = labels.numpy()
    n = len(z)
    per_anchor = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if lab[p] == lab[i]]
        if not positives:
            continue
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in others)
        terms = [math.log(math.exp(z[i] @ z[p] / tau) / denom) for p in positives]
        per_anchor.append(-sum(terms) / len(positives))
    return float(np.mean(per_anchor)) if per_anchor else 0.0


@pytest.mark.parametrize("seed, tau", [(0, 0.07), (1, 0.07), (2, 0.5), (3, 0.1)])
def test_supcon_matches_slow_reference(seed, tau):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(14, 6, generator=gen) * 3
    # speakers with 3, 2, 4 samples and five singletons (anchors without positives)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 5, 6, 7])
    labels = labels[torch.randperm(14, generator=gen)]
    loss = supcon_loss(emb, labels, tau)
    assert loss.item() == pytest.approx(supcon_reference(emb, labels, tau), rel=1e-5, abs=1e-6)


def test_supcon_hand_computed():
    # e1 = (1, 0), e2 = (0, 1) same speaker; e3 along (1, 1), another speaker.
    # cos(e1, e2) = 0, cos(e1, e3) = cos(e2, e3) = 1/sqrt(2); tau = 0.5.
    # anchors 1 and 2 each: -log(e^0 / (e^0 + e^{sqrt 2})) = log(1 + e^{sqrt 2}); anchor 3 has
    # no positive and is left out, so the loss is log(1 + e^1.41421) = log(5.11325) = 1.63184.
    emb = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0]])
    labels = torch.tensor([7, 7, 9])
    assert supcon_loss(emb, labels, 0.5).item() == pytest.approx(1.631835, abs=1e-5)


def test_supcon_no_positive_is_differentiable_zero():
    emb = torch.randn(5, 4, requires_grad=True)
    loss = supcon_loss(emb, torch.arange(5))
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None and torch.equal(emb.grad, torch.zeros(5, 4))
    single = torch.randn(1, 4, requires_grad=True)
    loss1 = supcon_loss(single, torch.tensor([3]))
    loss1.backward()
    assert loss1.item() == 0.0 and torch.isfinite(single.grad).all()


def test_supcon_is_stable_and_scale_invariant():
    gen = torch.Generator().manual_seed(4)
    emb = torch.randn(8, 5, generator=gen)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    a = supcon_loss(emb, labels, 0.01)          # logits up to 100: exp would overflow fp32
    b = supcon_loss(emb * 1e4, labels, 0.01)
    assert torch.isfinite(a) and a.item() == pytest.approx(b.item(), rel=1e-4)
    # the loss pulls same-speaker pairs together: gradient step lowers it
    emb.requires_grad_(True)
    loss = supcon_loss(emb, labels)
    loss.backward()
    assert supcon_loss(emb.detach() - 0.01 * emb.grad, labels).item() < loss.item()


def fake_blocks(dims, batch=8, frames=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, frames, c, generator=gen) for c in dims]


def test_mfcon_weighted_block_subset():
    torch.manual_seed(0)
    dims = [8, 12, 8]
    blocks = fake_blocks(dims)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])
    mfcon = MFConLoss(dims, embed_dim=6, temperature=0.1, blocks=[0, -1], weights=[1.0, 0.5])
    assert mfcon.block_ids == [0, 2] and len(mfcon.heads) == 2
    mfcon.eval()
    loss, per_block = mfcon(blocks, labels)
    l0 = supcon_loss(mfcon.heads[0](blocks[0]), labels, 0.1)
    l2 = supcon_loss(mfcon.heads[1](blocks[2]), labels, 0.1)
    assert mfcon.heads[0](blocks[0]).shape == (8, 6)
    assert torch.allclose(per_block, torch.stack([l0, l2]).detach())
    assert loss.item() == pytest.approx(((1.0 * l0 + 0.5 * l2) / 2).item(), rel=1e-6)
    assert l0.item() > 0.1 and l2.item() > 0.1


def test_mfcon_all_blocks_uniform_and_gradients():
    torch.manual_seed(1)
    dims = [8, 8, 8, 8]
    blocks = [b.requires_grad_(True) for b in fake_blocks(dims, seed=1)]
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    mfcon = MFConLoss(dims, embed_dim=5).train()
    loss, per_block = mfcon(blocks, labels)
    assert per_block.shape == (4,) and per_block.requires_grad    # the diagnostics read its graph
    assert loss.item() == pytest.approx(per_block.mean().item(), rel=1e-6)
    loss.backward()
    for b in blocks:
        assert b.grad is not None and b.grad.abs().sum() > 0
    assert all(p.grad is not None for p in mfcon.heads[3].parameters())
    # the heads are not part of the model's state: a fresh MFConLoss has its own parameters
    assert sum(p.numel() for p in mfcon.parameters()) > 0


def test_mfcon_rejects_bad_config():
    with pytest.raises(ValueError, match="weights"):
        MFConLoss([8, 8], blocks=[0, 1], weights=[1.0])
    with pytest.raises(ValueError, match="out of range"):
        MFConLoss([8, 8], blocks=[2])
    with pytest.raises(ValueError, match="at least one"):
        MFConLoss([8, 8], blocks=[])


def unit_cosines(emb, weight):
    e = emb.numpy() / np.linalg.norm(emb.numpy(), axis=1, keepdims=True)
    w = weight.detach().numpy() / np.linalg.norm(weight.detach().numpy(), axis=1, keepdims=True)
    return e @ w.T


def test_am_softmax_logits():
    torch.manual_seed(0)
    proj = build_projection("am_softmax", 8, 5, scale=30.0, margin=0.2)
    emb = torch.randn(6, 8)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    cos = unit_cosines(emb, proj.weight)
    onehot = np.eye(5)[labels.numpy()]
    expected = 30.0 * (cos - 0.2 * onehot)
    assert np.allclose(proj(emb, labels).detach().numpy(), expected, atol=1e-5)
    assert np.allclose(proj(emb).detach().numpy(), 30.0 * cos, atol=1e-5)
    proj.update(0.35)
    assert proj.margin == 0.35
    assert np.allclose(proj(emb, labels).detach().numpy(), 30.0 * (cos - 0.35 * onehot), atol=1e-5)


def test_arc_margin_logits():
    torch.manual_seed(0)
    proj = build_projection("arc_margin", 8, 5, scale=32.0, margin=0.2)
    emb = torch.randn(6, 8)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    cos = unit_cosines(emb, proj.weight)
    logits = proj(emb, labels).detach().numpy()
    rows = np.arange(6)
    theta = np.arccos(cos[rows, labels.numpy()])
    assert (theta + 0.2 < np.pi).all()
    assert np.allclose(logits[rows, labels.numpy()], 32.0 * np.cos(theta + 0.2), atol=1e-4)
    mask = np.ones_like(cos, dtype=bool)
    mask[rows, labels.numpy()] = False
    assert np.allclose(logits[mask], 32.0 * cos[mask], atol=1e-4)


def test_arc_margin_beyond_pi_and_easy_margin():
    proj = build_projection("arc_margin", 2, 2, scale=10.0, margin=0.3)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # theta = 3.0 rad to class 0: theta + m > pi, so the logit is cos(theta) - (1 + cos(pi - m))
    emb = torch.tensor([[math.cos(3.0), math.sin(3.0)]])
    logit = proj(emb, torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(10.0 * (math.cos(3.0) - 1.0 - math.cos(math.pi - 0.3)), abs=1e-4)
    easy = build_projection("arc_margin", 2, 2, scale=10.0, margin=0.3, easy_margin=True)
    with torch.no_grad():
        easy.weight.copy_(proj.weight)
    assert easy(emb, torch.tensor([0]))[0, 0].item() == pytest.approx(10 * math.cos(3.0), abs=1e-4)
    # margin 0 is plain scaled cosine
    proj.update(0.0)
    assert proj(emb, torch.tensor([0]))[0, 0].item() == pytest.approx(10 * math.cos(3.0), abs=1e-4)


def test_softmax_projection_and_unknown_type():
    proj = build_projection("softmax", 8, 5)
    assert proj(torch.randn(3, 8), torch.tensor([0, 1, 2])).shape == (3, 5)
    proj.update(0.3)
    assert proj.margin == 0.0
    with pytest.raises(ValueError, match="unknown project_type"):
        build_projection("sphereface", 8, 5)


@pytest.mark.parametrize("increase_type, mid", [("exp", 0.2 * (1 - 1e-3 ** 0.5)),
                                                ("linear", 0.1)])
def test_margin_scheduler(increase_type, mid):
    proj = build_projection("arc_margin", 4, 3, margin=0.2)
    sched = MarginScheduler(proj, initial_margin=0.0, final_margin=0.2, increase_start_epoch=2,
                            fix_start_epoch=4, increase_type=increase_type, epoch_iter=10)
    assert proj.margin == 0.0                     # set to the initial margin at construction
    expected = {0: 0.0, 9: 0.0, 10: 0.0, 20: mid, 29: None, 30: 0.2, 500: 0.2}
    for it, value in expected.items():
        sched.step(it)
        if value is not None:
            assert sched.get_margin() == pytest.approx(value, abs=1e-9)
            assert proj.margin == pytest.approx(value, abs=1e-9)
    sched.step(29)
    assert 0.0 < sched.get_margin() < 0.2
    assert mid == pytest.approx(0.1936754 if increase_type == "exp" else 0.1, abs=1e-6)
    # margins never decrease over the schedule
    margins = [sched.margin_at(i) for i in range(40)]
    assert all(b >= a for a, b in zip(margins, margins[1:]))
    frozen = MarginScheduler(proj, initial_margin=0.1, final_margin=0.2, update_margin=False,
                             increase_start_epoch=1, fix_start_epoch=2, epoch_iter=5)
    frozen.step(100)
    assert frozen.get_margin() == 0.1
