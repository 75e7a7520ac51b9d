import os
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon")


def write_tree(root, speakers=3, videos=2, utts=2, seconds=1.0, seed=0):
    """A tiny VoxCeleb-layout tree of noisy tones; returns the relative wav paths."""
    rng = np.random.default_rng(seed)
    rels = []
    for s in range(speakers):
        for v in range(videos):
            for u in range(utts):
                rel = f"id1{s:04d}/vid{v}/{u + 1:05d}.wav"
                t = np.arange(int(16000 * seconds)) / 16000
                wave = 0.3 * np.sin(2 * np.pi * (120 + 40 * s) * t) + 0.01 * rng.standard_normal(t.size)
                os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
                sf.write(os.path.join(root, rel), wave, 16000, subtype="PCM_16")
                rels.append(rel)
    return rels


def write_vox_trials(path, rels):
    """VoxCeleb-format trials: every pair of the first utts across videos."""
    lines = []
    for i, a in enumerate(rels):
        for b in rels[i + 1:]:
            lines.append(f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


@pytest.fixture
def vox_tree(tmp_path):
    root = tmp_path / "vox"
    rels = write_tree(str(root))
    trials = tmp_path / "trials.txt"
    n = write_vox_trials(str(trials), rels)
    return str(root), str(trials), rels, n


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """exp/{config.yaml, models/avg_model.pt} of a tiny random MFA-Conformer, feats, trials."""
    from analysis_utils import make_tiny_setup
    return make_tiny_setup(tmp_path_factory.mktemp("analysis"))
