"""Smoke runs of benchmarks/bench_scale.py as users run it: every measurement at a tiny size,
and the shard batch structure that speaker-run shards buy; both through their JSON records."""

import json
import os
import subprocess
import sys

from conftest import ROOT, python_env
from wespeaker_mfcon.analysis import tables

SCRIPT = os.path.join(ROOT, "benchmarks", "bench_scale.py")


def run_bench(tmp_path, args):
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, SCRIPT, *args, "--json", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=python_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    text = tables.renderers()["speed_scale"](res)
    assert proc.stdout.strip().endswith(text.strip())       # the console shows the docs table
    return res, text


def test_bench_scale_smoke(tmp_path):
    res, text = run_bench(tmp_path, [
        "--sizes", "1000", "2000", "--stage0_max", "1000", "--write_utts", "200",
        "--read_utts", "400", "--read_batches", "1", "--trials", "10000", "--score_utts",
        "2000", "--cohort", "600", "--force"])
    for title in ("Epoch build", "Stage 0", "Shard write", "Shard read", "Scoring"):
        assert f"**{title}" in text
    sampling = res["sampling"]
    assert {(r["what"], r["world"]) for r in sampling} == {
        ("PKBatchSampler", 1), ("PKBatchSampler", 4),
        ("PKBatcher (shard stream)", 1), ("PKBatcher (shard stream)", 4)}
    assert all(r["s"] > 0 and r["peak_mb"] > 0 for r in sampling)
    assert all(r["ratio"] is not None for r in sampling if r["utts"] == 2000)
    assert [r["batches"] for r in sampling if r["what"] == "PKBatchSampler"
            and r["utts"] == 2000] == [10, 2]
    assert [(r["utts"], r["nj"]) for r in res["stage0"]] == [(1000, 1), (1000, 2)]
    assert len(res["write"]) == 4 and all(r["utt_per_s"] > 0 for r in res["write"])
    assert [r["chunks"] for r in res["read"]] == [200, 200]
    assert res["scoring"]["asnorm_s"] >= 0 and res["scoring"]["trials"] == 10000


def test_bench_scale_batching_only_shows_what_speaker_runs_buy(tmp_path):
    """60,000 utterances over 5,994 speakers (~10 each): runs of 4 read without a shuffle
    buffer give nearly all-distinct batches where a plain shuffle repeats files."""
    res, text = run_bench(tmp_path, ["--batching_only", "--sizes", "60000"])
    rows = {(r["group_size"], r["shuffle_size"]): r for r in res["batching"]}
    assert set(rows) == {(1, 1000), (1, 1), (4, 1000), (4, 1)}
    assert all(r["batches"] == 300 for r in rows.values())
    assert rows[(1, 1000)]["distinct"] < 100 and rows[(4, 1)]["distinct"] > 180
    assert rows[(4, 1)]["speakers_per_10"] > 400
    assert "speaker runs of 4" in text and "MEASURED UNDER LOAD" not in text
