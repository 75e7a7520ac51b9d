"""CPU training-step time of the MFA-Conformer with and without the MFCon loss.

    python benchmarks/bench_train_step.py [--configs small paper] [--threads 1 2]
        [--steps 3] [--warmup 1] [--paper_pk 2 4] [--full_batch] [--json OUT]
    python benchmarks/bench_train_step.py --weightings grad_ratio loss_ratio uncertainty \
        [--steps 20] [--threads 1]          # MFCon weighting overhead, small config

One step is exactly what training does (wespeaker_mfcon.training.step.TrainStep, i.e.
EpochRunner.step of training/loop.py):
mean normalization of the fbank batch, forward, AM-softmax cross-entropy (+ lambda * MFCon),
backward, Adam step, lr-scheduler step. Inputs are random fbank chunks with P x K labels
(K utterances per speaker, so every SupCon anchor has positives).

For each config and thread count two networks are built with build_model_with_heads() from the
same YAML and seed, one with mfcon_args.enable false (baseline) and one with it true
(lambda, tau, blocks from the *_mfcon.yaml). Their steps are interleaved (B, M, M, B, ...)
so that both see the same machine load; the table gives the median ms/step of each and
the MFCon overhead as the ratio of the medians and as the median of the per-pair ratios,
in wall time and in process CPU time (the latter is steadier on a shared machine), and
the MFCon part timed on its own (heads + SupCon forward/backward on random block outputs)
as a fraction of the baseline step, and the matmul/conv FLOPs of one forward+backward of
each variant (torch FlopCounterMode): the two estimates that the machine load does not
distort. With other processes on the cores, 2-thread timings mostly measure contention.

Configs: small = conf/mfa_conformer[_mfcon]_small.yaml with its own batch (P x K x
num_frames from the YAML); paper = conf/mfa_conformer[_mfcon].yaml (6 blocks, d 256, ~20 M
parameters) with a reduced batch by default (--paper_pk 2 4 = 8 chunks of 300 frames, so
that the default run stays near 3 minutes on 2 cores): the paper's batch of 200
(--full_batch) takes minutes per step on a CPU. The MFCon overhead is a ratio of
per-sample costs (the SupCon term, quadratic in the batch, is negligible: a B x B matrix
of 192-dim dot products per block), so it barely depends on the batch size.
The tables are speed_tables.render_train_step's and render_weighting's.
"""

import argparse
import os
import statistics
import time

import torch

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, load_avg, start
from wespeaker_mfcon.analysis.speed_tables import render_train_step, render_weighting
from wespeaker_mfcon.training.step import TrainStep
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.frontend.fbank import apply_cmn
from wespeaker_mfcon.utils.entrypoint import run_main

CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "voxceleb", "v2_mfcon", "conf")
CONFIGS = {  # name -> (baseline yaml, mfcon yaml, default number of classes)
    "small": ("mfa_conformer_small.yaml", "mfa_conformer_mfcon_small.yaml", 40),   # mini corpus
    "paper": ("mfa_conformer.yaml", "mfa_conformer_mfcon.yaml", 5994),            # VoxCeleb2 dev
}


def time_heads(trainer, batch, frames, feat_dim, labels, repeats, gen):
    """ms of the MFCon part alone: heads + SupCon forward and backward on random block outputs
    of the right shape (what the MFCon trainer adds to a step, minus the Adam update of the
    head parameters)."""
    with torch.no_grad():
        _, blocks = trainer.model(torch.randn(2, frames, feat_dim, generator=gen))
    shapes = [(batch,) + tuple(b.shape[1:]) for b in blocks]
    out = []
    for _ in range(repeats + 1):
        xs = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
        t0 = time.perf_counter()
        loss, _ = trainer.mfcon(xs, labels)
        (trainer.mfcon_weight() * loss).backward()
        out.append((time.perf_counter() - t0) * 1000.0)
        trainer.mfcon.zero_grad(set_to_none=True)
    return out[1:]


FLOP_CACHE = {}


def count_flops(trainer, feats, labels):
    """Matmul/conv FLOPs of one forward + backward (torch FlopCounterMode; elementwise ops,
    norms and softmax are not counted). Deterministic, so independent of machine load."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss = trainer(apply_cmn(feats), labels)[0]
        loss.backward()
    trainer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def build_pair(name, args, threads):
    """Baseline and MFCon TrainSteps of config `name` (same seed), and the batch shape:
    (runners {"base", "mfcon"}, P, K, frames, number of classes, feat_dim)."""
    base_yaml, mfcon_yaml, default_classes = CONFIGS[name]
    base_conf = load_train_config(os.path.join(CONF_DIR, base_yaml))
    mf_conf = load_train_config(os.path.join(CONF_DIR, mfcon_yaml))
    ds = base_conf.dataset_args
    if name == "paper":
        P, K = (ds.spk_per_batch, ds.utts_per_spk) if args.full_batch else args.paper_pk
        frames = args.paper_frames
    else:
        P, K, frames = ds.spk_per_batch, ds.utts_per_spk, ds.num_frames
    num_classes = args.num_classes or default_classes
    for conf in (base_conf, mf_conf):
        conf.num_classes = num_classes
        conf.data_type = "feat"             # random fbank in, no frontend in the step
    base_conf.mfcon_args.enable = False
    torch.set_num_threads(threads)
    runners = {}
    for which, conf in (("base", base_conf), ("mfcon", mf_conf)):
        torch.manual_seed(0)
        runners[which] = TrainStep(conf, "cpu")
    return runners, P, K, frames, num_classes, base_conf.feat_dim


def interleaved_steps(runners, labels, shape, args, gen, tag):
    """Steps of both runners in B, M, M, B, ... order on random fbank of `shape`; per runner
    (wall ms list, CPU ms list) of the steps after the warm-up."""
    wall = {"base": [], "mfcon": []}
    cpu = {"base": [], "mfcon": []}
    for i in range(args.warmup + args.steps):
        for which in (("base", "mfcon") if i % 2 == 0 else ("mfcon", "base")):
            chunks = torch.randn(shape, generator=gen) * 3 + 5
            t0, c0 = time.perf_counter(), time.process_time()
            stats = runners[which](chunks, labels)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if not torch.isfinite(stats).all():
                raise RuntimeError(f"{tag} {which}: non-finite loss {stats.tolist()}")
            if i >= args.warmup:
                wall[which].append(dt * 1000.0)
                cpu[which].append(dc * 1000.0)
            if args.verbose:
                print(f"  {tag} step {i} {which}: {dt * 1000:.0f} ms "
                      f"(loss {stats[0]:.3f}, mfcon {stats[2]:.3f})", flush=True)
    return wall, cpu


def bench_config(name, args, threads):
    """One result row: baseline vs MFCon steps, the heads alone, FLOPs."""
    runners, P, K, frames, num_classes, feat_dim = build_pair(name, args, threads)
    base_trainer, mf_trainer = runners["base"].net, runners["mfcon"].net
    gen = torch.Generator().manual_seed(1)
    spk = torch.randperm(num_classes, generator=gen)[:P] if num_classes >= P else \
        torch.arange(P) % num_classes
    labels = spk.repeat_interleave(K)                      # P x K
    load_before = load_avg()
    times, cpu = interleaved_steps(runners, labels, (P * K, frames, feat_dim), args, gen,
                                   f"{name} t={threads}")
    flops = FLOP_CACHE.get(name, {})
    if args.flops and not flops:
        x = torch.randn(P * K, frames, feat_dim, generator=gen) * 3 + 5
        flops = {"base": count_flops(base_trainer, x, labels),
                 "mfcon": count_flops(mf_trainer, x, labels)}
        FLOP_CACHE[name] = flops            # same for every thread count
    heads_ms = time_heads(mf_trainer, P * K, frames, feat_dim, labels, args.head_repeats, gen)
    return {"config": name, "threads": threads, "batch": P * K, "P": P, "K": K,
            "frames": frames, "num_classes": num_classes,
            "model_params": sum(p.numel() for p in base_trainer.model.parameters()),
            "mfcon_head_params": sum(p.numel() for p in mf_trainer.mfcon.parameters()),
            **overheads(times, cpu, heads_ms, flops),
            "loadavg_before": load_before, "loadavg_after": load_avg()}


def overheads(times, cpu, heads_ms, flops):
    """The MFCon overhead figures of interleaved step times (ms lists per runner)."""
    med_b, med_m = statistics.median(times["base"]), statistics.median(times["mfcon"])
    pair = statistics.median(m / b for b, m in zip(times["base"], times["mfcon"]))
    cpu_b, cpu_m = statistics.median(cpu["base"]), statistics.median(cpu["mfcon"])
    return {"base_ms": times["base"], "mfcon_ms": times["mfcon"],
            "base_median_ms": med_b, "mfcon_median_ms": med_m,
            "overhead_pct": 100.0 * (med_m / med_b - 1.0),
            "overhead_pair_median_pct": 100.0 * (pair - 1.0),
            "heads_ms": heads_ms, "heads_median_ms": statistics.median(heads_ms),
            "heads_overhead_pct": 100.0 * statistics.median(heads_ms) / med_b,
            "base_min_ms": min(times["base"]), "mfcon_min_ms": min(times["mfcon"]),
            "overhead_min_pct": 100.0 * (min(times["mfcon"]) / min(times["base"]) - 1.0),
            "base_gflop": flops.get("base", 0) / 1e9, "mfcon_gflop": flops.get("mfcon", 0) / 1e9,
            "flop_overhead_pct": (100.0 * (flops["mfcon"] / flops["base"] - 1.0)
                                  if flops else None),
            "base_cpu_ms": cpu["base"], "mfcon_cpu_ms": cpu["mfcon"],
            "base_cpu_median_ms": cpu_b, "mfcon_cpu_median_ms": cpu_m,
            "cpu_overhead_pct": 100.0 * (cpu_m / cpu_b - 1.0)}


def bench_weightings(args, threads):
    """Step time of each mfcon_args.weighting against constant, small MFCon config, interleaved:
    every round runs constant and each scheme once on the same batch, in a rotating order.
    Overhead = median over rounds of (scheme ms / constant ms) - 1, in wall and CPU time."""
    conf = load_train_config(os.path.join(CONF_DIR, CONFIGS["small"][1]))
    conf.num_classes, conf.data_type = args.num_classes or CONFIGS["small"][2], "feat"
    ds = conf.dataset_args
    torch.set_num_threads(threads)
    names = ["constant"] + list(args.weightings)
    runners = {}
    for name in names:
        conf.mfcon_args.weighting = name
        torch.manual_seed(0)
        runners[name] = TrainStep(conf, "cpu")
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(ds.spk_per_batch).repeat_interleave(ds.utts_per_spk)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for i in range(args.warmup + args.steps):
        chunks = torch.randn(len(labels), ds.num_frames, conf.feat_dim, generator=gen) * 3 + 5
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0, c0 = time.perf_counter(), time.process_time()
            runners[name](chunks, labels)
            if i >= args.warmup:
                wall[name].append((time.perf_counter() - t0) * 1000.0)
                cpu[name].append((time.process_time() - c0) * 1000.0)
    block_shape = (len(labels), ds.num_frames // conf.model_args["subsampling"],
                   conf.model_args["output_size"])
    added = weighting_alone_ms(names, conf.mfcon_args, block_shape, repeats=50)
    fastest = min(wall["constant"])
    rows = []
    for name in args.weightings:
        rows.append({"weighting": name, "threads": threads,
                     "constant_ms": statistics.median(wall["constant"]),
                     "scheme_ms": statistics.median(wall[name]),
                     "wall_ratio": statistics.median(s / c for s, c in zip(wall[name],
                                                                           wall["constant"])),
                     "cpu_ratio": statistics.median(s / c for s, c in zip(cpu[name],
                                                                         cpu["constant"])),
                     "added_ms": added[name], "fastest_constant_ms": fastest,
                     "wall_ms": wall[name], "cpu_ms": cpu[name]})
    return rows


def weighting_alone_ms(names, mfcon_args, block_shape, repeats, warmup=5):
    """ms a scheme adds to a step beyond constant, timed alone: a stand-in graph where one
    block output h (block_shape) feeds both losses; tap + loss combination + backward
    (grad_ratio's alias, hooks and norms). Interleaved rounds; median of the per-round
    differences to constant."""
    from wespeaker_mfcon.losses.weighting import build_weighting
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(block_shape, generator=gen), torch.randn(block_shape, generator=gen)
    weightings = {}
    for name in names:
        mfcon_args.weighting = name
        weightings[name] = build_weighting(mfcon_args).train()
    times = {name: [] for name in names}
    for i in range(warmup + repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            h = torch.randn(block_shape, generator=gen).requires_grad_()
            t0 = time.perf_counter()
            y = h * 1.0
            tapped = weightings[name].tap([y], [0])
            weightings[name]((y * a).sum(), (tapped[0] * b).sum()).backward()
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) * 1000.0)
    return {name: statistics.median(t - c for t, c in zip(times[name], times["constant"]))
            for name in names}


def main_weightings(args, record):
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}",
          flush=True)
    record.update(benchmark="weighting", steps=args.steps, warmup=args.warmup,
                  rows=[row for threads in args.threads
                        for row in bench_weightings(args, threads)])
    print()
    print(render_weighting(finish(record, args.json, args.threads)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["small", "paper"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2],
                   help="torch intra-op thread counts to run")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    p.add_argument("--paper_pk", type=int, nargs=2, default=[2, 4], metavar=("P", "K"),
                   help="speakers x utterances per batch for the paper config")
    p.add_argument("--paper_frames", type=int, default=300, help="chunk frames, paper config")
    p.add_argument("--full_batch", action="store_true",
                   help="paper config with its own batch (50 x 4 = 200); slow on CPU")
    p.add_argument("--num_classes", type=int, default=0,
                   help="classifier size (0: 40 for small, 5994 = VoxCeleb2 dev for paper)")
    p.add_argument("--head_repeats", type=int, default=5,
                   help="repeats of the isolated MFCon-head timing")
    p.add_argument("--no_flops", dest="flops", action="store_false",
                   help="skip the FLOP count (one extra forward+backward per variant)")
    p.add_argument("--verbose", action="store_true", help="print every step")
    p.add_argument("--weightings", nargs="+", default=[],
                   choices=["grad_ratio", "loss_ratio", "uncertainty", "schedule"],
                   help="instead: time these mfcon_args.weighting schemes against constant "
                        "(small config, interleaved)")
    add_bench_options(p)
    args = p.parse_args(argv)
    record = start("train_step", "bench_train_step.py", argv, args.force)
    if args.weightings:
        return main_weightings(args, record)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    results = []
    for name in args.configs:
        for threads in args.threads:
            t0 = time.perf_counter()
            r = bench_config(name, args, threads)
            results.append(r)
            print(f"{name} threads={threads}: base {r['base_median_ms']:.0f} ms, "
                  f"mfcon {r['mfcon_median_ms']:.0f} ms ({r['overhead_pct']:+.1f}%; CPU time "
                  f"{r['cpu_overhead_pct']:+.1f}%) "
                  f"[{time.perf_counter() - t0:.0f} s, load {r['loadavg_after']}]", flush=True)
    record.update(results=results, steps=args.steps, warmup=args.warmup,
                  head_repeats=args.head_repeats)
    print()
    print(render_train_step(finish(record, args.json, args.threads)))


if __name__ == "__main__":
    run_main(main)
