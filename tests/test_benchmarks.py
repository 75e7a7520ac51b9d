"""The benchmarks as users run them: no speed figures from a busy machine unless --force (and
then every table says so), the JSON record and the docs table it renders to, the public entry
points they measure through, and no script that edits sys.path."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, python_env
from train_utils import tiny_config
from wespeaker_mfcon.analysis import benchmarking, tables
from wespeaker_mfcon.analysis.shard_batching import batch_structure
from wespeaker_mfcon.training.step import TrainStep
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.utils.errors import UserError

CPUS = os.cpu_count() or 1


def test_a_busy_machine_is_refused_without_force():
    with pytest.raises(UserError, match=rf"load average {CPUS + 1.5:.2f} > {CPUS} CPUs"):
        benchmarking.require_idle(force=False, load=CPUS + 1.5)
    assert benchmarking.require_idle(force=False, load=CPUS - 0.5) == ""


def test_with_force_every_table_says_it_was_measured_under_load():
    banner = benchmarking.require_idle(force=True, load=CPUS + 1.5)
    assert banner.startswith("**MEASURED UNDER LOAD**")
    record = {"under_load": banner, "command": "python benchmarks/x.py", "host": "h",
              "trials": 10, "utts": 5, "speakers": 3, "dim": 4, "method": "asnorm",
              "top_n": 2, "cosine_s": 0.5, "norm_s": 0.25}
    render = tables.renderers()["speed_asnorm"]
    assert render(record).startswith(banner + "\n\n")
    assert render(dict(record, under_load="")).startswith("Measured on h.")


def test_bench_asnorm_writes_a_record_that_renders_its_figures(tmp_path):
    """The normalization agrees with the per-trial reference; stdout is the docs table."""
    out = tmp_path / "asnorm.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_asnorm.py"),
                           "--trials", "3000", "--utts", "300", "--speakers", "120",
                           "--top_n", "50", "--check", "40", "--force", "--json", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "asnorm" and data["check_trials"] == 40
    assert data["check_max_abs_diff"] < 1e-5 and data["cosine_s"] > 0 and data["norm_s"] > 0
    assert "bench_asnorm.py --trials 3000" in data["command"] and "cores" in data["host"]
    table = tables.renderers()["speed_asnorm"](data)
    assert (f"| 3,000 | 300 | 120 | 192 | asnorm top 50 | {data['cosine_s']:.2f} | "
            f"{data['norm_s']:.2f} |") in table
    assert proc.stdout.strip().endswith(table.strip())


def test_no_script_edits_sys_path():
    scripts = [p for pattern in ("benchmarks/*.py", "tools/*.py", "tests/*.py",
                                 "tests/fixtures/*.py", "examples/**/*.py")
               for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)]
    assert len(scripts) > 20
    edits = [p for p in scripts
             if re.search(r"sys\.path\.(insert|append)\(|noqa: E40[2]", open(p).read())]
    assert edits == []


HELP_ALL = """
import contextlib, io, json, runpy, sys
out = {}
for script in sys.argv[1:]:
    sys.argv, text = [script, "--help"], io.StringIO()
    try:
        with contextlib.redirect_stdout(text):
            runpy.run_path(script, run_name="__main__")
        code = "no exit"
    except SystemExit as e:
        code = e.code
    except Exception as e:                       # an import that fails, named per script
        code = repr(e)
    out[script] = [code, text.getvalue()]
print(json.dumps(out))
"""


def test_every_benchmark_imports_the_package_only_and_has_help(tmp_path):
    """Every benchmarks/*.py, run from elsewhere without its folder on sys.path (runpy, one
    process for all), imports and answers --help: none needs a module beside it."""
    scripts = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
    proc = subprocess.run([sys.executable, "-c", HELP_ALL, *scripts], capture_output=True,
                          text=True, cwd=tmp_path, env=python_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result) == len(scripts) >= 15
    for script, (code, text) in result.items():
        assert (code, text.split()[:2]) == (0, ["usage:", os.path.basename(script)]), script


def test_train_step_is_a_training_step(tmp_path):
    """TrainStep: same seed, same stats; the loss falls on a repeated batch; without MFCon
    the MFCon loss and weight are 0."""
    gen = torch.Generator().manual_seed(0)
    chunks = torch.randn(8, 120, 20, generator=gen) * 3
    labels = torch.arange(4).repeat_interleave(2)
    for mfcon in (True, False):
        conf = load_train_config(tiny_config(tmp_path / f"c{mfcon}.yaml", mfcon=mfcon))
        conf.num_classes = 4
        steps = []
        for _ in range(2):
            torch.manual_seed(0)
            steps.append(TrainStep(conf))
        firsts = []
        for step in steps:
            torch.manual_seed(1)                  # the same dropout masks
            firsts.append(step(chunks, labels))
        assert torch.equal(firsts[0], firsts[1])
        for _ in range(5):
            last = steps[0](chunks, labels)
        assert steps[0].steps == 6 and last[0] < firsts[0][0]
        assert bool(firsts[0][2] > 0) == mfcon and bool(firsts[0][4] > 0) == mfcon


def test_batch_structure_counts_hand_made_orders():
    """P 2 x K 2, buffer 4, no shuffle: 4 speakers in runs of 2 make 2 full batches of 4
    distinct utterances (4 speakers in a window of 2); steps cut the pass; a speaker short of
    K is topped up with its own sample; 2 speakers can never fill P 3."""
    shape = dict(spk_per_batch=2, utts_per_spk=2, shuffle_size=1, buffer_size=4)
    got = batch_structure([0, 0, 1, 1, 2, 2, 3, 3], steps=10, window=2, **shape)
    assert got == {"batches": 2, "topped": 0, "distinct": 4.0, "speakers_per_window": 4.0}
    assert batch_structure([0, 0, 1, 1, 2, 2, 3, 3], steps=1, **shape)["batches"] == 1
    got = batch_structure([0, 0, 0, 1], steps=10, **shape)
    assert got == {"batches": 1, "topped": 1, "distinct": 3.0, "speakers_per_window": None}
    got = batch_structure([0, 0, 0, 0, 1, 1, 1, 1], steps=10, spk_per_batch=3, utts_per_spk=2,
                          shuffle_size=1, buffer_size=8)
    assert got["batches"] == 0
