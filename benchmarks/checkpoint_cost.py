"""What a failure costs at the paper config: the checkpoint, and the work lost per world size.

    python benchmarks/checkpoint_cost.py [--config conf/mfa_conformer_mfcon.yaml]
        [--utts 1092009] [--speakers 5994] [--worlds 1 8 16 32 64]
        [--json docs/results/checkpoint_cost.json]

Builds the config's training state as a run holds it (MFA-Conformer, MFCon heads, AM-softmax
head for --speakers classes, Adam moments after one step) and saves it as training does
(utils/checkpoint.save_checkpoint) into a temporary directory, then loads it as a resume does:
its size and the save and load times on this disk. Then, for VoxCeleb2 dev (--utts utterances)
at the config's batch per process, the steps of an epoch per world size (dataset/sampler.py)
and the most work a failure throws away: the steps since the last checkpoint, at most
save_interval_steps or, when an epoch is shorter, one epoch (checkpoints are written at epoch
ends too); in samples, in epochs and as a share of the whole run. A GPU's samples/s
(benchmarks/gpu_check.py) turns the samples into time.
"""

import argparse
import os
import socket
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import PAPER_CONFIG, command_line, finish_report, load_avg  # noqa: E402
from wespeaker_mfcon.analysis.tables import markdown_table  # noqa: E402
from wespeaker_mfcon.config import load_train_config  # noqa: E402
from wespeaker_mfcon.dataset.sampler import global_batches  # noqa: E402
from wespeaker_mfcon.training.builders import (build_lr_scheduler,  # noqa: E402
                                               build_model_with_heads, build_optimizer)
from wespeaker_mfcon.training.checkpointing import Position, capture_state  # noqa: E402
from wespeaker_mfcon.utils.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402



def checkpoint_figures(conf):
    """{bytes, save_s, load_s} of the full training state of conf."""
    net = build_model_with_heads(conf)
    optimizer = build_optimizer(conf, net.parameters())
    for p in net.parameters():                  # one Adam step: its moments exist
        p.grad = torch.zeros_like(p)
    optimizer.step()
    state = capture_state(net, optimizer, build_lr_scheduler(conf, optimizer, 1000),
                          Position(1, 0, 1000, 8))
    with tempfile.TemporaryDirectory(prefix="checkpoint_cost_") as work:
        path = os.path.join(work, "model_1.pt")
        start = time.perf_counter()
        save_checkpoint(state, path)
        saved = time.perf_counter()
        load_checkpoint(path)
        loaded = time.perf_counter()
        size = os.path.getsize(path)
    return {"bytes": size, "save_s": saved - start, "load_s": loaded - saved,
            "parameters": sum(p.numel() for p in net.parameters())}


def lost_work(conf, utts, world):
    """The most work one failure throws away in a world of `world` processes."""
    steps = global_batches(utts, conf.batch_size, world) // world
    every = conf.save_interval_steps
    lost = min(every, steps) if every else steps
    samples = lost * world * conf.batch_size
    return {"world": world, "steps_per_epoch": steps, "lost_steps": lost,
            "lost_samples": samples, "lost_epochs": lost / steps,
            "lost_share_of_run": lost / (steps * conf.num_epochs)}


def render(data):
    """The docs table of a checkpoint_cost JSON (analysis/tables.renderers: checkpoint_cost)."""
    ck = data["checkpoint"]
    rows = [[r["world"], r["steps_per_epoch"], r["lost_steps"], f"{r['lost_samples']:,}",
             f"{r['lost_epochs']:.2f}", f"{100 * r['lost_share_of_run']:.2f}%"]
            for r in data["worlds"]]
    return (markdown_table(["processes", "steps per epoch", "steps lost at most",
                            "samples lost", "epochs lost", "share of the run"], rows) +
            f"\n{data['config']}: batch {data['batch']} per process, "
            f"save_interval_steps {data['save_interval_steps']}, {data['num_epochs']} epochs of "
            f"{data['utts']:,} utterances. Its checkpoint ({ck['parameters'] / 1e6:.1f} M "
            f"parameters with the heads, Adam moments): {ck['bytes'] / 2**20:.0f} MiB, saved in "
            f"{ck['save_s']:.1f} s and loaded in {ck['load_s']:.1f} s on {data['host']} (load "
            f"average {data['load']}). Command: `{data['command']}`.\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=PAPER_CONFIG)
    p.add_argument("--utts", type=int, default=1092009, help="VoxCeleb2 dev utterances")
    p.add_argument("--speakers", type=int, default=5994, help="VoxCeleb2 dev speakers")
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    p.add_argument("--json", help="write the figures here (docs/results/checkpoint_cost.json)")
    args = p.parse_args(argv)
    conf = load_train_config(args.config)
    conf.num_classes = args.speakers
    data = {"config": os.path.relpath(args.config, ROOT), "batch": conf.batch_size,
            "save_interval_steps": conf.save_interval_steps, "num_epochs": conf.num_epochs,
            "utts": args.utts, "checkpoint": checkpoint_figures(conf),
            "worlds": [lost_work(conf, args.utts, w) for w in args.worlds],
            "host": f"{socket.gethostname()} ({os.cpu_count()} CPUs)", "load": load_avg(),
            "command": command_line("checkpoint_cost.py", argv)}
    print(render(data))
    finish_report([1], data["command"], args.json, data)


if __name__ == "__main__":
    run_main(main)
