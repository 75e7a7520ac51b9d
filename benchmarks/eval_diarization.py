"""Diarization accuracy (DER, JER by pyannote.metrics) and speed on generated conversations,
for a trained model and for the trivial log-mel mean+std embedding, as JSON for the docs.

  python benchmarks/eval_diarization.py --model examples/voxceleb/v2_mfcon/exp/demo \
      --data examples/voxceleb/v2_mfcon/data_conv --num 20 --json docs/results/diarization.json

Makes --num conversations in --data if they are not there (synth/conversations.py), then per
recording runs the VAD once and embeds its windows once per embedder (or takes both from
--cache), and scores every system on the same windows (the steps of apps/diarize.diarize):

  model, calibrated count   the speaker count from the calibration (AHC while the LLR says same)
  model, eigengap count     spectral clustering's own count (no calibration)
  log-mel stats, eigengap   the baseline embedding: mean and std over time of the fbank
  ..., oracle count         each with the true number of speakers

Speed: CPU seconds of each step per second of audio (real-time factor) on one thread (torch,
ONNX Runtime and BLAS limited to one), with the load average of the machine beside it. The
tables are analysis/diarization.render_accuracy's and render_speed's.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, start
from wespeaker_mfcon.analysis.diarization import render_accuracy, render_speed
from wespeaker_mfcon.apps.clustering import cluster
from wespeaker_mfcon.apps.diarize import DiarizeOptions, embed_windows, resegment
from wespeaker_mfcon.apps.embedder import StatsEmbedder, load_model
from wespeaker_mfcon.apps.vad import SileroVad
from wespeaker_mfcon.bin.make_conversations import main as make_conversations
from wespeaker_mfcon.scoring.diarization import score_turns
from wespeaker_mfcon.scoring.rttm import read_rttm
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.file_utils import atomic_path, read_scp


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="exp dir (with calibration.json), .pt, .onnx")
    p.add_argument("--data", required=True, help="conversations dir (made here if absent)")
    p.add_argument("--num", type=int, default=20, help="conversations to make if absent")
    p.add_argument("--cache", default=None,
                   help="keep each recording's VAD segments and window embeddings here (with "
                        "their CPU seconds) and reuse them; clear it when the model changes")
    add_bench_options(p)
    return p.parse_args(argv)


class Clock:
    """CPU seconds per named step (process time: one thread = one core)."""

    def __init__(self):
        self.cpu = {}

    def run(self, step, fn, *args, **kwargs):
        t0 = time.process_time()
        out = fn(*args, **kwargs)
        self.cpu[step] = self.cpu.get(step, 0.0) + time.process_time() - t0
        return out


def _systems(model):
    """{system name: (embedder key, use the calibration?, oracle count?)}."""
    out = {}
    for oracle in (False, True):
        tail = ", oracle count" if oracle else ""
        if model.calibration is not None:
            out[f"model, calibrated count{tail}"] = ("model", True, oracle)
        out[f"model, eigengap count{tail}"] = ("model", False, oracle)
        out[f"log-mel stats, eigengap count{tail}"] = ("stats", False, oracle)
    return {k: out[k] for k in sorted(out, key=lambda k: ("oracle" in k, k))}


def _windows(uri, path, embedders, clock, cache):
    """{embedder key: (segment index, spans, embs)} of one recording, from the cache when it
    holds them (their CPU seconds then come from it too)."""
    store = os.path.join(cache, f"{uri}.npz") if cache else None
    if store and os.path.isfile(store):
        z = np.load(store)
        for step in ["vad"] + [f"embed_{key}" for key in embedders]:
            clock.cpu[step] = clock.cpu.get(step, 0.0) + float(z[f"cpu_{step}"])
        return {key: (z[f"{key}_index"], z[f"{key}_spans"], z[f"{key}_embs"]) for key in embedders}
    before = dict(clock.cpu)
    segments = clock.run("vad", SileroVad().segments, path)
    windows = {key: clock.run(f"embed_{key}", embed_windows, e, path, segments, DiarizeOptions())
               for key, e in embedders.items()}
    if store:
        os.makedirs(cache, exist_ok=True)
        arrays = {f"{key}_{part}": a for key, w in windows.items()
                  for part, a in zip(("index", "spans", "embs"), w)}
        cpu = {f"cpu_{k}": np.float64(v - before.get(k, 0.0)) for k, v in clock.cpu.items()}
        with atomic_path(store) as tmp:
            np.savez(tmp, **arrays, **cpu)
    return windows


def diarize_all(model, wav_scp, reference, clock, cache=None):
    """{system: {recording: [(start, end, speaker)]}} for every system of _systems."""
    embedders = {"model": model, "stats": StatsEmbedder(model.fbank_kwargs)}
    systems = _systems(model)
    hyp = {name: {} for name in systems}
    for uri, path in tqdm(wav_scp.items(), desc="recordings", mininterval=2):
        windows = _windows(uri, path, embedders, clock, cache)
        for name, (key, calibrated, oracle) in systems.items():
            index, spans, embs = windows[key]
            count = len({s for _, _, s in reference[uri]}) if oracle else None
            labels = clock.run(f"cluster {name}", cluster, embs, num_speakers=count,
                               calibration=model.calibration if calibrated else None)
            hyp[name][uri] = [(s, e, f"spk{k}") for s, e, k in resegment(index, spans, labels)]
    return hyp


def _count_stats(reference, hyp):
    """{"count_exact": fraction of recordings with the right speaker count, "count_mae": mean
    absolute count error, "count_bias": mean signed error (found - true), "counts": [[true,
    found], ...] per recording}."""
    counts = [[len({s for *_, s in turns}), len({s for *_, s in hyp.get(u, [])})]
              for u, turns in sorted(reference.items())]
    errors = np.array([found - true for true, found in counts])
    return dict(count_exact=float(np.mean(errors == 0)), count_mae=float(np.mean(abs(errors))),
                count_bias=float(np.mean(errors)), counts=counts)


def summarize(reference, hyps):
    """{system: scores without the per-file rows, plus count_exact and count_mae}."""
    out = {}
    for name, hyp in hyps.items():
        scores = score_turns(reference, hyp)
        for s in scores.values():
            s.pop("files")
        out[name] = dict(scores, **_count_stats(reference, hyp))
    return out


def speed(clock, audio_s):
    """Real-time factors (CPU s per audio s) of the steps: VAD, embedding (model, stats), the
    model's calibrated clustering, and the whole model pipeline."""
    rtf = {step: cpu / audio_s for step, cpu in clock.cpu.items()
           if not step.startswith("cluster") or step == "cluster model, calibrated count"}
    rtf["total (model, calibrated count)"] = sum(
        rtf.get(k, 0.0) for k in ("vad", "embed_model", "cluster model, calibrated count"))
    return rtf


def main(argv=None):
    args = get_args(argv)
    record = start("diarization", "eval_diarization.py", argv, args.force)
    if not os.path.isfile(os.path.join(args.data, "meta.json")):
        make_conversations(["--out_dir", args.data, "--num", str(args.num)])
    wav_scp, reference = read_scp(os.path.join(args.data, "wav.scp")), read_rttm(
        os.path.join(args.data, "ref.rttm"))
    torch.set_num_threads(1)
    model, clock = load_model(args.model, num_threads=1), Clock()
    with threadpool_limits(limits=1):
        hyps = diarize_all(model, wav_scp, reference, clock, args.cache)
    with open(os.path.join(args.data, "meta.json"), encoding="utf-8") as f:
        audio_s = json.load(f)["hours"] * 3600
    record.update(model=args.model, recordings=len(wav_scp), audio_hours=audio_s / 3600,
                  systems=summarize(reference, hyps), rtf=speed(clock, audio_s))
    finish(record, args.json)
    print(render_accuracy(record))
    print(render_speed(record))


if __name__ == "__main__":
    run_main(main)
