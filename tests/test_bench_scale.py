"""Smoke run of benchmarks/bench_scale.py: every measurement at a tiny size."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import bench_scale  # noqa: E402


def test_bench_scale_smoke(tmp_path, capsys):
    out = tmp_path / "scale.json"
    bench_scale.main(["--sizes", "1000", "2000", "--stage0_max", "1000", "--write_utts", "200",
                      "--read_utts", "400", "--read_batches", "1", "--trials", "10000",
                      "--score_utts", "2000", "--cohort", "600", "--force", "--json", str(out)])
    res = json.loads(out.read_text())
    text = capsys.readouterr().out
    for title in ("1. Epoch build", "2. Stage 0", "3. Shard write", "4. Shard read",
                  "5. Scoring", "command: "):
        assert title in text
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
    assert res["scoring"]["asnorm_s"] >= 0


def test_bench_scale_batching_only_shows_what_speaker_runs_buy(tmp_path, capsys):
    """60,000 utterances over 5,994 speakers (~10 each): runs of 4 read without a shuffle
    buffer give nearly all-distinct batches where a plain shuffle repeats files."""
    out = tmp_path / "batching.json"
    bench_scale.main(["--batching_only", "--sizes", "60000", "--json", str(out)])
    rows = {(r["group_size"], r["shuffle_size"]): r for r in json.loads(out.read_text())["batching"]}
    assert set(rows) == {(1, 1000), (1, 1), (4, 1000), (4, 1)}
    assert all(r["batches"] == 300 for r in rows.values())
    assert rows[(1, 1000)]["distinct"] < 100 and rows[(4, 1)]["distinct"] > 180
    assert rows[(4, 1)]["speakers_per_10"] > 400
    assert "speaker runs of 4" in capsys.readouterr().out
