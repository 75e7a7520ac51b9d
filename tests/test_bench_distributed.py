"""The benchmarks of docs/distributed.md as users run them, at tiny sizes: gpu_check --dry_run
(every part on the CPU, so the script works when a GPU is lent), the HTTP shard read benchmark,
checkpoint_cost on a tiny config and its lost-work arithmetic; each through its JSON record and
the docs table it renders to (the console shows the same table)."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import ROOT, python_env
from train_utils import tiny_config
from wespeaker_mfcon.analysis import tables
from wespeaker_mfcon.analysis.distributed_tables import lost_work


def run_bench(tmp_path, script, name, *args):
    """Run benchmarks/SCRIPT ARGS --json; its record, and its docs table (renderer NAME),
    which must be what it printed."""
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args,
                           "--json", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env=python_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    text = tables.renderers()[name](data)
    assert proc.stdout.strip().endswith(text.strip())
    assert f"benchmarks/{script}" in data["command"] and "cores" in data["host"]
    return data, text


def test_gpu_check_dry_run_runs_every_part_and_its_checks_hold(tmp_path):
    """Tiny sizes (one timed step, a 3-step epoch in the resume check); a dry run measures
    nothing, so it runs on a busy machine without --force."""
    data, text = run_bench(tmp_path, "gpu_check.py", "gpu_check", "--dry_run")
    assert data["dry_run"] and data["batch"] == 4 and data["device"].startswith("CPU")
    assert not data["timed"] and data["under_load"] == ""
    for name in ("fp32", "bf16"):
        part = data["train"][name]
        for variant in ("mfcon", "baseline"):      # batch 4: samples/s = 4 / step time
            assert part[variant]["samples_per_s"] == pytest.approx(
                4000 / part[variant]["step_ms"])
        assert part["mfcon_overhead_pct"] == pytest.approx(
            100 * (part["mfcon"]["step_ms"] / part["baseline"]["step_ms"] - 1))
    assert data["train"]["fp16"] == {"skipped": "fp16 autocast needs CUDA"}
    run = data["torchrun"]
    assert run["collectives"] == {"ok": True, "world_size": 1, "backend": "gloo",
                                  "all_reduce_and_broadcast": True}
    assert run["resume"] == {"ok": True, "resumed": True, "identical": True,
                             "max_abs_diff": 0.0}
    ext = data["extraction"]
    assert ext["utts"] == 6 and ext["max_abs_diff"] < 1e-5     # batching changes nothing
    assert ext["speedup"] == pytest.approx(ext["batched_utts_per_s"] / ext["batch_1_utts_per_s"])
    ort = data["onnxruntime"]
    assert ort["provider"] == "CPUExecutionProvider" and ort["max_abs_diff"] < 1e-5
    assert "| fp16 | – | – | – | – | fp16 autocast needs CUDA |" in text
    assert "resumed: True, identical to an unbroken run: True" in text


def test_shard_http_benchmark_reads_the_same_bytes_every_way(tmp_path):
    data, text = run_bench(tmp_path, "bench_shard_http.py", "shard_http", "--utts", "12",
                           "--seconds", "0.5", "--per_shard", "5", "--repeats", "1", "--force")
    rows = {(r["mode"], r["kind"]): r for r in data["rows"]}
    assert set(rows) == {(m, k) for m in ("local file", "HTTP", "pipe:cat")
                         for k in ("read", "read + decode")}
    for row in rows.values():
        # every sample is a 0.5 s PCM16 wav: 44 header bytes + 16000 samples of 2 bytes
        assert row["mb_per_s"] * 1e6 / row["samples_per_s"] == pytest.approx(16044)
        if row["mode"] == "local file":
            assert row["vs_local"] == 1.0
    assert "| HTTP | read |" in text
    assert "12 utterances of 0.5 s in shards of 5, median of 1 interleaved repeats" in text


def test_checkpoint_cost_bounds_the_lost_work_by_the_interval_or_an_epoch():
    conf = SimpleNamespace(batch_size=200, save_interval_steps=3, num_epochs=10)
    # 1000 utterances: 5 global batches; 1 process: 5 steps/epoch, a save every 3 steps
    assert lost_work(conf, 1000, 1) == {
        "world": 1, "steps_per_epoch": 5, "lost_steps": 3, "lost_samples": 600,
        "lost_epochs": 0.6, "lost_share_of_run": 0.06}
    # 2 processes: 4 global batches, 2 steps/epoch: the epoch-end save comes first
    assert lost_work(conf, 1000, 2)["lost_steps"] == 2
    conf.save_interval_steps = 0                       # epoch ends only
    assert lost_work(conf, 1000, 1)["lost_epochs"] == 1.0


def test_checkpoint_cost_saves_and_loads_the_training_state_of_a_config(tmp_path):
    """A tiny config (batch 3 x 2, a save every 6 steps, 60 utterances: 10 steps an epoch on
    one process, 5 on two): its lost-work rows are lost_work's; the checkpoint holds fp32
    weights and Adam's two moments of every parameter."""
    config = tiny_config(tmp_path / "tiny.yaml", save_interval_steps=6, num_epochs=5)
    data, text = run_bench(tmp_path, "checkpoint_cost.py", "checkpoint_cost", "--config",
                           str(config), "--utts", "60", "--speakers", "7", "--worlds", "1", "2",
                           "--force")
    conf = SimpleNamespace(batch_size=6, save_interval_steps=6, num_epochs=5)
    assert data["worlds"] == [lost_work(conf, 60, 1), lost_work(conf, 60, 2)]
    assert [r["lost_steps"] for r in data["worlds"]] == [6, 5]
    ck = data["checkpoint"]
    assert ck["bytes"] > 3 * 4 * ck["parameters"]
    assert ck["save_s"] > 0 and ck["load_s"] > 0
    assert "| 2 | 5 | 5 | 60 | 1.00 | 20.00% |" in text
