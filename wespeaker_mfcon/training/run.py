"""TrainingRun: one process of stage 2, from the config to the checkpoints.

  config + overrides --validate--> TrainConfig --> exp/NAME/config.yaml, spk2id
  builders --> ModelWithHeads, loader, optimizer, schedules --> resume from the newest checkpoint
              (or, in a fresh run, the weights of init_from: finetune.py)
  for each epoch: EpochRunner.run_epoch (mid-epoch checkpoints every save_interval_steps)
                  --> replica check --> models/model_<epoch>.pt
"""

import json
import logging
import os
import sys

import numpy as np
import torch

from wespeaker_mfcon.dataset.dataset import load_spk2id
from wespeaker_mfcon.training import builders, diagnostics, distributed, finetune
from wespeaker_mfcon.training.checkpointing import (Position, capture_state, in_world,
                                                    resume_latest, save_state,
                                                    set_schedule_step)
from wespeaker_mfcon.training.loop import EpochRunner, StepOptions
from wespeaker_mfcon.utils import checkpoint as ckpt
from wespeaker_mfcon.config import load_train_config, save_config
from wespeaker_mfcon.utils.file_utils import write_table


def resolve_config(config_path, overrides, train_data):
    """The validated config completed with what the training data decides; and spk2id."""
    conf = load_train_config(config_path, overrides)
    spk2id = load_spk2id(train_data)
    conf.check_against_data(len(spk2id), f"{train_data}/utt2spk")
    conf.num_classes = conf.classes_for(len(spk2id))
    conf.train_data = os.path.abspath(train_data)
    return conf, spk2id


def train(config, exp_dir, train_data, device="cpu", overrides=None):
    """Train into exp_dir (resuming if it holds checkpoints); rank 0 logs to exp_dir/train.log."""
    handler = None
    if int(os.environ.get("RANK", 0)) == 0:
        os.makedirs(exp_dir, exist_ok=True)
        handler = _file_handler(os.path.join(exp_dir, "train.log"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
    try:
        TrainingRun(config, exp_dir, train_data, device, overrides or {}).fit()
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


class TrainingRun:
    """Everything one process trains with, built from the resolved config."""

    def __init__(self, config, exp_dir, train_data, device, overrides):
        self.rank, self.world, self.device = distributed.init_distributed(device)
        self.is_main = self.rank == 0
        self.conf, self.spk2id = resolve_config(config, overrides, train_data)
        conf = self.conf
        torch.manual_seed(conf.seed)
        np.random.seed(conf.seed)
        self.models_dir = os.path.join(exp_dir, "models")
        if self.is_main:
            os.makedirs(self.models_dir, exist_ok=True)
            save_config(conf, os.path.join(exp_dir, "config.yaml"))
            write_table(os.path.join(exp_dir, "spk2id"), sorted(self.spk2id.items()))
        self.net = builders.build_model_with_heads(conf).to(self.device)
        frontend = builders.build_frontend(conf, self.device)
        self.loader, self.sampler = builders.build_loader(conf, train_data, self.spk2id,
                                                          self.rank, self.world)
        self.steps_per_epoch = self.sampler.num_global // self.world
        self.optimizer = builders.build_optimizer(conf, self.net.parameters())
        self.lr_scheduler = builders.build_lr_scheduler(conf, self.optimizer,
                                                        self.steps_per_epoch)
        margin_scheduler = builders.build_margin_scheduler(conf, self.net.projection,
                                                           self.steps_per_epoch)
        self.position = self.resume()
        if self.world > 1:
            self.net = distributed.wrap_ddp(self.net, self.device)
        ds = conf.dataset_args
        options = StepOptions(
            device=self.device, frontend=frontend,
            spec_aug_args=vars(ds.spec_aug_args) if ds.spec_aug else None,
            amp_dtype=builders.amp_dtype(conf, self.device), grad_clip=conf.grad_clip,
            log_interval=conf.log_batch_interval, is_main=self.is_main,
            freeze_backbone_steps=conf.freeze_backbone_steps,
            diagnostics_interval=self._diagnostics_interval())
        self.exp_dir = exp_dir
        self.runner = EpochRunner(self.net, self.optimizer, self.lr_scheduler, margin_scheduler,
                                  options)

    def resume(self):
        """Load the newest checkpoint if there is one, else init_from if given (after the
        random initialization, which consumes the RNG as always); returns where training
        stands, in this run's world size."""
        if self.is_main:
            for name in ckpt.remove_partial_saves(self.models_dir):
                logging.info("removed %s, the partial file of a killed save", name)
        saved, path = resume_latest(self.models_dir, net=self.net, optimizer=self.optimizer,
                                    lr_scheduler=self.lr_scheduler, device=self.device)
        position = in_world(saved, self.world, self.steps_per_epoch)
        if position.step != saved.step:
            set_schedule_step(self.lr_scheduler, position.step)
        init_from = self.conf.init_from
        summary = None
        if path is None and init_from:
            summary = finetune.initialize(self.net, self.conf, self.spk2id)
        if self.is_main:
            self._log_start(path, saved, position, summary)
        return position

    def _log_start(self, path, saved, position, summary):
        init_from = self.conf.init_from
        if path:
            logging.info("resumed from %s (epoch %d, batch %d, step %d)%s", path,
                         position.epoch, position.batch_in_epoch, position.step,
                         f"; init_from {init_from} not used (a fresh run only)"
                         if init_from else "")
        if saved.world_size not in (0, self.world):
            logging.warning(
                "world size changed from %d to %d process(es) since %s: epoch %d goes on "
                "after %d of its %d global batches (saved after %d), step %d -> %d; shards and "
                "P x K batches are dealt to %d process(es), the batch of one step is now %d "
                "samples (was %d)", saved.world_size, self.world, os.path.basename(path),
                position.epoch + 1, position.batch_in_epoch * self.world,
                self.steps_per_epoch * self.world, saved.batch_in_epoch * saved.world_size,
                saved.step, position.step, self.world, self.world * self.conf.batch_size,
                saved.world_size * self.conf.batch_size)
        if summary:
            logging.info(summary)
        if self.conf.freeze_backbone_steps > position.step:
            logging.info("backbone frozen until step %d: only the heads learn",
                         self.conf.freeze_backbone_steps)
        n_params = sum(p.numel() for p in self.net.model.parameters())
        logging.info("model %s: %.2f M parameters; %d classes; %d steps/epoch on %d "
                     "process(es)%s", self.conf.model, n_params / 1e6,
                     self.conf.num_classes, self.steps_per_epoch, self.world,
                     f"; amp {self.conf.amp}" if self.conf.amp != "none" else "")
        if path:        # as big as the one resumed from; else the optimizer state is to come
            ckpt.warn_if_no_room(self.models_dir, os.path.getsize(path), "one checkpoint")
        else:
            state = capture_state(self.net, self.optimizer, self.lr_scheduler, position)
            ckpt.warn_if_no_room(self.models_dir, ckpt.state_bytes(state),
                                 "one checkpoint at the least")

    def _diagnostics_interval(self):
        """conf.diagnostics_interval, or 0 (with a warning) where it cannot be measured."""
        every = self.conf.diagnostics_interval
        if every and (self.world > 1 or not self.conf.mfcon_args.enable):
            if self.is_main:
                logging.warning("diagnostics_interval %d ignored: gradient diagnostics need "
                                "MFCon and one process", every)
            return 0
        return every

    def save(self, name, position, keep_steps=None):
        """Every rank calls it: rank 0 writes models/<name> and removes the mid-epoch
        checkpoints but keep_steps; a failure to write stops every rank at once, with one line
        from rank 0 (not a hang, nor tracebacks from ranks that lost their peer)."""
        def write():
            save_state(self.models_dir, name, net=self.net, optimizer=self.optimizer,
                       lr_scheduler=self.lr_scheduler, position=position)
            ckpt.remove_step_checkpoints(self.models_dir, keep=keep_steps)
        distributed.on_rank0(write, self.rank, self.world)

    def fit(self):
        start = self.position
        global_step = start.step
        for epoch in range(start.epoch, self.conf.num_epochs):
            batch_in_epoch = start.batch_in_epoch if epoch == start.epoch else 0
            self.sampler.set_epoch(epoch, batch_in_epoch)
            on_step = self._mid_epoch_saver(epoch, epoch_start_step=global_step - batch_in_epoch)
            global_step, stats = self.runner.run_epoch(self.loader, epoch + 1, global_step,
                                                       on_step)
            if self.is_main and hasattr(self.loader, "summary"):   # data_type shard
                logging.info("epoch %d %s", epoch + 1, self.loader.summary())
            self.end_epoch(epoch + 1, global_step, stats)
        distributed.finish(self.world)

    def _mid_epoch_saver(self, epoch, epoch_start_step):
        """on_step callback: a step_<N>.pt every save_interval_steps (not at epoch end)."""
        every = self.conf.save_interval_steps

        def on_step(step):
            in_epoch = step - epoch_start_step
            if every and step % every == 0 and in_epoch < self.steps_per_epoch:
                self.save(f"step_{step}.pt", Position(epoch, in_epoch, step, self.world),
                          keep_steps=f"step_{step}.pt")
        return on_step

    def end_epoch(self, epoch, global_step, stats):
        """Check replicas agree, write model_<epoch>.pt, log the epoch line."""
        checksum = (distributed.check_ranks_in_sync(self.net, self.world)
                    if self.world > 1 else None)
        self.save(f"model_{epoch}.pt", Position(epoch, 0, global_step, self.world))
        if not self.is_main:
            return
        sync = f" ranks in sync (checksum {checksum:.6f})" if checksum is not None else ""
        logging.info("epoch %d done: %s%s", epoch, self.runner.describe(stats), sync)
        if self.runner.diagnostics is not None:
            self.write_diagnostics(epoch, global_step, stats)

    def write_diagnostics(self, epoch, global_step, stats):
        """One line per epoch in train.log and in exp/diagnostics.jsonl (read by the studies)."""
        summary = self.runner.diagnostics.summary()
        logging.info("epoch %d diagnostics: %s", epoch, diagnostics.describe(summary))
        loss, loss_cls, loss_mfcon, acc, lam = stats.tolist()
        row = {"epoch": epoch, "step": global_step, "loss_cls": loss_cls,
               "loss_mfcon": loss_mfcon, "train_acc": acc, "lambda": lam, **summary}
        with open(os.path.join(self.exp_dir, "diagnostics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def _file_handler(path):
    handler = _LogFile(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler


class _LogFile(logging.FileHandler):
    """train.log; when a line cannot be written (a full disk), one warning on stderr instead of
    a "--- Logging error ---" traceback per line."""
    failed = False

    def handleError(self, record):
        if not self.failed:
            self.failed = True
            print(f"warning: {self.baseFilename}: cannot write the log ({sys.exc_info()[1]}); "
                  "its lines go to the console only", file=sys.stderr)
