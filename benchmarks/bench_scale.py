"""How the data-path and scoring costs grow from 10 k to VoxCeleb2 size (issue 12.6).

    python benchmarks/bench_scale.py [--sizes 10000 100000 1092009] [--stage0_max 100000]
        [--write_utts 10000] [--read_utts 400] [--read_batches 10] [--gpu_step_ms 250]
        [--trials 550000] [--score_utts 153516] [--json OUT]
    python benchmarks/bench_scale.py --batching_only [--sizes 1092009]

A synthetic VoxCeleb2-shaped list: --sizes utterances over 5,994 speakers (per-speaker counts
drawn multinomially with log-normal weights; 1,092,009 = VoxCeleb2 dev, ~182 per speaker;
smaller sizes have proportionally fewer per speaker). For each size:
  1. the epoch build of the P x K batch sampler (dataset.sampler.build_sampler: P 50, K 4,
     3 speeds, as the paper config) on rank 0 of world sizes 1 and 4, and the streaming P x K
     batcher of data_type shard (shuffle buffer 1000, batcher buffer 1500; analysis.
     shard_batching.batch_structure) fed the labels of one rank's 1/world of the utterances
     (no audio): wall time, then peak Python memory (tracemalloc, in a second run);
  2. stage 0 (voxceleb.prepare_sets, nj 1 and 2) on a tree of that many tiny real wav files
     (0.1 s), for sizes up to --stage0_max (the files are created first, untimed).
Once (not per size):
  3. shard write throughput (shard_writer.write_shards, nj 1 and 2) on --write_utts real 0.5 s
     wavs and on --read_utts 8 s wavs, extrapolated (NOT measured) to VoxCeleb2 dev;
  4. shard read throughput per worker: the training loader of the paper shard config
     (training.builders.build_loader, data_type shard) with no worker processes, i.e. in this
     process (1 torch thread, as one loader worker), on the 8 s shards, without and with
     augmentation
     (the synthetic noise/music/babble/RIR set of synth/noise.py, aug_prob 0.6), against an
     ASSUMED GPU step of --gpu_step_ms for a batch of 200;
  5. cosine scoring and AS-norm (top 300) at VoxCeleb1-H size: --trials over --score_utts
     utterances, 6,000 cohort speakers: benchmarks/bench_asnorm.py run with --json.
--batching_only prints just the shard batches' structure (counts, no times, so no idle
machine needed) for shards in a plain shuffled order and in speaker runs of --group_size
(shard_writer.speaker_runs), with shuffle buffers of 1000 and 1: topped-up batches, distinct
utterances per batch of 200 (the rest are other crops of the same files) and distinct speakers
over 10 consecutive batches (of 500 slots).
"Per-utt ratio" = (time per utterance at this size) / (time per utterance at the previous
size): ~1 means linear, > 1 super-linear. All files live in the page cache (freshly written):
real disks add I/O. The tables are speed_tables.render_scale's.
"""

import argparse
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import soundfile as sf
import torch

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, load_avg, start
from wespeaker_mfcon.analysis.shard_batching import batch_structure
from wespeaker_mfcon.analysis.speed_tables import render_scale
from wespeaker_mfcon.config import aug_args_from, load_train_config
from wespeaker_mfcon.dataset.dataset import load_spk2id
from wespeaker_mfcon.dataset.sampler import build_sampler, global_batches
from wespeaker_mfcon.dataset.shard_writer import speaker_runs, write_shards
from wespeaker_mfcon.dataset.voxceleb import prepare_sets
from wespeaker_mfcon.synth.noise import generate_noise_set
from wespeaker_mfcon.training.builders import build_loader
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.file_utils import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.join(os.path.dirname(HERE), "examples", "voxceleb", "v2_mfcon", "conf",
                    "mfa_conformer_mfcon_shard.yaml")
SR = 16000
NUM_SPK = 5994
VOX2_UTTS, VOX2_MEAN_S = 1_092_009, 7.8     # VoxCeleb2 dev: utterances, mean duration
P, K, SPEEDS = 50, 4, 3


def vox2_counts(n, num_spk=NUM_SPK, seed=0):
    """Utterances per speaker: n over num_spk speakers, VoxCeleb2-like spread."""
    rng = np.random.default_rng([seed, n])
    weights = rng.lognormal(0.0, 0.5, num_spk)
    return rng.multinomial(n, weights / weights.sum())


def vox2_labels(n, seed=0):
    """Speaker index per utterance, sorted by speaker as utt2spk is."""
    counts = vox2_counts(n, seed=seed)
    return np.repeat(np.arange(len(counts)), counts)


def steps_per_epoch(num_utts, world):
    """Batches per rank and epoch of P x K batches (the samplers' and the shard loader's)."""
    return global_batches(num_utts, P * K, world) // world


def timed_and_peak(fn):
    """(wall s, peak MB, result) of fn(): timed plainly, then run again under tracemalloc."""
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    del result
    tracemalloc.start()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return wall, peak, result


def sampler_epoch(labels, world, ds_args):
    """Rank 0's batches of one epoch (the items, with their seeds) of the P x K sampler."""
    sampler = build_sampler(labels, ds_args, num_speeds=SPEEDS, seed=0, rank=0,
                            world_size=world)
    sampler.set_epoch(0)
    return sum(1 for _ in sampler)


def per_utt_ratios(rows, key, n_key="utts", time_key="s"):
    """Add 'ratio' to each row: its time per utterance over the previous size's (same key)."""
    last = {}
    for row in rows:
        k = row[key]
        per = row[time_key] / row[n_key]
        row["us_per_utt"] = per * 1e6
        row["ratio"] = per / last[k] if k in last else None
        last[k] = per
    return rows


def measure_sampling(sizes, worlds=(1, 4)):
    ds_args = load_train_config(CONF).dataset_args           # P 50, K 4, sampler pk
    rows = []
    for n in sizes:
        labels = vox2_labels(n)
        order = np.random.default_rng(1).permutation(n)           # shard order: mixed
        for world in worlds:
            wall, peak, batches = timed_and_peak(lambda: sampler_epoch(labels, world, ds_args))
            rows.append(dict(what="PKBatchSampler", world=world, utts=n, s=wall, peak_mb=peak,
                             batches=batches, topped=0, distinct=P * K))
            print(f"sampler n={n} world={world}: {wall:.2f} s, {peak:.1f} MB [load {load_avg()}]",
                  flush=True)
        for world in worlds:
            mine, steps = labels[order[0::world]], steps_per_epoch(n, world)
            wall, peak, got = timed_and_peak(lambda: batch_structure(mine, steps, P, K))
            rows.append(dict(what="PKBatcher (shard stream)", world=world, utts=n, s=wall,
                             peak_mb=peak, batches=got["batches"], topped=got["topped"],
                             distinct=got["distinct"]))
            print(f"batcher n={n} world={world}: {wall:.2f} s, {peak:.1f} MB, {got['batches']}/"
                  f"{steps} batches, {got['topped']} topped up, {got['distinct']:.1f} distinct "
                  f"utts/batch [load {load_avg()}]", flush=True)
    for row in rows:
        row["key"] = f"{row['what']} {row['world']}"
    return per_utt_ratios(rows, "key")


def measure_batching(n, group_size, variants=((1, 1000), (1, 1), (None, 1000), (None, 1))):
    """Batch structure of the shard stream, world 1, for shard orders (plain shuffle: 1, or
    speaker runs of group_size: None) x shuffle buffer sizes."""
    labels = vox2_labels(n)
    utts = [f"u{i:07d}" for i in range(n)]
    spks = dict(zip(utts, (int(label) for label in labels)))
    rows = []
    for group, shuffle_size in variants:
        group = group or group_size
        rng = np.random.default_rng(777)
        order = ([utts[i] for i in rng.permutation(n)] if group == 1
                 else speaker_runs(utts, spks, group, rng))
        got = batch_structure([spks[utt] for utt in order], steps_per_epoch(n, 1), P, K,
                              shuffle_size, window=10)
        rows.append(dict(utts=n, group_size=group, shuffle_size=shuffle_size,
                         batches=got["batches"], topped=got["topped"],
                         distinct=got["distinct"], speakers_per_10=got["speakers_per_window"]))
        print(f"batching n={n} group {group} shuffle {shuffle_size}: {got['topped']}/"
              f"{got['batches']} topped up, {got['distinct']:.1f} distinct utts, "
              f"{got['speakers_per_window']:.0f} speakers per 10 batches", flush=True)
    return rows


# ------------------------------------------------------------------------------ audio files


def wav_bytes(seconds, seed):
    """A 16 kHz PCM16 wav of low noise, as bytes."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, 0.1 * rng.standard_normal(int(seconds * SR)), SR, subtype="PCM_16",
             format="WAV")
    return buf.getvalue()


def make_data_dir(root, n, seconds, num_spk):
    """n wavs of `seconds` (num_spk speakers) in root/wav, Kaldi data dir root/data."""
    wav_dir, data_dir = os.path.join(root, "wav"), os.path.join(root, "data")
    os.makedirs(wav_dir)
    os.makedirs(data_dir)
    wavs, spks = [], []
    for i in range(n):
        spk, utt = f"spk{i % num_spk:04d}", f"spk{i % num_spk:04d}-utt{i:06d}"
        path = os.path.join(wav_dir, utt + ".wav")
        with open(path, "wb") as f:
            f.write(wav_bytes(seconds, i))
        wavs.append((utt, path))
        spks.append((utt, spk))
    write_table(os.path.join(data_dir, "wav.scp"), sorted(wavs))
    write_table(os.path.join(data_dir, "utt2spk"), sorted(spks))
    return data_dir, n * os.path.getsize(wavs[0][1]) / 1e6


def measure_write(tmp, sets, njs=(1, 2)):
    """[(label, utts, MB, nj, s)] of write_shards on each (name, utts, seconds, speakers)."""
    rows, dirs = [], {}
    for name, n, seconds, num_spk in sets:
        data_dir, mb = make_data_dir(os.path.join(tmp, name), n, seconds, num_spk)
        dirs[name] = data_dir
        per_shard = 1000 if n >= 2000 else max(1, n // 4)
        for nj in njs:
            shutil.rmtree(os.path.join(data_dir, "shards"), ignore_errors=True)
            t0 = time.perf_counter()
            write_shards(data_dir, per_shard, nj=nj, seed=777, progress=False)
            wall = time.perf_counter() - t0
            rows.append(dict(set=f"{n} x {seconds:g} s", utts=n, mb=mb, nj=nj, s=wall,
                             utt_per_s=n / wall, mb_per_s=mb / wall, per_shard=per_shard,
                             vox2_h_by_mb=VOX2_UTTS * VOX2_MEAN_S * 2 * SR / 1e6
                             / (mb / wall) / 3600,
                             vox2_h_by_utt=VOX2_UTTS / (n / wall) / 3600))
            print(f"write {name} nj={nj}: {wall:.2f} s [load {load_avg()}]", flush=True)
    return rows, dirs


def shard_loader(data_dir, aug):
    """The training loader of the paper shard config on data_dir, in this process; aug: None
    or the aug_args mapping."""
    conf = load_train_config(CONF)
    conf.dataloader_args = dataclasses.replace(conf.dataloader_args, num_workers=0,
                                               pin_memory=False)
    conf.dataset_args.aug_args = None if aug is None else aug_args_from(aug)
    return build_loader(conf, data_dir, load_spk2id(data_dir), rank=0, world_size=1)[0]


def loader_batches(loader):
    """Batches (chunks, labels) of the loader, epoch after epoch."""
    for epoch in range(10**9):
        loader.set_epoch(epoch)
        yield from loader


def measure_read(tmp, data_dir, batches, gpu_step_ms):
    """Chunks/s of one worker reading the shards (paper shard config), without and with aug."""
    noise_scp, rir_scp = generate_noise_set(os.path.join(tmp, "aug"), seed=0)
    torch.set_num_threads(1)
    rows = []
    for name, aug in (("none", None), ("aug_prob 0.6 (noise/music/babble/RIR)",
                      {"aug_prob": 0.6, "noise_scp": noise_scp, "rir_scp": rir_scp})):
        stream = loader_batches(shard_loader(data_dir, aug))
        next(stream)                                  # the first fill of the buffers; warm-up
        t0, c0, chunks = time.perf_counter(), time.process_time(), 0
        for _ in range(batches):
            chunks += next(stream)[0].shape[0]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        gpu_rate = 200 / gpu_step_ms * 1000.0
        rows.append(dict(aug=name, chunks=chunks, s=wall, per_s=chunks / wall,
                         per_cpu_s=chunks / cpu, gpu_rate=gpu_rate,
                         workers=gpu_rate / (chunks / cpu)))
        print(f"read aug={name}: {chunks} chunks in {wall:.2f} s [load {load_avg()}]",
              flush=True)
    return rows, load_train_config(CONF).dataset_args.num_frames


def make_tree(root, n, seconds=0.1):
    """A VoxCeleb-layout tree root/idNNNNN/vidNNN/NNNNN.wav of n tiny wavs (8 per video)."""
    data = wav_bytes(seconds, 0)
    for spk, count in enumerate(vox2_counts(n)):
        for u in range(count):
            vid_dir = os.path.join(root, f"id{spk:05d}", f"vid{u // 8:03d}")
            if u % 8 == 0:
                os.makedirs(vid_dir)
            with open(os.path.join(vid_dir, f"{u:05d}.wav"), "wb") as f:
                f.write(data)


def measure_stage0(tmp, sizes, njs=(1, 2)):
    """Wall s of prepare_sets (scan, header of every file, tables) on n tiny files."""
    rows = []
    for n in sizes:
        root = os.path.join(tmp, f"tree{n}")
        t0 = time.perf_counter()
        make_tree(root, n)
        print(f"stage 0: {n} files created in {time.perf_counter() - t0:.1f} s", flush=True)
        for nj in njs:
            out = os.path.join(tmp, f"data{n}_nj{nj}", "train")
            t0 = time.perf_counter()
            prepare_sets([(root, out, [])], nj=nj)
            wall = time.perf_counter() - t0
            rows.append(dict(utts=n, nj=nj, s=wall, files_per_s=n / wall, key=nj))
            print(f"stage 0 n={n} nj={nj}: {wall:.2f} s [load {load_avg()}]", flush=True)
        shutil.rmtree(root)
    return per_utt_ratios(rows, "key")


def measure_scoring(tmp, trials, utts, speakers, force):
    """benchmarks/bench_asnorm.py at this size (random embeddings, dim 192, top 300): its
    record's seconds."""
    argv = ["--trials", str(trials), "--utts", str(utts), "--speakers", str(speakers),
            "--check", "0"] + (["--force"] if force else [])
    out = os.path.join(tmp, "asnorm.json")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "bench_asnorm.py"), *argv,
                           "--json", out], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_asnorm.py failed: {proc.stderr[-2000:]}")
    with open(out, encoding="utf-8") as f:
        res = json.load(f)
    print(f"scoring: cosine {res['cosine_s']:.2f} s, asnorm {res['norm_s']:.2f} s "
          f"[load {load_avg()}]", flush=True)
    return dict(trials=trials, utts=utts, speakers=speakers, cosine_s=res["cosine_s"],
                asnorm_s=res["norm_s"], command="python benchmarks/bench_asnorm.py "
                + " ".join(argv))


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, VOX2_UTTS])
    p.add_argument("--stage0_max", type=int, default=100_000,
                   help="stage 0 runs for the sizes up to this many files")
    p.add_argument("--write_utts", type=int, default=10000, help="0.5 s wavs written to shards")
    p.add_argument("--read_utts", type=int, default=400, help="8 s wavs (80 speakers) to read")
    p.add_argument("--read_batches", type=int, default=10, help="timed batches of 200 per mode")
    p.add_argument("--gpu_step_ms", type=float, default=250.0,
                   help="ASSUMED GPU step time for a batch of 200")
    p.add_argument("--trials", type=int, default=550_000)
    p.add_argument("--score_utts", type=int, default=153_516, help="all of VoxCeleb1")
    p.add_argument("--cohort", type=int, default=6000)
    p.add_argument("--batching_only", action="store_true",
                   help="only the shard batch structure (counts) for each of --sizes")
    p.add_argument("--group_size", type=int, default=K,
                   help="speaker runs of the grouped shard order (--batching_only)")
    add_bench_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    record = start("scale", "bench_scale.py", argv, args.force,
                   timed=not args.batching_only)       # counts only: no idle machine needed
    if args.batching_only:
        record["batching"] = [row for n in args.sizes
                              for row in measure_batching(n, args.group_size)]
        print()
        print(render_scale(finish(record, args.json)))
        return
    print(f"{os.cpu_count()} CPUs, load average {load_avg()}", flush=True)
    record["sampling"] = measure_sampling(args.sizes)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        record["stage0"] = measure_stage0(tmp, [n for n in args.sizes if n <= args.stage0_max])
        sets = [("short", args.write_utts, 0.5, 100), ("long", args.read_utts, 8.0, 80)]
        record["write"], dirs = measure_write(tmp, sets)
        record["read"], record["num_frames"] = measure_read(tmp, dirs["long"],
                                                            args.read_batches,
                                                            args.gpu_step_ms)
        record["scoring"] = measure_scoring(tmp, args.trials, args.score_utts, args.cohort,
                                            args.force)
    record.update(gpu_step_ms=args.gpu_step_ms, read_utts=args.read_utts)
    print()
    print(render_scale(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
