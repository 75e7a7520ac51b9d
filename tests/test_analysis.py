"""Analysis tools: per-block EER (analysis/block_eer.py), multi-seed comparison
(analysis/summarize_comparison.py), validation curves. The study scheduler: tests/test_study.py."""

import json
import os
import shutil
import subprocess

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from wespeaker_mfcon.analysis import block_eer, summarize_comparison
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.scoring.metrics import compute_eer, compute_min_dcf

from conftest import RECIPE, ROOT, python_env

FEAT_DIM = 20
NUM_BLOCKS = 3
D_MODEL = 32
MODEL_ARGS = dict(input_dim=FEAT_DIM, num_blocks=NUM_BLOCKS, output_size=D_MODEL,
                  attention_heads=2, linear_units=64, cnn_module_kernel=7, subsampling=4,
                  embed_dim=16, dropout_rate=0.1, positional_dropout_rate=0.1,
                  attention_dropout_rate=0.1)
SPEAKERS, UTTS = 4, 3


# ----------------------------------------------------------------------------- fixtures

def make_feats(seed=0, spread=0.8, jitter=0.0):
    """{utt: (T, F)} for 4 speakers x 3 utterances. Each speaker has its own per-dimension
    offset (removed by CMN) and its own per-dimension scale (kept by std pooling); two
    utterances share a length so they are forwarded in one batch. `spread`: how far the
    speakers' scales differ; `jitter`: per-utterance scale noise (harder trials)."""
    rng = np.random.default_rng(seed)
    lengths = [90, 90, 61, 77, 103, 120, 58, 95, 84, 66, 110, 73]
    feats = {}
    for s in range(SPEAKERS):
        offset = rng.normal(0, 3, FEAT_DIM)
        scale = np.exp(rng.normal(0, spread, FEAT_DIM))
        for u in range(UTTS):
            t = lengths[s * UTTS + u]
            noise = rng.standard_normal((t, FEAT_DIM))
            utt_scale = scale * np.exp(rng.normal(0, jitter, FEAT_DIM))
            feats[f"spk{s}-utt{u}"] = (offset + utt_scale * noise).astype(np.float32)
    return feats


def all_pair_trials(utts):
    lines = []
    for i, a in enumerate(utts):
        for b in utts[i + 1:]:
            lab = "target" if a.split("-")[0] == b.split("-")[0] else "nontarget"
            lines.append(f"{a} {b} {lab}")
    return lines


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """exp/{config.yaml, models/avg_model.pt} of a tiny random MFA-Conformer, feats, trials."""
    root = tmp_path_factory.mktemp("analysis")
    exp = root / "exp"
    (exp / "models").mkdir(parents=True)
    conf = {"model": "mfa_conformer", "model_args": MODEL_ARGS}
    (exp / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.manual_seed(0)
    model = build_model("mfa_conformer", MODEL_ARGS)
    torch.save({"model": model.state_dict()}, exp / "models" / "avg_model.pt")
    feats = make_feats(spread=0.3, jitter=0.3)
    feat_dir = root / "feats"
    feat_dir.mkdir()
    ark, scp = feat_dir / "feats.ark", feat_dir / "feats.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as w:
        for k, v in feats.items():
            w(k, v)
    trials = root / "test.kaldi"
    trials.write_text("\n".join(all_pair_trials(list(feats))) + "\n")
    return {"root": root, "exp": exp, "scp": str(scp), "trials": str(trials), "feats": feats,
            "model": model.eval()}


def direct_scores(vectors, trial_lines):
    """Cosine scores after subtracting the mean vector, computed independently."""
    keys = list(vectors)
    mat = np.stack([vectors[k] for k in keys]).astype(np.float64)
    mat = mat - mat.mean(axis=0)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    row = {k: i for i, k in enumerate(keys)}
    scores, labels = [], []
    for line in trial_lines:
        a, b, lab = line.split()
        scores.append(float(mat[row[a]] @ mat[row[b]]))
        labels.append(int(lab == "target"))
    return np.array(scores), np.array(labels)


# ----------------------------------------------------------------------------- block_eer

def test_block_eer_tiny_conformer_matches_direct_computation(tiny_setup):
    s = tiny_setup
    out = s["root"] / "block_eer.json"
    png = s["root"] / "block_eer.png"
    assert block_eer.main(["--exp_dir", str(s["exp"]), "--feats_scp", s["scp"],
                           "--trials", s["trials"], "--out", str(out), "--plot", str(png)]) == 0
    res = json.loads(out.read_text())
    assert [b["block"] for b in res["blocks"]] == list(range(1, NUM_BLOCKS + 1))
    assert all(b["dim"] == 2 * D_MODEL for b in res["blocks"])
    assert res["embedding"]["dim"] == 16
    assert res["num_trials"] == 66 and res["num_utts"] == 12 and res["trials"] == "test"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The same numbers, one utterance at a time, with the pooling written out here.
    pooled = [{} for _ in range(NUM_BLOCKS)]
    embeds = {}
    with torch.no_grad():
        for utt, mat in s["feats"].items():
            x = torch.from_numpy(mat)[None]
            emb, blocks = s["model"](x - x.mean(dim=1, keepdim=True))
            embeds[utt] = emb[0].numpy()
            for k, b in enumerate(blocks):
                b = b[0].double().numpy()
                pooled[k][utt] = np.concatenate([b.mean(axis=0), b.std(axis=0)])
    with open(s["trials"]) as f:
        lines = f.read().splitlines()
    eers = []
    for k in range(NUM_BLOCKS):
        scores, labels = direct_scores(pooled[k], lines)
        eer = compute_eer(scores, labels)[0] * 100
        eers.append(eer)
        assert res["blocks"][k]["eer"] == pytest.approx(eer, abs=1e-4)
        assert res["blocks"][k]["min_dcf_0.01"] == pytest.approx(
            compute_min_dcf(scores, labels, 0.01), abs=1e-4)
    scores, labels = direct_scores(embeds, lines)
    assert res["embedding"]["eer"] == pytest.approx(compute_eer(scores, labels)[0] * 100,
                                                    abs=1e-4)
    # Not a degenerate case: the blocks disagree with each other.
    assert len({round(e, 3) for e in eers}) > 1


class _StubModel(torch.nn.Module):
    """Block 1 = the first 10 feature dims, block 2 = 10 dims of pure noise; embedding =
    the time mean of the input (zero after CMN)."""

    def __init__(self, noise):
        super().__init__()
        self.noise = noise

    def forward(self, feats):
        b1 = feats[..., :10]
        b2 = torch.from_numpy(self.noise[feats.shape[1]])[None].expand(feats.shape[0], -1, -1)
        return feats.mean(dim=1) + 1.0, [b1, b2]


def test_block_eer_constructed_case():
    """Block 1 carries each speaker's per-dim scale (perfectly separable: EER 0); block 2
    is speaker-independent noise: its EER is whatever the direct computation says."""
    feats = make_feats(seed=3)
    rng = np.random.default_rng(7)
    lengths = {m.shape[0] for m in feats.values()}
    noise = {t: rng.standard_normal((t, 10)).astype(np.float32) for t in lengths}
    utts = list(feats)
    lines = all_pair_trials(utts)
    enroll = [l.split()[0] for l in lines]
    test = [l.split()[1] for l in lines]
    labels = np.array([int(l.split()[2] == "target") for l in lines], dtype=np.int8)
    res = block_eer.block_eer(_StubModel(noise), feats, enroll, test, labels, [0.01, 0.05])
    assert len(res["blocks"]) == 2
    assert res["blocks"][0]["eer"] == 0.0
    assert res["blocks"][0]["min_dcf_0.01"] == 0.0
    direct = {}
    for utt, mat in feats.items():
        b = noise[mat.shape[0]].astype(np.float64)
        direct[utt] = np.concatenate([b.mean(axis=0), b.std(axis=0)])
    # Utterances of equal length get identical block-2 vectors, so compute the expected EER.
    scores, lab = direct_scores(direct, lines)
    assert res["blocks"][1]["eer"] == pytest.approx(compute_eer(scores, lab)[0] * 100, abs=1e-4)
    assert res["blocks"][1]["eer"] > 10.0
    assert res["blocks"][1]["min_dcf_0.05"] == pytest.approx(
        compute_min_dcf(scores, lab, 0.05), abs=1e-4)
    # Reading in chunks (bounded memory) and batching by length change nothing.
    model = _StubModel(noise)
    a, ea = block_eer.pooled_block_features(model, feats, utts[::-1], batch_size=16)
    b, eb = block_eer.pooled_block_features(model, feats, utts[::-1], batch_size=1, chunk=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and np.array_equal(ea, eb)
    assert np.allclose(a[1][0], direct[utts[-1]])


def test_block_eer_missing_utterance(tiny_setup, tmp_path):
    s = tiny_setup
    trials = tmp_path / "bad.kaldi"
    trials.write_text("spk0-utt0 nobody target\nspk0-utt0 spk1-utt0 nontarget\n")
    with pytest.raises(UserError, match="nobody"):
        block_eer.main(["--exp_dir", str(s["exp"]), "--feats_scp", s["scp"],
                        "--trials", str(trials), "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- summary

def write_run(root, name, results, blocks=None):
    exp = root / name
    (exp / "scores").mkdir(parents=True)
    (exp / "scores" / "results.json").write_text(json.dumps(results))
    if blocks is not None:
        (exp / "block_eer.json").write_text(json.dumps(
            {"trials": "vox1_O", "blocks": [{"block": k + 1, "eer": e}
                                             for k, e in enumerate(blocks[:-1])],
             "embedding": {"eer": blocks[-1]}}))
    return f"{name}={exp}"


def res(cos_eer, cos_dcf, as_eer):
    return {"vox1_O": {"cosine": {"eer": cos_eer, "min_dcf_0.01": cos_dcf,
                                  "min_dcf_0.05": cos_dcf / 2, "eer_threshold": 0.3,
                                  "num_trials": 100},
                       "asnorm": {"eer": as_eer, "min_dcf_0.01": 0.5}}}


def test_summarize_comparison_numbers(tmp_path):
    runs = [
        # mfcon first on the command line: the baseline is found by name, not position
        write_run(tmp_path, "mfcon/seed1", res(9.0, 0.60, 7.0), [40, 20, 9.0]),
        write_run(tmp_path, "mfcon/seed2", res(9.5, 0.70, 7.1), [42, 24, 9.5]),
        write_run(tmp_path, "mfcon/seed3", res(10.0, 0.80, 7.2), [44, 22, 10.0]),
        write_run(tmp_path, "baseline/seed1", res(10.0, 0.90, 8.0), [50, 30, 10.0]),
        write_run(tmp_path, "baseline/seed2", res(12.0, 0.80, 8.2), [50, 30, 12.0]),
        write_run(tmp_path, "baseline/seed3", res(14.0, 0.70, 8.4)),   # no block_eer.json
        write_run(tmp_path, "single/seed1", res(11.0, 0.75, 9.0)),
    ]
    out = tmp_path / "cmp"
    assert summarize_comparison.main(["--runs", *runs, "--out_dir", str(out)]) == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["baseline"] == "baseline"
    v = summary["variants"]
    assert v["mfcon"]["seeds"] == ["seed1", "seed2", "seed3"]

    base = v["baseline"]["results"]["vox1_O"]["cosine"]["eer"]
    assert base["mean"] == pytest.approx(12.0) and base["std"] == pytest.approx(2.0)
    assert base["n"] == 3 and base["rel_change_pct"] == 0.0

    cos = v["mfcon"]["results"]["vox1_O"]["cosine"]
    assert cos["eer"]["mean"] == pytest.approx(9.5)
    assert cos["eer"]["std"] == pytest.approx(0.5)                # ddof=1
    assert cos["eer"]["rel_change_pct"] == pytest.approx(-2.5 / 12 * 100)   # -20.83 %
    assert cos["eer"]["exceeds_spread"] is False                  # 2.5 is not > 2.0 + 0.5
    assert cos["min_dcf_0.01"]["mean"] == pytest.approx(0.7)
    assert cos["min_dcf_0.01"]["std"] == pytest.approx(0.1)
    assert cos["min_dcf_0.05"]["mean"] == pytest.approx(0.35)
    assert "eer_threshold" not in cos

    asn = v["mfcon"]["results"]["vox1_O"]["asnorm"]["eer"]
    assert asn["mean"] == pytest.approx(7.1) and asn["std"] == pytest.approx(0.1)
    assert asn["rel_change_pct"] == pytest.approx((7.1 - 8.2) / 8.2 * 100)  # -13.41 %
    assert asn["exceeds_spread"] is True                           # 1.1 > 0.2 + 0.1

    single = v["single"]["results"]["vox1_O"]["cosine"]["eer"]
    assert single["n"] == 1 and single["std"] is None
    assert single["rel_change_pct"] == pytest.approx(-1 / 12 * 100)
    assert single["exceeds_spread"] is None

    blocks = v["mfcon"]["block_eer"]
    assert [b["block"] for b in blocks["blocks"]] == [1, 2]
    assert blocks["blocks"][0]["mean"] == pytest.approx(42.0)
    assert blocks["blocks"][0]["std"] == pytest.approx(2.0)
    assert blocks["blocks"][1]["std"] == pytest.approx(2.0)
    assert blocks["embedding"]["mean"] == pytest.approx(9.5)
    bb = v["baseline"]["block_eer"]
    assert bb["blocks"][0]["n"] == 2 and bb["blocks"][0]["std"] == pytest.approx(0.0)
    assert v["single"]["block_eer"] is None

    md = (out / "comparison.md").read_text()
    assert "| mfcon | cosine | 3 | 9.500 ± 0.500 | -20.83 | no |" in md
    assert "| mfcon | asnorm | 3 | 7.100 ± 0.100 | -13.41 | yes |" in md
    assert "| single | cosine | 1 | 11.000 | -8.33 | – |" in md
    assert "| mfcon | 3 | 42.00 ± 2.00 | 22.00 ± 2.00 | 9.50 ± 0.50 |" in md
    assert (out / "block_eer.png").read_bytes()[:4] == b"\x89PNG"

    # Explicit baseline flips the sign; an unknown one is an error.
    out2 = tmp_path / "cmp2"
    summarize_comparison.main(["--runs", *runs, "--baseline", "mfcon", "--out_dir", str(out2)])
    b2 = json.loads((out2 / "comparison.json").read_text())["variants"]["baseline"]
    assert b2["results"]["vox1_O"]["cosine"]["eer"]["rel_change_pct"] == pytest.approx(
        2.5 / 9.5 * 100)
    with pytest.raises(UserError, match="nope"):
        summarize_comparison.main(["--runs", *runs, "--baseline", "nope",
                                   "--out_dir", str(out2)])


def test_summarize_comparison_bad_runs(tmp_path):
    with pytest.raises(UserError, match="results.json"):
        summarize_comparison.main(["--runs", f"a/seed1={tmp_path / 'nothing'}",
                                   "--out_dir", str(tmp_path / "o")])
    with pytest.raises(UserError, match="VARIANT/SEED=EXP_DIR"):
        summarize_comparison.main(["--runs", "a/seed1", "--out_dir", str(tmp_path / "o")])
    run = write_run(tmp_path, "a/seed1", res(1.0, 0.1, 1.0))
    with pytest.raises(UserError, match="twice"):
        summarize_comparison.main(["--runs", run, run, "--out_dir", str(tmp_path / "o")])


# ----------------------------------------------------------------------------- variants

def test_read_variants(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("seed: 1\nmfcon_args: {enable: true, weight: 0.01}\n"
                    "dataset_args: {sampler: pk}\n")
    vf = tmp_path / "v.yaml"
    vf.write_text(f"mfcon:\n  config: {conf}\n  overrides: \"--mfcon_args.weight 0.1  "
                  f"--mfcon_args.blocks=[-2,-1]\"\nbaseline: {{config: {conf}}}\n"
                  f"random:\n  config: {conf}\n  overrides: [--dataset_args.sampler, random]\n")
    variants, baseline = summarize_comparison.read_variants(str(vf))
    assert variants == [
        ("mfcon", str(conf), ["--mfcon_args.weight=0.1", "--mfcon_args.blocks=[-2,-1]"]),
        ("baseline", str(conf), []),
        ("random", str(conf), ["--dataset_args.sampler=random"]),
    ]
    assert baseline == "baseline"

    for text, match in [
        (f"a/b: {{config: {conf}}}\n", "names may hold"),
        ("a: {config: missing.yaml}\n", "not found"),
        (f"a: {{config: {conf}, overrides: '--nokey 1'}}\n", "override --nokey: unknown key"),
        (f"a: {{config: {conf}, overrides: '--seed'}}\n", "needs a value"),
        (f"a: {{config: {conf}, overides: '--seed 2'}}\n", "unknown keys"),
        (f"a: {{config: {conf}, overrides: '--seed 2 | x'}}\n", "shell characters"),
    ]:
        vf.write_text(text)
        with pytest.raises(UserError, match=match):
            summarize_comparison.read_variants(str(vf))


def test_shipped_variant_files(monkeypatch):
    monkeypatch.chdir(RECIPE)
    variants, _ = summarize_comparison.read_variants("conf/compare/mfcon_lambda.yaml")
    assert variants[:2] == [("baseline", "conf/mfa_conformer_small.yaml", []),
                            ("mfcon", "conf/mfa_conformer_mfcon_small.yaml",
                             ["--mfcon_args.weight=0.01"])]
    variants, baseline = summarize_comparison.read_variants("conf/compare/ablations.yaml")
    assert baseline == "baseline"
    opts = {name: " ".join(tokens) for name, _, tokens in variants}
    assert {"--mfcon_args.weight=0.03", "--mfcon_args.weight=0.1"} <= set(opts.values())
    assert any("temperature=0.2" in o for o in opts.values())
    assert any("sampler=random" in o for o in opts.values())
    assert any("two_crops=true" in o and "utts_per_spk=1" in o for o in opts.values())

    variants, baseline = summarize_comparison.read_variants("conf/compare/mfcon_lambda.yaml")
    assert baseline == "baseline"
    assert [" ".join(t) for _, _, t in variants] == [
        "", "--mfcon_args.weight=0.01", "--mfcon_args.weight=0.3", "--mfcon_args.weight=1.0",
        "--mfcon_args.weight=3.0", "--mfcon_args.weight=10.0"]
    variants, _ = summarize_comparison.read_variants("conf/compare/mfcon_blocks.yaml")
    assert [" ".join(t) for _, _, t in variants][2:] == [
        "--mfcon_args.weight=1.0 --mfcon_args.blocks=[-1]"]
    variants, _ = summarize_comparison.read_variants("conf/compare/mfcon_batches.yaml")
    assert [(n, " ".join(t)) for n, _, t in variants][2:] == [
        ("mfcon_l3.0_random", "--mfcon_args.weight=3.0 --dataset_args.sampler=random"),
        ("mfcon_l3.0_2crops", "--mfcon_args.weight=3.0 --dataset_args.two_crops=true "
         "--dataset_args.spk_per_batch=32 --dataset_args.utts_per_spk=1")]
    # the long-schedule pair differs only in MFCon
    (_, base_conf, base_t), (_, mf_conf, mf_t) = summarize_comparison.read_variants(
        "conf/compare/mfcon_long.yaml")[0]
    assert "mfcon" not in base_conf and "mfcon" in mf_conf
    assert mf_t == ["--mfcon_args.weight=1.0"] + base_t and "--num_epochs=24" in base_t


