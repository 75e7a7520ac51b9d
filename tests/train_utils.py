"""Tiny learnable feature data dirs and configs for training tests."""

import os

import kaldiio
import numpy as np
import torch
import yaml

from wespeaker_mfcon.config import parse_overrides
from wespeaker_mfcon.training.run import train

TINY_MODEL = {"input_dim": 20, "num_blocks": 2, "output_size": 32, "attention_heads": 2,
              "linear_units": 64, "cnn_module_kernel": 7, "subsampling": 4, "embed_dim": 16,
              "dropout_rate": 0.1, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0}


def make_feats_dir(path, num_spk=6, utts=4, dim=20, seed=0):
    """Speaker = a fixed spectral offset pattern + noise; utterances of 60-140 frames."""
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    patterns = rng.standard_normal((num_spk, dim)) * 1.5
    utt2spk = {}
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as writer:
        for s in range(num_spk):
            for u in range(utts):
                utt = f"spk{s}/v/{u:05d}"
                frames = int(rng.integers(60, 140))
                feats = patterns[s] + rng.standard_normal((frames, dim)) + rng.standard_normal(dim)
                writer(utt, feats.astype(np.float32))
                utt2spk[utt] = f"spk{s}"
    with open(f"{path}/utt2spk", "w") as f:
        f.writelines(f"{u} {s}\n" for u, s in sorted(utt2spk.items()))
    return path


def tiny_config(path, mfcon=True, **extra):
    conf = {
        "seed": 3, "num_epochs": 2, "data_type": "feat",
        "dataset_args": {"num_frames": 50, "sampler": "pk", "spk_per_batch": 3,
                         "utts_per_spk": 2, "spec_aug": True,
                         "spec_aug_args": {"max_t": 5, "max_f": 3, "prob": 0.5}},
        "dataloader_args": {"num_workers": 0},
        "model": "mfa_conformer", "model_args": dict(TINY_MODEL),
        "projection_args": {"project_type": "am_softmax", "scale": 30.0, "margin": 0.2},
        "mfcon_args": {"enable": mfcon, "weight": 0.1, "temperature": 0.07},
        "optimizer": "adam", "optimizer_args": {"lr": 0.002, "weight_decay": 1.0e-7},
        "scheduler_args": {"warmup_steps": 3, "decay": "step", "step_epochs": 1, "gamma": 0.5},
        "log_batch_interval": 1, "save_interval_steps": 0,
    }
    conf.update(extra)
    with open(path, "w") as f:
        yaml.safe_dump(conf, f)
    return path


def run_train(conf, exp, data, *options):
    """Train as `python -m wespeaker_mfcon.bin.train --config CONF --exp_dir EXP --train_data
    DATA OPTIONS` does: OPTIONS are config overrides ("--num_epochs", "2"; "--init_from", CKPT
    is one too)."""
    train(str(conf), str(exp), str(data), overrides=parse_overrides([str(o) for o in options]))


class EmbedOnly(torch.nn.Module):
    """A backbone that returns only its embedding (what an export parity test compares)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats):
        return self.model(feats)[0]
