"""One training step as stage 2 runs it, built from a config without data or checkpoints:
what the step-time benchmarks measure (benchmarks/bench_train_step.py, bench_loader.py) and
what analysis/paper_gradients.py probes with gradient diagnostics.

    step = TrainStep(conf)             # network with heads, optimizer, lr schedule, and the
                                       # on-the-fly fbank for data_type raw / shard
    stats = step(chunks, labels)       # one optimizer step (training/loop.py EpochRunner.step):
                                       # [loss, L_cls, L_mfcon, accuracy, MFCon weight]

chunks are what the loader of the config's data_type yields: (B, T, F) fbank for feat,
(B, N) int16-scale waveforms for raw and shard; labels (B,). No margin schedule.
"""

import torch

from wespeaker_mfcon.training.builders import (build_frontend, build_lr_scheduler,
                                               build_model_with_heads, build_optimizer)
from wespeaker_mfcon.training.loop import EpochRunner, StepOptions


class TrainStep:
    """The parts of one training process, stepped by calling it; .net is the ModelWithHeads."""

    def __init__(self, conf, device="cpu", steps_per_epoch=1000, diagnostics_interval=0):
        device = torch.device(device)
        self.net = build_model_with_heads(conf).to(device)
        self.net.train()
        frontend = build_frontend(conf, device)
        optimizer = build_optimizer(conf, self.net.parameters())
        scheduler = build_lr_scheduler(conf, optimizer, steps_per_epoch)
        options = StepOptions(device=device, frontend=frontend, grad_clip=conf.grad_clip,
                              is_main=False, diagnostics_interval=diagnostics_interval)
        self.optimizer = optimizer
        self._runner = EpochRunner(self.net, optimizer, scheduler, None, options)
        self.steps = 0

    def __call__(self, chunks, labels):
        """One optimizer step on chunks (B, T, F) or (B, N), labels (B,) -> stats (5,)."""
        stats = self._runner.step(chunks, labels, self.steps)
        self.steps += 1
        return stats

    @property
    def diagnostics(self):
        """training/diagnostics.GradientDiagnostics of the steps (None without them)."""
        return self._runner.diagnostics
