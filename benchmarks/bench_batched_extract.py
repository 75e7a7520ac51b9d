"""Utterances/s of batched embedding extraction against one utterance at a time.

    python benchmarks/bench_batched_extract.py --exp_dir EXP --feats_scp DATA/test/feats.scp
        [--batch_size 16] [--max_frames 20000] [--jobs 1 2] [--repeats 3] [--json OUT] [--force]

Over the utterances of a stage-1 feats.scp (the fbank is not timed) and the experiment's
models/avg_model.pt, as stage 3 runs them (Embedder.embed_many, one thread per job):
  * PyTorch, batch 1: one utterance at a time;
  * PyTorch, batched: length-sorted, zero-padded batches with the padding masked;
  * ORT, batch 1: the deployable graph (input `feats` only, as stage 5 exports it);
  * ORT, equal lengths: that graph, batching only utterances of exactly the same length (all it
    can do without a mask);
  * ORT, batched: a graph exported here with a second input `lengths` (onnx_export.export with_lengths=True),
    length-sorted padded batches with the padding masked.
With J jobs the list is cut into J contiguous parts (as extract.sh does) embedded at once by J
worker processes; utterances/s = list size / wall time of the slowest job. Models are loaded
and warmed up once per worker before timing. Every repeat runs all modes in turn (interleaved),
so that machine load changing during the run hits them alike; speed-ups are medians of the
per-repeat ratios. Max |diff| compares every embedding with its batch-1 embedding from the same
backend (the batching criterion), and the last column with PyTorch batch 1 (the backends).
The table is speed_tables.render_batched_extract's.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time

import numpy as np

from wespeaker_mfcon.analysis.benchmarking import (add_bench_options, finish, load_avg,
                                                   quiet_exporter_logs, start)
from wespeaker_mfcon.analysis.speed_tables import render_batched_extract
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError

# mode -> (backend, graph, batch size: "1" or the --batch_size)
MODES = {"torch_1": ("torch", "pt", "1"), "torch_batched": ("torch", "pt", "n"),
         "ort_1": ("onnx", "plain", "1"), "ort_equal": ("onnx", "plain", "n"),
         "ort_batched": ("onnx", "lengths", "n")}


def read_feats(feats_scp):
    """[(T, F) float32] of every utterance in a feats.scp, in list order."""
    import kaldiio

    from wespeaker_mfcon.utils.file_utils import read_scp
    return [np.asarray(kaldiio.load_mat(spec), dtype=np.float32)
            for spec in read_scp(feats_scp).values()]


def worker(conn, models, feats_scp, part, num_parts, batch_size, max_frames):
    """One job: its contiguous part of the list; answers (mode) with (seconds, embeddings)."""
    import torch
    torch.set_num_threads(1)
    from wespeaker_mfcon.apps.embedder import Embedder

    feats = read_feats(feats_scp)
    bounds = np.linspace(0, len(feats), num_parts + 1).round().astype(int)
    feats = feats[bounds[part]:bounds[part + 1]]
    embedders = {graph: Embedder(path, num_threads=1) for graph, path in models.items()}
    conn.send("ready")
    for mode in iter(conn.recv, None):
        _, graph, size = MODES[mode]
        size = 1 if size == "1" else batch_size
        t0 = time.perf_counter()
        embs = embedders[graph].embed_many(feats, size, max_frames)
        conn.send((time.perf_counter() - t0, embs))


def start_workers(jobs, models, args):
    ctx = mp.get_context("spawn")
    workers = []
    for part in range(jobs):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(there, models, args.feats_scp, part, jobs,
                                                args.batch_size, args.max_frames), daemon=True)
        proc.start()
        workers.append((proc, here))
    for _, conn in workers:
        if conn.recv() != "ready":
            raise RuntimeError("worker failed to start")
    return workers


def run_mode(workers, mode):
    """All jobs at once: (wall seconds, (N, E) embeddings in list order)."""
    t0 = time.perf_counter()
    for _, conn in workers:
        conn.send(mode)
    replies = [conn.recv() for _, conn in workers]
    return time.perf_counter() - t0, np.concatenate([embs for _, embs in replies])


def stop_workers(workers):
    for proc, conn in workers:
        conn.send(None)
        proc.join(timeout=30)


def measure(jobs, models, modes, args, num_utts):
    """{mode: {"ups": [utts/s per repeat], "embs": embeddings}} after one warm-up pass."""
    workers = start_workers(jobs, models, args)
    try:
        out = {mode: {"ups": [], "embs": run_mode(workers, mode)[1]} for mode in modes}
        for rep in range(args.repeats):
            for mode in modes:
                seconds, _ = run_mode(workers, mode)
                out[mode]["ups"].append(num_utts / seconds)
            print(f"jobs={jobs} repeat {rep + 1}: " + ", ".join(
                f"{m} {out[m]['ups'][-1]:.1f}/s" for m in modes) + f" [load {load_avg()}]",
                flush=True)
    finally:
        stop_workers(workers)
    return out


def export_models(exp_dir, tmp, with_onnx):
    """{graph: model path}: the .pt, and with_onnx the plain and the lengths ONNX graphs."""
    from wespeaker_mfcon.models.embedding_net import load_embedding_net
    from wespeaker_mfcon.export.onnx import export

    pt = os.path.join(exp_dir, "models", "avg_model.pt")
    if not os.path.isfile(pt):
        raise UserError(f"{pt}: no such model")
    models = {"pt": pt}
    if with_onnx:
        net, conf = load_embedding_net(pt, os.path.join(exp_dir, "config.yaml"))
        for graph, with_lengths in (("plain", False), ("lengths", True)):
            models[graph] = os.path.join(tmp, f"{graph}.onnx")
            t0 = time.perf_counter()
            export(net, conf.feat_dim, models[graph], 18, with_lengths=with_lengths)
            print(f"exported {graph} graph in {time.perf_counter() - t0:.0f} s", flush=True)
    return models


def result_rows(results, batch_size):
    """Per jobs and mode: utterances/s of every pass, speed-up against batch 1 of the same
    backend (median of per-pass ratios), max abs diff against that and against PyTorch
    batch 1."""
    rows = []
    for jobs, out in results.items():
        for mode, r in out.items():
            base = out["torch_1" if mode.startswith("torch") else "ort_1"]
            rows.append({"jobs": jobs, "mode": mode,
                         "batch": 1 if MODES[mode][2] == "1" else batch_size,
                         "utts_per_s": r["ups"],
                         "speedup": statistics.median(u / b for u, b in zip(r["ups"],
                                                                            base["ups"])),
                         "max_diff_batch1": float(np.abs(r["embs"] - base["embs"]).max()),
                         "max_diff_torch1": float(np.abs(r["embs"]
                                                         - out["torch_1"]["embs"]).max())})
    return rows


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment dir with models/avg_model.pt")
    p.add_argument("--feats_scp", required=True, help="stage-1 feats.scp of the test list")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_frames", type=int, default=20000)
    p.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=3, help="timed passes per mode (median)")
    p.add_argument("--no_onnx", action="store_true", help="PyTorch only")
    add_bench_options(p)
    args = p.parse_args(argv)
    for name in ("batch_size", "max_frames", "repeats"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if min(args.jobs) < 1:
        raise UserError(f"--jobs must be positive integers, got {args.jobs}")
    return args


def main(argv=None):
    args = get_args(argv)
    record = start("batched_extract", "bench_batched_extract.py", argv, args.force)
    quiet_exporter_logs()
    num_utts = len(read_feats(args.feats_scp))
    print(f"{num_utts} utterances, {os.cpu_count()} CPUs, load average {load_avg()}", flush=True)
    modes = [m for m in MODES if not (args.no_onnx and m.startswith("ort"))]
    with tempfile.TemporaryDirectory(prefix="bench_batched_") as tmp:
        models = export_models(args.exp_dir, tmp, not args.no_onnx)
        results = {jobs: measure(jobs, models, modes, args, num_utts) for jobs in args.jobs}
    record.update(utterances=num_utts, feats_scp=args.feats_scp, repeats=args.repeats,
                  rows=result_rows(results, args.batch_size))
    print()
    print(render_batched_extract(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
