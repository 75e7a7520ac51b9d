"""What a failure costs at the paper config: the checkpoint, and the work lost per world size.

    python benchmarks/checkpoint_cost.py [--config conf/mfa_conformer_mfcon.yaml]
        [--utts 1092009] [--speakers 5994] [--worlds 1 8 16 32 64]
        [--json docs/results/checkpoint_cost.json] [--force]

Builds the config's training state as a run holds it (MFA-Conformer, MFCon heads, AM-softmax
head for --speakers classes, Adam moments after one step) and saves it as training does
(utils/checkpoint.save_checkpoint) into a temporary directory, then loads it as a resume does:
its size and the save and load times on this disk. Then, for VoxCeleb2 dev (--utts utterances)
at the config's batch per process, the steps of an epoch per world size (dataset/sampler.py)
and the most work a failure throws away: the steps since the last checkpoint, at most
save_interval_steps or, when an epoch is shorter, one epoch (checkpoints are written at epoch
ends too); in samples, in epochs and as a share of the whole run. A GPU's samples/s
(benchmarks/gpu_check.py) turns the samples into time. The arithmetic and the table are
analysis/distributed_tables.py's (lost_work, render_checkpoint_cost).
"""

import argparse
import os
import tempfile
import time

import torch

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, start
from wespeaker_mfcon.analysis.distributed_tables import lost_work, render_checkpoint_cost
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.training.builders import (build_lr_scheduler, build_model_with_heads,
                                               build_optimizer)
from wespeaker_mfcon.training.checkpointing import Position, capture_state
from wespeaker_mfcon.utils.checkpoint import load_checkpoint, save_checkpoint
from wespeaker_mfcon.utils.entrypoint import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIG = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon", "conf",
                            "mfa_conformer_mfcon.yaml")     # the paper setting, with MFCon


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
        began = time.perf_counter()
        save_checkpoint(state, path)
        saved = time.perf_counter()
        load_checkpoint(path)
        loaded = time.perf_counter()
        size = os.path.getsize(path)
    return {"bytes": size, "save_s": saved - began, "load_s": loaded - saved,
            "parameters": sum(p.numel() for p in net.parameters())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=PAPER_CONFIG)
    p.add_argument("--utts", type=int, default=1092009, help="VoxCeleb2 dev utterances")
    p.add_argument("--speakers", type=int, default=5994, help="VoxCeleb2 dev speakers")
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    add_bench_options(p)
    args = p.parse_args(argv)
    record = start("checkpoint_cost", "checkpoint_cost.py", argv, args.force)
    conf = load_train_config(args.config)
    conf.num_classes = args.speakers
    record.update(config=os.path.relpath(args.config, ROOT), batch=conf.batch_size,
                  save_interval_steps=conf.save_interval_steps, num_epochs=conf.num_epochs,
                  utts=args.utts, checkpoint=checkpoint_figures(conf),
                  worlds=[lost_work(conf, args.utts, w) for w in args.worlds])
    print(render_checkpoint_cost(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
