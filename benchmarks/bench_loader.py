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
  * the CPU training step of the paper MFCon config on raw chunks (training.step.TrainStep
    with the Fbank front end, i.e. fbank + forward + backward + Adam), measured on a reduced batch
    (--step_batch) unless --step_time_ms gives the time of a --batch step;
giving the CPU consumption rate (chunks/s) and the workers it needs; and, as an ESTIMATE
(no GPU here), the workers needed to feed a GPU step of --gpu_step_ms for --batch chunks
(the GPU computes the fbank itself), from the per-worker CPU-time rate (one core per worker).
The tables are speed_tables.render_loader's.
"""

import argparse
import collections
import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, load_avg, start
from wespeaker_mfcon.analysis.speed_tables import render_loader
from wespeaker_mfcon.training.step import TrainStep
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.dataset.augment import Augmentor
from wespeaker_mfcon.dataset.dataset import SpeakerChunkDataset, load_spk2id
from wespeaker_mfcon.frontend.fbank import Fbank
from wespeaker_mfcon.synth.noise import generate_noise_set, make_speech
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.file_utils import write_table

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                    "voxceleb", "v2_mfcon", "conf", "mfa_conformer_mfcon.yaml")
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


def measure_producer(dataset, args):
    """One worker (one torch thread): {figures}, chunks, labels of the timed items."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    items = [(int(rng.integers(len(dataset))), int(rng.integers(2**31)),
              int(rng.integers(len(SPEEDS)))) for _ in range(args.warmup + args.items)]
    time_items(dataset, items[:args.warmup])
    load_before = load_avg()
    t0, c0 = time.perf_counter(), time.process_time()
    per_item, chunks, labels = time_items(dataset, items[args.warmup:])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"loader: {len(per_item)} chunks of {chunks[0].shape[0]} samples in {wall:.2f} s "
          f"[load {load_avg()}]", flush=True)
    groups = collections.defaultdict(list)
    for w, c, aug, speed in per_item:
        groups[(aug, "1.0" if speed == 1.0 else "0.9/1.1")].append((w, c))
    breakdown = [{"aug": aug, "speed": speed, "count": len(vals),
                  "median_ms": statistics.median(v[0] for v in vals),
                  "mean_ms": statistics.mean(v[0] for v in vals),
                  "mean_cpu_ms": statistics.mean(v[1] for v in vals)}
                 for (aug, speed), vals in sorted(groups.items())]
    return ({"chunk_samples": chunks[0].shape[0], "items": len(per_item),
             "worker_chunks_per_s": len(per_item) / wall,
             "worker_chunks_per_cpu_s": len(per_item) / cpu,
             "loader_loadavg": f"{load_before} / {load_avg()}", "breakdown": breakdown},
            chunks, labels)


def measure_fbank(chunks, batch, threads_list, repeats):
    """Rows of the batched training fbank (dither) of a batch of chunks, per thread count."""
    reps = -(-batch // len(chunks))
    wave_batch = torch.stack((chunks * reps)[:batch])           # (B, N) int16 scale
    fb = Fbank(dither=1.0).train()
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        with torch.no_grad():
            fb(wave_batch)
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                feats = fb(wave_batch)
                ts.append((time.perf_counter() - t0) * 1000.0)
        ms = statistics.median(ts)
        rows.append({"threads": threads, "ms_per_batch": ms, "chunks_per_s": batch / ms * 1000,
                     "frames": int(feats.shape[1]), "loadavg": load_avg()})
        print(f"fbank: batch {batch} -> {tuple(feats.shape)} in {ms:.1f} ms ({threads} "
              "thread(s))", flush=True)
    return rows


def pk_batch(chunks, labels, k, batch):
    """(B, N) chunks and (B,) labels of a P x K batch: K chunks of each label, up to batch."""
    by_label = collections.defaultdict(list)
    for c, label in zip(chunks, labels):
        by_label[label].append(c)
    xs, ys = [], []
    for label, cs in by_label.items():
        if len(cs) >= k:
            xs += cs[:k]
            ys += [label] * k
        if len(xs) >= batch:
            break
    return torch.stack(xs[:batch]), torch.tensor(ys[:batch])


def measure_step(conf, chunks, labels, batch, steps, threads):
    """ms of a training step (fbank + fwd + bwd + Adam) on a raw P x K batch of chunks."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = TrainStep(dataclasses.replace(conf, data_type="raw", num_classes=max(labels) + 1))
    x, y = pk_batch(chunks, labels, conf.dataset_args.utts_per_spk, batch)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        stats = step(x, y)
        if not torch.isfinite(stats).all():
            raise RuntimeError(f"non-finite training loss {stats.tolist()}")
        if i > 0:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times, x.shape[0]


def consumer_figures(args, conf, chunks, labels, worker):
    """The CPU step (given or measured) against the loader rate; the GPU estimate."""
    if args.step_time_ms > 0:
        step_ms, step_times, step_batch = args.step_time_ms, [args.step_time_ms], args.batch
        source = "given (--step_time_ms)"
    else:
        step_ms, step_times, step_batch = measure_step(conf, chunks, labels, args.step_batch,
                                                       args.steps, args.step_threads)
        source = (f"measured: paper MFCon config, raw batch {step_batch} x "
                  f"{conf.dataset_args.num_frames} frames, fbank+fwd+bwd+Adam, "
                  f"{args.step_threads} thread(s), median of {args.steps}")
        print(f"CPU step: {step_ms:.0f} ms for {step_batch} chunks [load {load_avg()}]",
              flush=True)
    cpu_rate = step_batch / step_ms * 1000.0
    gpu_rate = args.batch / args.gpu_step_ms * 1000.0
    return dict(step_ms=step_ms, step_times_ms=step_times, step_batch=step_batch,
                step_source=source, cpu_consumption_chunks_per_s=cpu_rate,
                gpu_step_ms=args.gpu_step_ms, gpu_consumption_chunks_per_s=gpu_rate,
                workers_for_cpu_step=cpu_rate / worker["worker_chunks_per_s"],
                workers_for_gpu_step_estimate=gpu_rate / worker["worker_chunks_per_cpu_s"],
                workers_for_gpu_step_estimate_wall=gpu_rate / worker["worker_chunks_per_s"])


def get_args(argv):
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
    add_bench_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    record = start("loader", "bench_loader.py", argv, args.force)
    conf = load_train_config(CONF)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        data_dir = make_wav_set(tmp, args.utts, args.speakers, args.utt_dur, args.seed)
        noise_scp, rir_scp = generate_noise_set(os.path.join(tmp, "aug"), seed=args.seed)
        augmentor = Augmentor({"aug_prob": args.aug_prob, "noise_scp": noise_scp,
                               "rir_scp": rir_scp})
        dataset = SpeakerChunkDataset(data_dir, load_spk2id(data_dir),
                                      num_frames=conf.dataset_args.num_frames, data_type="raw",
                                      augmentor=augmentor, speeds=SPEEDS)
        worker, chunks, labels = measure_producer(dataset, args)
        record.update(worker, fbank=measure_fbank(chunks, args.batch, args.threads,
                                                  args.fbank_repeats))
        record.update(consumer_figures(args, conf, chunks, labels, worker))
    record.update({k: getattr(args, k) for k in ("utts", "utt_dur", "aug_prob", "warmup",
                                                 "batch")},
                  num_frames=conf.dataset_args.num_frames, speeds=SPEEDS)
    print()
    print(render_loader(finish(record, args.json, args.threads)))


if __name__ == "__main__":
    run_main(main)
