"""Batched extraction: a padded batch of different lengths gives each utterance's batch-1
embedding (PyTorch and ONNX Runtime), extract.sh with batching equals extract.sh without, and
bad batching options are one-line errors."""

import subprocess

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from conftest import RECIPE, python_env
from train_utils import TINY_MODEL
from wespeaker_mfcon.apps.extract import extract_embeddings
from wespeaker_mfcon.apps.embedder import Embedder, length_batches, pad_batch
from wespeaker_mfcon.models.embedding_net import MIN_FRAMES
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.export.onnx import export
from wespeaker_mfcon.utils.errors import UserError

# below MIN_FRAMES, odd/even, equal pairs, a long one: every masking edge case in one list
LENGTHS = [7, 20, 21, 22, 57, 58, 58, 90, 131, 200, 203, 260]
TOL = 1e-4


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """An experiment dir (tiny MFA-Conformer, non-trivial BatchNorm statistics, ASP) and a
    feats.scp of utterances of LENGTHS frames, shuffled."""
    root = tmp_path_factory.mktemp("batched")
    model_args = dict(TINY_MODEL, input_dim=20)
    conf = {"model": "mfa_conformer", "model_args": model_args}
    (root / "models").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.manual_seed(0)
    model = build_model("mfa_conformer", model_args)
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 120, 20) * 3)
    torch.save({"model": model.state_dict()}, root / "models" / "avg_model.pt")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(LENGTHS))
    with kaldiio.WriteHelper(f"ark,scp:{root / 'feats.ark'},{root / 'feats.scp'}") as w:
        for i in order:
            w(f"utt{i:02d}", (rng.standard_normal((LENGTHS[i], 20)) * 3 + 4).astype(np.float32))
    return root


def feats_list(exp):
    return [np.asarray(m, np.float32) for m in kaldiio.load_scp(str(exp / "feats.scp")).values()]


def one_at_a_time(embedder, feats):
    return np.concatenate([embedder.embed_feats(f[None]) for f in feats])


def test_padded_batch_equals_batch_one_pytorch(exp):
    pt = Embedder(str(exp / "models/avg_model.pt"))
    feats = feats_list(exp)
    ref = one_at_a_time(pt, feats)
    assert pt.supports_padding
    assert np.abs(pt.embed_list(feats) - ref).max() < TOL          # one batch, all lengths
    assert np.abs(pt.embed_many(feats, 4, 10**6) - ref).max() < TOL
    # the padding matters: without the mask the same batch is far off (the test can fail)
    batch, lengths = pad_batch([np.tile(f, (3, 1))[:max(len(f), MIN_FRAMES)] for f in feats])
    with torch.inference_mode():
        unmasked = pt.net(torch.from_numpy(batch)).numpy()
    assert np.abs(unmasked - ref).max() > 100 * TOL


def test_full_lengths_mask_equals_no_mask(exp):
    pt = Embedder(str(exp / "models/avg_model.pt"))
    feats = torch.from_numpy(np.stack([f[:57] for f in feats_list(exp) if len(f) >= 57]))
    with torch.inference_mode():
        plain = pt.net(feats)
        masked = pt.net(feats, torch.full((len(feats),), 57))
    assert (plain - masked).abs().max() < 1e-5


def test_padded_batch_equals_batch_one_onnx(exp, tmp_path):
    pt = Embedder(str(exp / "models/avg_model.pt"))
    path = str(tmp_path / "lengths.onnx")
    export(pt.net, 20, path, 18, with_lengths=True)
    ort = Embedder(path)
    feats = feats_list(exp)
    assert ort.supports_padding
    ref = one_at_a_time(pt, feats)
    assert np.abs(one_at_a_time(ort, feats) - ref).max() < TOL     # lengths = T
    assert np.abs(ort.embed_many(feats, 5, 10**6) - ref).max() < TOL
    out = tmp_path / "emb"
    extract_embeddings(path, str(out), feats_scp=str(exp / "feats.scp"), batch_size=16)
    got = kaldiio.load_scp(str(out / "xvector.scp"))
    assert max(np.abs(got[k] - r).max() for k, r in zip(got, ref)) < TOL


def test_length_batches_sort_cap_and_exact():
    lengths = [50, 10, 30, 30, 10, 400, 30, 20]
    batches = list(length_batches(lengths, batch_size=3, max_frames=100))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [[lengths[i] for i in b] for b in batches] == [[10, 10, 20], [30, 30, 30], [50],
                                                         [400]]
    assert batches[0] == [1, 4, 7]                                 # list order among ties
    exact = list(length_batches(lengths, batch_size=8, max_frames=10**6, exact=True))
    assert all(len({lengths[i] for i in b}) == 1 for b in exact) and len(exact) == 5


def run_extract_sh(exp, out, *opts):
    return subprocess.run(["bash", "extract.sh", "--model", str(exp / "models/avg_model.pt"),
                           "--feats_scp", str(exp / "feats.scp"), "--out_dir", str(out),
                           "--nj", "2", *opts], cwd=RECIPE, capture_output=True, text=True,
                          env=python_env())


def test_extract_sh_batched_equals_batch_one(exp):
    embs = {}
    for size in ("1", "16"):
        proc = run_extract_sh(exp, exp / f"emb_{size}", "--batch_size", size,
                              "--max_frames", "2000")
        assert proc.returncode == 0, proc.stderr[-2000:]
        embs[size] = kaldiio.load_scp(str(exp / f"emb_{size}" / "xvector.scp"))
    assert list(embs["1"]) == list(embs["16"]) and len(embs["1"]) == len(LENGTHS)
    assert max(np.abs(embs["1"][k] - embs["16"][k]).max() for k in embs["1"]) < TOL


@pytest.mark.parametrize("opt,value", [("--batch_size", "0"), ("--max_frames", "-5"),
                                       ("--batch_size", "x")])
def test_bad_batching_option_is_one_error_line(exp, tmp_path, opt, value):
    proc = run_extract_sh(exp, tmp_path / "emb", opt, value)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and opt in proc.stderr
    if value != "x":
        with pytest.raises(UserError, match=opt):
            extract_embeddings(str(exp / "models/avg_model.pt"), str(tmp_path / "e"),
                               feats_scp=str(exp / "feats.scp"), **{opt[2:]: int(value)})
