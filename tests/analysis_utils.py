"""A tiny analysis setup: features of 4 speakers, all-pair trials and a random tiny
MFA-Conformer experiment (tests/test_analysis.py, tests/test_study.py)."""

import kaldiio
import numpy as np
import torch
import yaml

from wespeaker_mfcon.models import build_model

FEAT_DIM = 20
NUM_BLOCKS = 3
D_MODEL = 32
MODEL_ARGS = dict(input_dim=FEAT_DIM, num_blocks=NUM_BLOCKS, output_size=D_MODEL,
                  attention_heads=2, linear_units=64, cnn_module_kernel=7, subsampling=4,
                  embed_dim=16, dropout_rate=0.1, positional_dropout_rate=0.1,
                  attention_dropout_rate=0.1)
SPEAKERS, UTTS = 4, 3


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


def make_tiny_setup(root):
    """exp/{config.yaml, models/avg_model.pt} of a tiny random MFA-Conformer, feats, trials."""
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
