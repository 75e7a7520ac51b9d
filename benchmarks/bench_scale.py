"""How the data-path and scoring costs grow from 10 k to VoxCeleb2 size (issue 12.6).

    python benchmarks/bench_scale.py [--sizes 10000 100000 1092009] [--stage0_max 100000]
        [--write_utts 10000] [--read_utts 400] [--read_batches 10] [--gpu_step_ms 250]
        [--trials 550000] [--score_utts 153516] [--json OUT]
    python benchmarks/bench_scale.py --batching_only [--sizes 1092009]

A synthetic VoxCeleb2-shaped list: --sizes utterances over 5,994 speakers (per-speaker counts
drawn multinomially with log-normal weights; 1,092,009 = VoxCeleb2 dev, ~182 per speaker;
smaller sizes have proportionally fewer per speaker). For each size:
  1. the epoch build of PKBatchSampler (P 50, K 4, 3 speeds, as the paper config) on rank 0
     of world sizes 1 and 4, and the streaming PKBatcher of data_type shard (shuffle buffer
     1000, batcher buffer 1500) fed the labels of one rank's 1/world of the utterances (no
     audio): wall time, then peak Python memory (tracemalloc, in a second run);
  2. stage 0 (voxceleb.prepare_sets, nj 1 and 2) on a tree of that many tiny real wav files
     (0.1 s), for sizes up to --stage0_max (the files are created first, untimed).
Once (not per size):
  3. shard write throughput (shard_writer.write_shards, nj 1 and 2) on --write_utts real 0.5 s
     wavs and on --read_utts 8 s wavs, extrapolated (NOT measured) to VoxCeleb2 dev;
  4. shard read throughput per worker: ShardStream of the paper shard config in this process
     (1 torch thread, as one loader worker) on the 8 s shards, without and with augmentation
     (the synthetic noise/music/babble/RIR set of synth/noise.py, aug_prob 0.6), against an
     ASSUMED GPU step of --gpu_step_ms for a batch of 200;
  5. cosine scoring and AS-norm (top 300) at VoxCeleb1-H size: --trials over --score_utts
     utterances, 6,000 cohort speakers, run through benchmarks/bench_asnorm.py.
--batching_only prints just the shard batches' structure (counts, no times, so no idle
machine needed) for shards in a plain shuffled order and in speaker runs of --group_size
(shard_writer.speaker_runs), with shuffle buffers of 1000 and 1: topped-up batches, distinct
utterances per batch of 200 (the rest are other crops of the same files) and distinct speakers
over 10 consecutive batches (of 500 slots).
"Per-utt ratio" = (time per utterance at this size) / (time per utterance at the previous
size): ~1 means linear, > 1 super-linear. All files live in the page cache (freshly written):
real disks add I/O.
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import bench_asnorm  # noqa: E402
from benchmarks.common import (add_force_option, command_line, finish_report, load_avg,  # noqa: E402
                               markdown_table, require_idle)
from wespeaker_mfcon.dataset.augment import Augmentor  # noqa: E402
from wespeaker_mfcon.dataset.dataset import load_spk2id  # noqa: E402
from wespeaker_mfcon.dataset.sampler import PKBatchSampler  # noqa: E402
from wespeaker_mfcon.dataset.shard_writer import speaker_runs, write_shards  # noqa: E402
from wespeaker_mfcon.dataset.shards import (PKBatcher, ShardStream, read_shard_list,  # noqa: E402
                                            shuffle_buffer, steps_per_epoch)
from wespeaker_mfcon.dataset.voxceleb import prepare_sets  # noqa: E402
from wespeaker_mfcon.synth.noise import generate_noise_set  # noqa: E402
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402
from wespeaker_mfcon.config import load_train_config  # noqa: E402
from wespeaker_mfcon.utils.file_utils import write_table  # noqa: E402

CONF = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon", "conf",
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


def sampler_epoch(labels, world):
    """Rank 0's batches of one epoch (the items, with their seeds) of PKBatchSampler."""
    sampler = PKBatchSampler(labels, P, K, seed=0, rank=0, world_size=world, num_speeds=SPEEDS)
    sampler.set_epoch(0)
    return sum(1 for _ in sampler)


def batcher_epoch(samples, steps, shuffle_size=1000, buffer_size=1500, window=None):
    """The shard stream's batch structure for one rank's samples, no audio: (batches,
    topped up, mean distinct utterances per batch), plus the mean distinct speakers over
    `window` consecutive batches when window is given. Stops at steps batches, as ShardLoader
    does (one pass here, never cycles: fewer batches than steps means the stream would have
    begun a second pass)."""
    rng = np.random.default_rng(0)
    batcher = PKBatcher(P, K, buffer_size, rng)
    batcher.fit_to(len(samples))       # as the stream does after its first pass
    batches = topped = distinct = 0
    recent, spread = [], []
    for sample in shuffle_buffer(iter(samples), shuffle_size, rng):
        for groups in batcher.push(sample):
            batches += 1
            topped += batcher.topped_up
            distinct += len({s[0] for group in groups for s in group})
            rng.integers(2**31, size=len(groups) * (K + 1))   # the stream's speed/seed draws
            recent.append({group[0][1] for group in groups})
            if window and len(recent) == window:
                spread.append(len(set().union(*recent)))
                recent = []
        if batches >= steps:
            break
    result = (batches, topped, distinct / max(batches, 1))
    return result + (float(np.mean(spread)),) if window else result


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
    rows = []
    for n in sizes:
        labels = vox2_labels(n)
        order = np.random.default_rng(1).permutation(n)           # shard order: mixed
        for world in worlds:
            wall, peak, batches = timed_and_peak(lambda: sampler_epoch(labels, world))
            rows.append(dict(what="PKBatchSampler", world=world, utts=n, s=wall, peak_mb=peak,
                             batches=batches, topped=0, distinct=P * K))
            print(f"sampler n={n} world={world}: {wall:.2f} s, {peak:.1f} MB [load {load_avg()}]",
                  flush=True)
        for world in worlds:
            mine = order[0::world]
            samples = [(f"u{i}", int(labels[i]), None, "") for i in mine]
            steps = steps_per_epoch(n, P * K, world)
            wall, peak, (batches, topped, distinct) = timed_and_peak(
                lambda: batcher_epoch(samples, steps))
            rows.append(dict(what="PKBatcher (shard stream)", world=world, utts=n, s=wall,
                             peak_mb=peak, batches=batches, topped=topped, distinct=distinct))
            print(f"batcher n={n} world={world}: {wall:.2f} s, {peak:.1f} MB, {batches}/{steps} "
                  f"batches, {topped} topped up, {distinct:.1f} distinct utts/batch "
                  f"[load {load_avg()}]", flush=True)
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
        samples = [(utt, spks[utt], None, "") for utt in order]
        batches, topped, distinct, speakers = batcher_epoch(
            samples, steps_per_epoch(n, P * K, 1), shuffle_size, window=10)
        rows.append(dict(utts=n, group_size=group, shuffle_size=shuffle_size, batches=batches,
                         topped=topped, distinct=distinct, speakers_per_10=speakers))
        print(f"batching n={n} group {group} shuffle {shuffle_size}: {topped}/{batches} topped "
              f"up, {distinct:.1f} distinct utts, {speakers:.0f} speakers per 10 batches",
              flush=True)
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


def measure_read(tmp, data_dir, batches, gpu_step_ms):
    """Chunks/s of one worker's ShardStream (paper shard config), without and with aug."""
    conf = load_train_config(CONF)
    noise_scp, rir_scp = generate_noise_set(os.path.join(tmp, "aug"), seed=0)
    spk2id, shards = load_spk2id(data_dir), read_shard_list(data_dir)
    torch.set_num_threads(1)
    rows = []
    for name, aug in (("none", None), ("aug_prob 0.6 (noise/music/babble/RIR)",
                      Augmentor({"aug_prob": 0.6, "noise_scp": noise_scp, "rir_scp": rir_scp}))):
        stream = iter(ShardStream(shards, spk2id, conf, rank=0, world_size=1, augmentor=aug))
        next(stream)                                  # first pass fills the buffers; warm-up
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
    return rows, conf.dataset_args.num_frames


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


def measure_scoring(trials, utts, speakers, force):
    """bench_asnorm.main at this size (random embeddings, dim 192, top 300): its seconds."""
    argv = ["--trials", str(trials), "--utts", str(utts), "--speakers", str(speakers),
            "--check", "0"] + (["--force"] if force else [])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench_asnorm.main(argv)
    text = out.getvalue()
    cos = float(re.search(r"cosine scoring:\s+([\d.]+) s", text).group(1))
    norm = float(re.search(r"asnorm normalization:\s+([\d.]+) s", text).group(1))
    print(f"scoring: cosine {cos:.2f} s, asnorm {norm:.2f} s [load {load_avg()}]", flush=True)
    return dict(trials=trials, utts=utts, speakers=speakers, cosine_s=cos, asnorm_s=norm,
                command="python benchmarks/bench_asnorm.py " + " ".join(argv))


# ------------------------------------------------------------------------------------ report


def _ratio(r):
    return "-" if r is None else f"{r:.2f}"


def report_sampling(rows):
    print("**1. Epoch build per rank** (P 50 x K 4, 3 speeds; time and peak tracemalloc MB of "
          "rank 0; the batcher gets 1/world of the utterances, labels only)")
    print()
    print(markdown_table(
        ["what", "world", "utterances", "s", "us/utt", "per-utt ratio", "peak MB",
         "batches (topped up)", "distinct utts / batch of 200"],
        [[r["what"], r["world"], f"{r['utts']:,}", f"{r['s']:.2f}", f"{r['us_per_utt']:.2f}",
          _ratio(r["ratio"]), f"{r['peak_mb']:.1f}", f"{r['batches']} ({r['topped']})",
          f"{r['distinct']:.1f}"]
         for r in rows]))
    print()


def report_batching(rows):
    print(f"**Shard batches at VoxCeleb2 shape** (P {P} x K {K}, batcher buffer 1500, world 1, "
          "one epoch; counts, not times)")
    print()
    print(markdown_table(
        ["utterances", "shard order", "shuffle_size", "topped-up batches",
         f"distinct utts / batch of {P * K}", f"distinct speakers / 10 batches (of {10 * P})"],
        [[f"{r['utts']:,}", "plain shuffle" if r["group_size"] == 1
          else f"speaker runs of {r['group_size']}", r["shuffle_size"],
          f"{r['topped']} of {r['batches']}", f"{r['distinct']:.1f}",
          f"{r['speakers_per_10']:.0f}"] for r in rows]))
    print()


def report_write(rows):
    print(f"**3. Shard write** (write_shards, page-cache-hot wavs; last columns EXTRAPOLATED "
          f"to VoxCeleb2 dev, {VOX2_UTTS:,} utts x {VOX2_MEAN_S} s = "
          f"{VOX2_UTTS * VOX2_MEAN_S * 2 * SR / 1e9:.0f} GB of wav)")
    print()
    print(markdown_table(
        ["wavs", "MB", "nj", "s", "utts/s", "MB/s", "VoxCeleb2 h (by MB/s)",
         "VoxCeleb2 h (by utts/s)"],
        [[r["set"], f"{r['mb']:.0f}", r["nj"], f"{r['s']:.2f}", f"{r['utt_per_s']:.0f}",
          f"{r['mb_per_s']:.0f}", f"{r['vox2_h_by_mb']:.2f}", f"{r['vox2_h_by_utt']:.2f}"]
         for r in rows]))
    print()


def report_read(rows, num_frames, gpu_step_ms, utts):
    print(f"**4. Shard read, one worker** (ShardStream, paper shard config, {num_frames}-frame "
          f"chunks, speeds 0.9/1.0/1.1, 1 torch thread; {utts} x 8 s wavs; GPU step of "
          f"{gpu_step_ms:g} ms per batch of 200 ASSUMED)")
    print()
    print(markdown_table(
        ["augmentation", "chunks", "s", "chunks/s (wall)", "chunks per CPU-s",
         "GPU step consumes chunks/s", "workers to feed it"],
        [[r["aug"], r["chunks"], f"{r['s']:.2f}", f"{r['per_s']:.1f}", f"{r['per_cpu_s']:.1f}",
          f"{r['gpu_rate']:.0f}", f"{r['workers']:.1f}"] for r in rows]))
    print()


def report_stage0(rows):
    print("**2. Stage 0** (prepare_sets on a tree of tiny 0.1 s wavs, files just written so in "
          "the page cache)")
    print()
    print(markdown_table(
        ["files", "nj", "s", "files/s", "us/file", "per-file ratio"],
        [[f"{r['utts']:,}", r["nj"], f"{r['s']:.2f}", f"{r['files_per_s']:.0f}",
          f"{r['us_per_utt']:.0f}", _ratio(r["ratio"])] for r in rows]))
    print()


def report_scoring(res):
    print(f"**5. Scoring at VoxCeleb1-H size** ({res['command']})")
    print()
    print(markdown_table(
        ["trials", "utterances", "cohort speakers", "cosine s", "AS-norm (top 300) s"],
        [[f"{res['trials']:,}", f"{res['utts']:,}", f"{res['speakers']:,}",
          f"{res['cosine_s']:.2f}", f"{res['asnorm_s']:.2f}"]]))
    print()


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
    p.add_argument("--json", help="write the results here")
    p.add_argument("--batching_only", action="store_true",
                   help="only the shard batch structure (counts) for each of --sizes")
    p.add_argument("--group_size", type=int, default=K,
                   help="speaker runs of the grouped shard order (--batching_only)")
    add_force_option(p)
    return p.parse_args(argv)


def main_batching(args, cmd):
    rows = [row for n in args.sizes for row in measure_batching(n, args.group_size)]
    print()
    report_batching(rows)
    print(f"command: {cmd}")          # counts only: no load note needed
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": cmd, "batching": rows}, f, indent=2)


def main(argv=None):
    args = get_args(argv)
    cmd = command_line("bench_scale.py", argv)
    if args.batching_only:
        return main_batching(args, cmd)
    require_idle(args.force)
    print(f"{os.cpu_count()} CPUs, load average {load_avg()}", flush=True)
    res = {"command": cmd}
    res["sampling"] = measure_sampling(args.sizes)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        res["stage0"] = measure_stage0(tmp, [n for n in args.sizes if n <= args.stage0_max])
        sets = [("short", args.write_utts, 0.5, 100), ("long", args.read_utts, 8.0, 80)]
        res["write"], dirs = measure_write(tmp, sets)
        res["read"], num_frames = measure_read(tmp, dirs["long"], args.read_batches,
                                               args.gpu_step_ms)
    res["scoring"] = measure_scoring(args.trials, args.score_utts, args.cohort, args.force)
    res["load_after"] = load_avg()
    print()
    report_sampling(res["sampling"])
    report_stage0(res["stage0"])
    report_write(res["write"])
    report_read(res["read"], num_frames, args.gpu_step_ms, args.read_utts)
    report_scoring(res["scoring"])
    print(f"load average at the end: {res['load_after']}")
    finish_report([1], cmd, args.json, res)


if __name__ == "__main__":
    run_main(main)
