"""Raw-waveform training data path: loader throughput vs what a training step consumes.

    python benchmarks/bench_loader.py [--items 600] [--warmup 40] [--batch 200]
        [--step_time_ms MS | --step_batch 16] [--gpu_step_ms 250] [--json OUT]

Builds, in a temporary directory, a small wav set (--utts synthetic talkers of --utt_dur s,
16 kHz PCM16, written with soundfile) and a synthetic augmentation set
(wespeaker_mfcon.synth.noise.generate_noise_set: noise / music / babble-speech files
and RIRs), then the paper config's raw training dataset

    SpeakerChunkDataset(data_type="raw", num_frames=300,           # 3 s chunks
                        augmentor=Augmentor({aug_prob: 0.6, noise_scp, rir_scp}),
                        speeds=[1.0, 0.9, 1.1])

and times dataset[(utt, seed, speed)] in this process with one torch thread, as one
DataLoader worker would run it (read wav, speed perturbation, random 3 s chunk,
reverb / noise / music / babble with probability 0.6): augmented chunks/s per worker,
by wall time and by CPU time, with a breakdown by augmentation type and speed.

Then the consumer side:
  * the on-the-fly fbank of a --batch of those chunks (Fbank module, batched, dither,
    as the training loop runs it on the training device), 1 and 2 torch threads;
  * the CPU training step of the paper MFCon config on raw chunks (EpochRunner.step with the
    Fbank front end, i.e. fbank + forward + backward + Adam), measured on a reduced batch
    (--step_batch) unless --step_time_ms gives the time of a --batch step;
giving the CPU consumption rate (chunks/s) and the workers it needs; and, as an ESTIMATE
(no GPU here), the workers needed to feed a GPU step of --gpu_step_ms for --batch chunks
(the GPU computes the fbank itself), from the per-worker CPU-time rate (one core per worker).
"""

import argparse
import collections
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import (add_force_option, command_line, finish_report, load_avg,  # noqa: E402
                               markdown_table, require_idle)
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402
from wespeaker_mfcon.training.builders import (build_frontend, build_lr_scheduler,  # noqa: E402
                                               build_model_with_heads, build_optimizer)
from wespeaker_mfcon.dataset.augment import Augmentor  # noqa: E402
from wespeaker_mfcon.dataset.dataset import SpeakerChunkDataset, load_spk2id  # noqa: E402
from wespeaker_mfcon.synth.noise import generate_noise_set, make_speech  # noqa: E402
from wespeaker_mfcon.frontend.fbank import Fbank  # noqa: E402
from wespeaker_mfcon.training.loop import EpochRunner, StepOptions  # noqa: E402
from wespeaker_mfcon.config import load_train_config  # noqa: E402
from wespeaker_mfcon.utils.file_utils import write_table  # noqa: E402

CONF = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon", "conf", "mfa_conformer_mfcon.yaml")
SR = 16000
SPEEDS = [1.0, 0.9, 1.1]


def make_wav_set(root, num_utts, num_spk, dur, seed):
    """num_utts synthetic-talker wavs of dur seconds in a Kaldi data dir; returns its path."""
    import soundfile as sf

    data_dir = os.path.join(root, "data")
    wav_dir = os.path.join(root, "wav")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(wav_dir, exist_ok=True)
    wav_rows, spk_rows = [], []
    for i in range(num_utts):
        spk = f"spk{i % num_spk:03d}"
        utt = f"{spk}-utt{i:03d}"
        rng = np.random.default_rng([seed, i])
        wave = make_speech(rng, int(dur * SR)) + 0.01 * rng.standard_normal(int(dur * SR))
        wave = np.clip(wave, -1.0, 1.0)
        path = os.path.join(wav_dir, f"{utt}.wav")
        sf.write(path, wave, SR, subtype="PCM_16")
        wav_rows.append((utt, path))
        spk_rows.append((utt, spk))
    write_table(os.path.join(data_dir, "wav.scp"), sorted(wav_rows))
    write_table(os.path.join(data_dir, "utt2spk"), sorted(spk_rows))
    return data_dir


def time_items(dataset, items):
    """Per-item wall ms, CPU ms and (aug type, speed) of dataset[item]; returns chunks too."""
    out, chunks, labels = [], [], []
    for item in items:
        t0, c0 = time.perf_counter(), time.process_time()
        chunk, label = dataset[item]
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        aug = dataset.augmentor.last_type if dataset.augmentor is not None else None
        out.append((dt * 1000.0, dc * 1000.0, aug or "none", SPEEDS[item[2]]))
        chunks.append(chunk)
        labels.append(label)
    return out, chunks, labels


def measure_step(conf, chunks, labels, batch, steps, threads):
    """ms of EpochRunner.step (fbank + fwd + bwd + Adam) on a raw batch of `batch` chunks."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    conf = dataclasses.replace(conf, data_type="raw", num_classes=max(labels) + 1)
    device = torch.device("cpu")
    net = build_model_with_heads(conf).to(device)
    frontend = build_frontend(conf, device)
    net.train()
    frontend.train()
    optimizer = build_optimizer(conf, net.parameters())
    scheduler = build_lr_scheduler(conf, optimizer, steps_per_epoch=1000)
    runner = EpochRunner(net, optimizer, scheduler, None,
                         StepOptions(device=device, frontend=frontend, is_main=False))
    # P x K batch: K = utts_per_spk chunks of each label
    k = conf.dataset_args.utts_per_spk
    by_label = collections.defaultdict(list)
    for c, l in zip(chunks, labels):
        by_label[l].append(c)
    xs, ys = [], []
    for label, cs in by_label.items():
        if len(cs) >= k:
            for c in cs[:k]:
                xs.append(c)
                ys.append(label)
        if len(xs) >= batch:
            break
    x, y = torch.stack(xs[:batch]), torch.tensor(ys[:batch])
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        stats = runner.step(x, y, i)
        if not torch.isfinite(stats).all():
            raise RuntimeError(f"non-finite training loss {stats.tolist()}")
        if i > 0:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times, x.shape[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=20, help="wavs to generate")
    p.add_argument("--speakers", type=int, default=5, help="speakers among them")
    p.add_argument("--utt_dur", type=float, default=6.0, help="seconds per wav")
    p.add_argument("--aug_prob", type=float, default=0.6)
    p.add_argument("--items", type=int, default=600, help="timed dataset items")
    p.add_argument("--warmup", type=int, default=40,
                   help="untimed items first (fills the augmentor's per-worker audio cache)")
    p.add_argument("--batch", type=int, default=200, help="training batch (paper: 200)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2],
                   help="torch threads for the batched fbank")
    p.add_argument("--fbank_repeats", type=int, default=5)
    p.add_argument("--step_time_ms", type=float, default=0.0,
                   help="CPU step time of a --batch step; 0 = measure on --step_batch")
    p.add_argument("--step_batch", type=int, default=16,
                   help="reduced batch for the measured CPU step (P x K, K from the config)")
    p.add_argument("--step_threads", type=int, default=1,
                   help="torch threads for the measured CPU step")
    p.add_argument("--steps", type=int, default=2, help="timed CPU steps (after one warm-up)")
    p.add_argument("--gpu_step_ms", type=float, default=250.0,
                   help="assumed GPU step time for --batch chunks (estimate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here")
    add_force_option(p)
    args = p.parse_args(argv)
    require_idle(args.force)
    cmd = command_line("bench_loader.py", argv)

    conf = load_train_config(CONF)
    num_frames = conf.dataset_args.num_frames
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
          flush=True)
    res = {"command": cmd}
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        t0 = time.perf_counter()
        data_dir = make_wav_set(tmp, args.utts, args.speakers, args.utt_dur, args.seed)
        noise_scp, rir_scp = generate_noise_set(os.path.join(tmp, "aug"), seed=args.seed)
        print(f"generated {args.utts} x {args.utt_dur:g} s wavs and the synthetic noise/RIR "
              f"set in {time.perf_counter() - t0:.1f} s", flush=True)
        augmentor = Augmentor({"aug_prob": args.aug_prob, "noise_scp": noise_scp,
                               "rir_scp": rir_scp})
        spk2id = load_spk2id(data_dir)
        dataset = SpeakerChunkDataset(data_dir, spk2id, num_frames=num_frames, data_type="raw",
                                      augmentor=augmentor, speeds=SPEEDS)
        print(f"{augmentor!r}", flush=True)

        # ---- producer: one worker (one torch thread, as in a DataLoader worker)
        torch.set_num_threads(1)
        rng = np.random.default_rng(args.seed)
        n_total = args.warmup + args.items
        items = [(int(rng.integers(len(dataset))), int(rng.integers(2**31)),
                  int(rng.integers(len(SPEEDS)))) for _ in range(n_total)]
        time_items(dataset, items[:args.warmup])
        load_before = load_avg()
        t0, c0 = time.perf_counter(), time.process_time()
        per_item, chunks, labels = time_items(dataset, items[args.warmup:])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        chunk_len = chunks[0].shape[0]
        worker_rate, worker_cpu_rate = len(per_item) / wall, len(per_item) / cpu
        print(f"loader: {len(per_item)} chunks of {chunk_len} samples in {wall:.2f} s "
              f"({worker_rate:.1f} chunks/s wall, {worker_cpu_rate:.1f} per CPU-s) "
              f"[load {load_avg()}]", flush=True)
        groups = collections.defaultdict(list)
        for w, c, aug, speed in per_item:
            groups[(aug, "1.0" if speed == 1.0 else "0.9/1.1")].append((w, c))
        breakdown = []
        for (aug, speed), vals in sorted(groups.items()):
            ws, cs = [v[0] for v in vals], [v[1] for v in vals]
            breakdown.append({"aug": aug, "speed": speed, "count": len(vals),
                              "median_ms": statistics.median(ws), "mean_ms": statistics.mean(ws),
                              "mean_cpu_ms": statistics.mean(cs)})
        res.update(chunk_samples=chunk_len, num_frames=num_frames, items=len(per_item),
                   worker_chunks_per_s=worker_rate, worker_chunks_per_cpu_s=worker_cpu_rate,
                   loader_loadavg=f"{load_before} / {load_avg()}", breakdown=breakdown)

        # ---- batched fbank of a training batch
        reps = -(-args.batch // len(chunks))
        wave_batch = torch.stack((chunks * reps)[:args.batch])           # (B, N) int16 scale
        fb = Fbank(dither=1.0).train()
        fbank_rows = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            with torch.no_grad():
                fb(wave_batch)
                ts = []
                for _ in range(args.fbank_repeats):
                    t0 = time.perf_counter()
                    feats = fb(wave_batch)
                    ts.append((time.perf_counter() - t0) * 1000.0)
            ms = statistics.median(ts)
            fbank_rows.append({"threads": threads, "ms_per_batch": ms,
                               "chunks_per_s": args.batch / ms * 1000.0,
                               "frames": int(feats.shape[1]), "loadavg": load_avg()})
            print(f"fbank: batch {args.batch} -> {tuple(feats.shape)} in {ms:.1f} ms "
                  f"({threads} thread(s))", flush=True)
        res["fbank"] = fbank_rows

        # ---- consumer: the CPU training step
        if args.step_time_ms > 0:
            step_ms, step_batch, step_src = args.step_time_ms, args.batch, "given (--step_time_ms)"
            step_times = [step_ms]
        else:
            step_ms, step_times, step_batch = measure_step(
                conf, chunks, labels, args.step_batch, args.steps, args.step_threads)
            step_src = (f"measured: paper MFCon config, raw batch {step_batch} x {num_frames} "
                        f"frames, fbank+fwd+bwd+Adam, {args.step_threads} thread(s), median of "
                        f"{args.steps}")
            print(f"CPU step: {step_ms:.0f} ms for {step_batch} chunks ({step_times}) "
                  f"[load {load_avg()}]", flush=True)
        cpu_rate = step_batch / step_ms * 1000.0
        gpu_rate = args.batch / args.gpu_step_ms * 1000.0
        res.update(step_ms=step_ms, step_times_ms=step_times, step_batch=step_batch,
                   step_source=step_src, cpu_consumption_chunks_per_s=cpu_rate,
                   gpu_step_ms=args.gpu_step_ms,
                   gpu_consumption_chunks_per_s=gpu_rate,
                   workers_for_cpu_step=cpu_rate / worker_rate,
                   workers_for_gpu_step_estimate=gpu_rate / worker_cpu_rate,
                   workers_for_gpu_step_estimate_wall=gpu_rate / worker_rate)

    # ---- report
    print()
    print(f"Raw-waveform data path, paper config ({num_frames}-frame chunks = "
          f"{res['chunk_samples']} samples, speeds {SPEEDS}, aug_prob {args.aug_prob}; "
          f"{args.utts} synthetic {args.utt_dur:g} s wavs, synthetic noise/music/babble/RIR set)")
    print()
    print("Producer, one worker (in-process, 1 torch thread), "
          f"{res['items']} items after {args.warmup} warm-up items:")
    print()
    print(markdown_table(
        ["augmentation", "speed", "items", "median ms/chunk", "mean ms/chunk", "mean CPU ms"],
        [[b["aug"], b["speed"], b["count"], f"{b['median_ms']:.1f}", f"{b['mean_ms']:.1f}",
          f"{b['mean_cpu_ms']:.1f}"] for b in breakdown]))
    print()
    rows = [["loader, 1 worker (all items)", f"{worker_rate:.1f} (wall), "
             f"{worker_cpu_rate:.1f} (per CPU-second)", f"{1000.0 / worker_rate:.1f} ms/chunk",
             res["loader_loadavg"]]]
    for f in fbank_rows:
        rows.append([f"fbank of the batch, {f['threads']} thread(s)",
                     f"{f['chunks_per_s']:.0f}",
                     f"{f['ms_per_batch']:.0f} ms / batch of {args.batch}", f["loadavg"]])
    rows.append([f"CPU training step ({step_src})", f"{cpu_rate:.2f} consumed",
                 f"{step_ms:.0f} ms / {step_batch} chunks", ""])
    rows.append(["workers needed to feed the CPU step", f"{cpu_rate / worker_rate:.3f}",
                 "consumption / per-worker rate (wall)", ""])
    rows.append([f"ESTIMATE: GPU step {args.gpu_step_ms:g} ms per batch of {args.batch} "
                 "(fbank on GPU)", f"{gpu_rate:.0f} consumed", "assumed, not measured", ""])
    rows.append(["ESTIMATE: workers needed to feed that GPU step",
                 f"{math.ceil(gpu_rate / worker_cpu_rate)} "
                 f"({gpu_rate / worker_cpu_rate:.1f}; {gpu_rate / worker_rate:.1f} by wall rate)",
                 "GPU rate / per-worker CPU-time rate, one free core per worker", ""])
    print(markdown_table(["stage", "chunks/s", "time", "load avg (before / after)"], rows))
    print()
    print("The GPU rows are estimates: they assume linear scaling over workers with a free CPU "
          "core each, wavs in the page cache (real corpora add decoding and disk I/O: "
          "VoxCeleb2 m4a converted to wav, MUSAN/RIR files much larger than this set), and "
          "the fbank done on the GPU in the training loop, as wespeaker_mfcon does.")
    print()
    finish_report(args.threads, cmd, args.json, res)


if __name__ == "__main__":
    run_main(main)
