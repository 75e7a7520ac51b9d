"""The benchmarks of docs/distributed.md at tiny sizes: gpu_check --dry_run (every part on the
CPU, so the script works when a GPU is lent), the HTTP shard read benchmark, the lost-work
arithmetic of checkpoint_cost; and their docs tables."""

import json
import os
import sys
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import bench_shard_http, checkpoint_cost, gpu_check  # noqa: E402


def test_gpu_check_dry_run_runs_every_part_and_its_checks_hold(tmp_path):
    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--dry_run", "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["dry_run"] and data["batch"] == 4 and data["device"].startswith("CPU")
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
    text = gpu_check.render(data)
    assert "| fp16 | – | – | – | – | fp16 autocast needs CUDA |" in text
    assert "resumed: True, identical to an unbroken run: True" in text


def test_shard_http_benchmark_reads_the_same_bytes_every_way(tmp_path):
    out = tmp_path / "shard_http.json"
    bench_shard_http.main(["--utts", "12", "--seconds", "0.5", "--per_shard", "5",
                           "--repeats", "1", "--force", "--json", str(out)])
    data = json.loads(out.read_text())
    rows = {(r["mode"], r["kind"]): r for r in data["rows"]}
    assert set(rows) == {(m, k) for m in bench_shard_http.MODES
                         for k in ("read", "read + decode")}
    for row in rows.values():
        # every sample is a 0.5 s PCM16 wav: 44 header bytes + 16000 samples of 2 bytes
        assert row["mb_per_s"] * 1e6 / row["samples_per_s"] == pytest.approx(16044)
        if row["mode"] == "local file":
            assert row["vs_local"] == 1.0
    assert "| HTTP | read |" in bench_shard_http.render(data)


def test_checkpoint_cost_bounds_the_lost_work_by_the_interval_or_an_epoch():
    conf = SimpleNamespace(batch_size=200, save_interval_steps=3, num_epochs=10)
    # 1000 utterances: 5 global batches; 1 process: 5 steps/epoch, a save every 3 steps
    assert checkpoint_cost.lost_work(conf, 1000, 1) == {
        "world": 1, "steps_per_epoch": 5, "lost_steps": 3, "lost_samples": 600,
        "lost_epochs": 0.6, "lost_share_of_run": 0.06}
    # 2 processes: 4 global batches, 2 steps/epoch: the epoch-end save comes first
    assert checkpoint_cost.lost_work(conf, 1000, 2)["lost_steps"] == 2
    conf.save_interval_steps = 0                       # epoch ends only
    assert checkpoint_cost.lost_work(conf, 1000, 1)["lost_epochs"] == 1.0
