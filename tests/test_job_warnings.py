"""Warnings logged by parallel jobs reach the console: make_fbank.sh, run_jobs.sh, extract.sh."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import RECIPE, ROOT, python_env
from train_utils import TINY_MODEL
from wespeaker_mfcon.models import build_model

TOOLS = os.path.join(ROOT, "tools")


def _corpus(root):
    """wav.scp of five 16 kHz mono files, one stereo file and one 8 kHz file (0.5 s each)."""
    rng = np.random.default_rng(0)
    os.makedirs(root / "wav", exist_ok=True)
    lines = []
    for i, (name, sr, channels) in enumerate(
            [("a", 16000, 1), ("b", 16000, 1), ("odd-stereo", 16000, 2), ("c", 16000, 1),
             ("odd-8k", 8000, 1), ("d", 16000, 1), ("e", 16000, 1)]):
        path = root / "wav" / f"{name}.wav"
        x = 0.1 * rng.standard_normal((sr // 2, channels)) + 0.2 * np.sin(np.arange(sr // 2)
                                                                           * 0.03 * (i + 1))[:, None]
        sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
        lines.append(f"utt{i} {path}\n")
    (root / "wav.scp").write_text("".join(lines))
    return root


def _warning_report(stderr, num, logs):
    """The report's lines; checks the count line, the shown lines and the per-log line."""
    lines = stderr.splitlines()
    head = [i for i, line in enumerate(lines) if f"{num} warnings in the job logs" in line]
    assert len(head) == 1, stderr
    shown = []
    for line in lines[head[0] + 1:]:
        if not line.startswith("    "):
            break
        shown.append(line.strip())
    assert all(re.match(r"\d\d:\d\d:\d\d WARNING ", s) for s in shown), shown
    by_log = [line for line in lines if "by log:" in line]
    assert len(by_log) == 1, stderr
    for log, n in logs.items():
        assert f"{log} ({n})" in by_log[0], by_log[0]
    return shown


def test_make_fbank_reports_resampled_and_downmixed_files(tmp_path):
    data = _corpus(tmp_path / "data")
    r = subprocess.run(["bash", os.path.join(TOOLS, "make_fbank.sh"), "--nj", "2", "--python",
                        sys.executable, str(data)], capture_output=True, text=True,
                       env=python_env())
    assert r.returncode == 0, r.stderr
    assert (data / "feats.scp").exists()
    # split_scp gives job 1 utt0..utt3 (the stereo file), job 2 utt4..utt6 (the 8 kHz file)
    shown = _warning_report(r.stderr, 2, {data / "log" / "fbank.1.log": 1,
                                          data / "log" / "fbank.2.log": 1})
    assert len(shown) == 2
    assert any("odd-stereo.wav: 2 channels" in s for s in shown)
    assert any("odd-8k.wav: sample rate 8000 Hz" in s for s in shown)
    assert "odd" not in r.stdout      # the report goes to stderr only


JOB = ("import logging, sys; from wespeaker_mfcon.utils.entrypoint import setup_logging; "
       "setup_logging(); logging.info('job JOB starts'); "
       "[logging.warning('job JOB: odd input %d', i) for i in range(3)]; "
       "print('\\r 50%|##  | WARNING not a log line'); sys.exit(JOB == 2)")


def test_run_jobs_reports_warnings_even_when_a_job_fails(tmp_path):
    log = str(tmp_path / "log" / "job.JOB.log")
    r = subprocess.run(["bash", os.path.join(TOOLS, "run_jobs.sh"), "JOB=1:3", log,
                        sys.executable, "-c", JOB], capture_output=True, text=True,
                       env=python_env())
    assert r.returncode == 1
    logs = {log.replace("JOB", str(j)): 3 for j in (1, 2, 3)}
    shown = _warning_report(r.stderr, 9, logs)
    assert "the first 5:" in r.stderr and len(shown) == 5
    assert shown[0].endswith("WARNING job 1: odd input 0")
    assert shown[4].endswith("WARNING job 2: odd input 1")
    assert "job 2 of 3 failed" in r.stderr and "job 1 of 3" not in r.stderr
    # the failure comes after the warnings, as the last thing on the console
    assert r.stderr.index("by log:") < r.stderr.index("job 2 of 3 failed")


def test_run_jobs_quiet_without_warnings(tmp_path):
    log = str(tmp_path / "job.JOB.log")
    r = subprocess.run(["bash", os.path.join(TOOLS, "run_jobs.sh"), "JOB=1:2", log,
                        sys.executable, "-c", "print('10:00:00 INFO fine')"],
                       capture_output=True, text=True, env=python_env())
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.fixture(scope="module")
def tiny_exp(tmp_path_factory):
    """The smallest experiment extract.sh takes: config.yaml + an untrained model state dict."""
    root = tmp_path_factory.mktemp("exp")
    model_args = dict(TINY_MODEL, input_dim=80)
    (root / "models").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump({"model": "mfa_conformer",
                                                      "model_args": model_args}))
    torch.manual_seed(0)
    model = build_model("mfa_conformer", model_args)
    torch.save({"model": model.state_dict()}, root / "models" / "avg_model.pt")
    return root


def test_extract_sh_reports_warnings(tmp_path, tiny_exp):
    data = _corpus(tmp_path / "data")
    out = tmp_path / "emb"
    r = subprocess.run(["bash", "extract.sh", "--model", str(tiny_exp / "models/avg_model.pt"),
                        "--wav_scp", str(data / "wav.scp"), "--out_dir", str(out), "--nj", "2"],
                       cwd=RECIPE, capture_output=True, text=True, env=python_env())
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((out / "xvector.scp").read_text().splitlines()) == 7
    shown = _warning_report(r.stderr, 2, {out / "log" / "extract.1.log": 1,
                                          out / "log" / "extract.2.log": 1})
    assert any("odd-stereo.wav: 2 channels" in s for s in shown)
    assert any("odd-8k.wav: sample rate 8000 Hz" in s for s in shown)
