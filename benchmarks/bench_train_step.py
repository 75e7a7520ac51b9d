"""CPU training-step time of the MFA-Conformer with and without the MFCon loss.

    python benchmarks/bench_train_step.py [--configs small paper] [--threads 1 2]
        [--steps 3] [--warmup 1] [--paper_pk 2 4] [--full_batch] [--json OUT]
    python benchmarks/bench_train_step.py --weightings grad_ratio loss_ratio uncertainty \
        [--steps 20] [--threads 1]          # MFCon weighting overhead, small config

One step is exactly what EpochRunner.step (wespeaker_mfcon/training/loop.py) does in training:
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
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import (START_LOAD, add_force_option, command_line,  # noqa: E402
                               contention_note, load_avg, markdown_table, require_idle)
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402
from wespeaker_mfcon.training.builders import (build_lr_scheduler,  # noqa: E402
                                               build_model_with_heads, build_optimizer)
from wespeaker_mfcon.frontend.fbank import apply_cmn  # noqa: E402
from wespeaker_mfcon.training.loop import EpochRunner, StepOptions  # noqa: E402
from wespeaker_mfcon.config import load_train_config  # noqa: E402

CONF_DIR = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon", "conf")
CONFIGS = {  # name -> (baseline yaml, mfcon yaml, default number of classes)
    "small": ("mfa_conformer_small.yaml", "mfa_conformer_mfcon_small.yaml", 40),   # mini corpus
    "paper": ("mfa_conformer.yaml", "mfa_conformer_mfcon.yaml", 5994),            # VoxCeleb2 dev
}


def make_runner(conf, device):
    trainer = build_model_with_heads(conf).to(device)
    trainer.train()
    optimizer = build_optimizer(conf, trainer.parameters())
    scheduler = build_lr_scheduler(conf, optimizer, steps_per_epoch=1000)
    runner = EpochRunner(trainer, optimizer, scheduler, None,
                         StepOptions(device=device, grad_clip=conf.grad_clip, is_main=False))
    return runner, trainer


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


def bench_config(name, args, threads):
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
    batch = P * K
    for conf in (base_conf, mf_conf):
        conf.num_classes = num_classes
        conf.data_type = "feat"             # random fbank in, no frontend in the step
    base_conf.mfcon_args.enable = False
    device = torch.device("cpu")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base_runner, base_trainer = make_runner(base_conf, device)
    torch.manual_seed(0)
    mf_runner, mf_trainer = make_runner(mf_conf, device)
    n_model = sum(p.numel() for p in base_trainer.model.parameters())
    n_heads = sum(p.numel() for p in mf_trainer.mfcon.parameters())
    feat_dim = base_conf.feat_dim

    gen = torch.Generator().manual_seed(1)
    spk = torch.randperm(num_classes, generator=gen)[:P] if num_classes >= P else \
        torch.arange(P) % num_classes
    labels = spk.repeat_interleave(K)                      # P x K
    times = {"base": [], "mfcon": []}
    cpu = {"base": [], "mfcon": []}
    load_before = load_avg()
    for i in range(args.warmup + args.steps):
        order = ("base", "mfcon") if i % 2 == 0 else ("mfcon", "base")
        for which in order:
            runner = base_runner if which == "base" else mf_runner
            chunks = torch.randn(batch, frames, feat_dim, generator=gen) * 3 + 5
            t0, c0 = time.perf_counter(), time.process_time()
            stats = runner.step(chunks, labels, i)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if not torch.isfinite(stats).all():
                raise RuntimeError(f"{name} {which}: non-finite loss {stats.tolist()}")
            if i >= args.warmup:
                times[which].append(dt * 1000.0)
                cpu[which].append(dc * 1000.0)
            if args.verbose:
                print(f"  {name} t={threads} step {i} {which}: {dt * 1000:.0f} ms "
                      f"(loss {stats[0]:.3f}, mfcon {stats[2]:.3f})", flush=True)
    flops = FLOP_CACHE.get(name, {})
    if args.flops and not flops:
        x = torch.randn(batch, frames, feat_dim, generator=gen) * 3 + 5
        flops = {"base": count_flops(base_trainer, x, labels),
                 "mfcon": count_flops(mf_trainer, x, labels)}
        FLOP_CACHE[name] = flops            # same for every thread count
    heads_ms = time_heads(mf_trainer, batch, frames, feat_dim, labels, args.head_repeats, gen)
    med_b, med_m = statistics.median(times["base"]), statistics.median(times["mfcon"])
    pair = statistics.median(m / b for b, m in zip(times["base"], times["mfcon"]))
    cpu_b, cpu_m = statistics.median(cpu["base"]), statistics.median(cpu["mfcon"])
    return {"config": name, "threads": threads, "batch": batch, "P": P, "K": K,
            "frames": frames, "num_classes": num_classes, "model_params": n_model,
            "mfcon_head_params": n_heads, "base_ms": times["base"], "mfcon_ms": times["mfcon"],
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
            "cpu_overhead_pct": 100.0 * (cpu_m / cpu_b - 1.0),
            "loadavg_before": load_before, "loadavg_after": load_avg()}


def bench_weightings(args, threads):
    """Step time of each mfcon_args.weighting against constant, small MFCon config, interleaved:
    every round runs constant and each scheme once on the same batch, in a rotating order.
    Overhead = median over rounds of (scheme ms / constant ms) - 1, in wall and CPU time."""
    conf = load_train_config(os.path.join(CONF_DIR, CONFIGS["small"][1]))
    conf.num_classes, conf.data_type = args.num_classes or CONFIGS["small"][2], "feat"
    ds = conf.dataset_args
    device = torch.device("cpu")
    torch.set_num_threads(threads)
    names = ["constant"] + list(args.weightings)
    runners = {}
    for name in names:
        conf.mfcon_args.weighting = name
        torch.manual_seed(0)
        runners[name] = make_runner(conf, device)[0]
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(ds.spk_per_batch).repeat_interleave(ds.utts_per_spk)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for i in range(args.warmup + args.steps):
        chunks = torch.randn(len(labels), ds.num_frames, conf.feat_dim, generator=gen) * 3 + 5
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0, c0 = time.perf_counter(), time.process_time()
            runners[name].step(chunks, labels, i)
            if i >= args.warmup:
                wall[name].append((time.perf_counter() - t0) * 1000.0)
                cpu[name].append((time.process_time() - c0) * 1000.0)
    block_shape = (len(labels), ds.num_frames // conf.model_args["subsampling"],
                   conf.model_args["output_size"])
    added = weighting_alone_ms(names, conf.mfcon_args, block_shape, repeats=50)
    fastest = min(wall["constant"])
    rows = []
    for name in args.weightings:
        ratio_wall = statistics.median(s / c for s, c in zip(wall[name], wall["constant"]))
        ratio_cpu = statistics.median(s / c for s, c in zip(cpu[name], cpu["constant"]))
        rows.append([name, threads, f"{statistics.median(wall['constant']):.0f}",
                     f"{statistics.median(wall[name]):.0f}",
                     f"{100 * (ratio_wall - 1):+.1f}%", f"{100 * (ratio_cpu - 1):+.1f}%",
                     f"{added[name]:.3f} ({100 * added[name] / fastest:.3f}%)"])
    return rows, {"wall_ms": wall, "cpu_ms": cpu, "added_ms": added}


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


def main_weightings(args, argv):
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}",
          flush=True)
    rows, raw = [], {}
    for threads in args.threads:
        r, raw[threads] = bench_weightings(args, threads)
        rows += r
    header = ["weighting", "threads", "constant ms/step (median)", "scheme ms/step (median)",
              "overhead, wall (median of per-round ratios)", "overhead, CPU time",
              "added ms timed alone (% of the fastest constant step)"]
    print()
    print(f"MFCon weighting vs constant, small config, {args.steps} interleaved rounds after "
          f"{args.warmup} warm-up: `{command_line('bench_train_step.py', argv)}`")
    print()
    print(markdown_table(header, rows))
    print()
    print("Timed alone: the scheme's own work (grad_ratio: alias, two hooks, two norms over a "
          "block output; the others: a few scalar ops) on a stand-in graph, median of 50 "
          "interleaved differences to constant, divided by the fastest interleaved constant "
          "step. The wall and CPU ratios carry the machine's noise; this column much less.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "raw": raw}, f, indent=1)


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
    p.add_argument("--json", help="write the results here")
    p.add_argument("--weightings", nargs="+", default=[],
                   choices=["grad_ratio", "loss_ratio", "uncertainty", "schedule"],
                   help="instead: time these mfcon_args.weighting schemes against constant "
                        "(small config, interleaved)")
    add_force_option(p)
    args = p.parse_args(argv)
    require_idle(args.force)
    if args.weightings:
        return main_weightings(args, argv)
    cmd = command_line("bench_train_step.py", argv)

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
          flush=True)
    results = []
    t_start = time.perf_counter()
    for name in args.configs:
        for threads in args.threads:
            t0 = time.perf_counter()
            r = bench_config(name, args, threads)
            results.append(r)
            print(f"{name} threads={threads}: base {r['base_median_ms']:.0f} ms, "
                  f"mfcon {r['mfcon_median_ms']:.0f} ms ({r['overhead_pct']:+.1f}%; CPU time "
                  f"{r['cpu_overhead_pct']:+.1f}%) "
                  f"[{time.perf_counter() - t0:.0f} s, load {r['loadavg_after']}]", flush=True)

    header = ["config", "threads", "batch (PxK) x frames", "model / MFCon-head params",
              "baseline ms/step median (min)", "MFCon ms/step median (min)",
              "MFCon overhead, wall: medians (mins)", "baseline / MFCon CPU ms/step",
              "MFCon overhead (CPU time)", "MFCon heads alone fwd+bwd ms (% of baseline step)",
              "GFLOP/step fwd+bwd baseline / MFCon (overhead)",
              "load avg before / after"]
    rows = [[r["config"], r["threads"], f"{r['batch']} ({r['P']}x{r['K']}) x {r['frames']}",
             f"{r['model_params'] / 1e6:.2f} M / {r['mfcon_head_params'] / 1e6:.2f} M",
             f"{r['base_median_ms']:.0f} ({r['base_min_ms']:.0f})",
             f"{r['mfcon_median_ms']:.0f} ({r['mfcon_min_ms']:.0f})",
             f"{r['overhead_pct']:+.1f}% ({r['overhead_min_pct']:+.1f}%)",
             f"{r['base_cpu_median_ms']:.0f} / {r['mfcon_cpu_median_ms']:.0f}",
             f"{r['cpu_overhead_pct']:+.1f}%",
             f"{r['heads_median_ms']:.0f} ({r['heads_overhead_pct']:.1f}%)",
             (f"{r['base_gflop']:.0f} / {r['mfcon_gflop']:.0f} ({r['flop_overhead_pct']:+.1f}%)"
              if r["flop_overhead_pct"] is not None else "-"),
             f"{r['loadavg_before']} / {r['loadavg_after']}"] for r in results]
    print()
    print(f"Training step on CPU (forward + backward + Adam, as EpochRunner.step), median of "
          f"{args.steps} interleaved steps after {args.warmup} warm-up step(s):")
    print()
    print(markdown_table(header, rows))
    print()
    print("Overheads are ratios of the medians (in parentheses: of the minimums; the median "
          "of the per-pair ratios is in --json). Wall time is what a user waits; CPU time "
          "(process_time, all threads of this process) is less sensitive to other processes "
          "competing for the cores. 'MFCon heads alone' "
          "times only the added computation (per-block LN-ASP-BN-Linear heads + SupCon, forward "
          "and backward, on random block outputs of the step's shape), median of "
          f"{args.head_repeats}, and divides it by the baseline step. GFLOP: matmul/conv FLOPs "
          "of one forward+backward counted by torch's FlopCounterMode (load-independent; "
          "elementwise ops, norms, softmax and the Adam update not counted). Random fbank input, "
          "random-init weights; the paper config's batch is reduced unless --full_batch.")
    print()
    note = contention_note(args.threads, START_LOAD)
    if note:
        print(note)
    print(f"total {time.perf_counter() - t_start:.0f} s; load average at the end {load_avg()}")
    print(f"command: {cmd}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": cmd, "results": results}, f, indent=2)


if __name__ == "__main__":
    run_main(main)
