"""Stage 2: train an MFA-Conformer (or ECAPA-TDNN) with AM/AAM-softmax and the MFCon loss.

Single process:   python -m wespeaker_mfcon.bin.train --config C --exp_dir E --train_data D
Distributed:      torchrun --nproc_per_node N -m wespeaker_mfcon.bin.train ... (gloo on CPU,
                  NCCL with --device cuda, one process per GPU; multi-node via torchrun options)
Any config value can be overridden: --num_epochs 2 --mfcon_args.weight 0.1
The resolved config goes to E/config.yaml; checkpoints to E/models/; a killed run started
again with the same command resumes from the latest checkpoint.
"""

import argparse
import logging
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from wespeaker_mfcon.dataset.dataset import SpeakerChunkDataset, load_spk2id
from wespeaker_mfcon.dataset.sampler import build_sampler
from wespeaker_mfcon.losses.margin_scheduler import MarginScheduler
from wespeaker_mfcon.losses.mfcon import MFConLoss
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.models.projections import build_projection
from wespeaker_mfcon.trainer import EpochRunner, SpeakerTrainer
from wespeaker_mfcon.utils import checkpoint as ckpt
from wespeaker_mfcon.utils.cli import run_main
from wespeaker_mfcon.utils.config import apply_overrides, load_config, parse_overrides, save_config
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import write_table
from wespeaker_mfcon.utils.lr_schedule import lr_factor


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training YAML (conf/*.yaml)")
    parser.add_argument("--exp_dir", required=True, help="experiment dir (created)")
    parser.add_argument("--train_data", required=True,
                        help="Kaldi data dir with utt2spk and feats.scp (or wav.scp for raw)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args, rest = parser.parse_known_args(argv)
    args.overrides = parse_overrides(rest)
    return args


def init_distributed(device_type):
    """(rank, world_size, device) from torchrun's environment; a plain run is rank 0 of 1."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda given but no CUDA device is visible")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return rank, world, device


def resolve_config(args):
    conf = apply_overrides(load_config(args.config), args.overrides)
    spk2id = load_spk2id(args.train_data)
    speeds = conf["dataset_args"].get("speeds", [1.0])
    num_speeds = len(speeds) if conf["dataset_args"].get("speed_perturb") else 1
    conf["num_classes"] = len(spk2id) * num_speeds
    conf["train_data"] = os.path.abspath(args.train_data)
    return conf, spk2id


def build_parts(conf, device):
    """model + projection + MFCon heads -> SpeakerTrainer; optional on-the-fly frontend."""
    model = build_model(conf["model"], conf.get("model_args", {}))
    proj_args = dict(conf.get("projection_args", {}))
    projection = build_projection(proj_args.pop("project_type", "am_softmax"), model.embed_dim,
                                  conf["num_classes"], **proj_args)
    mf = conf.get("mfcon_args", {}) or {}
    mfcon = None
    if mf.get("enable", False):
        mfcon = MFConLoss(model.block_dims, embed_dim=mf.get("embed_dim", model.embed_dim),
                          temperature=mf.get("temperature", 0.07), blocks=mf.get("blocks"),
                          weights=mf.get("block_weights"))
    trainer = SpeakerTrainer(model, projection, mfcon, mf.get("weight", 0.0) if mfcon else 0.0)
    frontend = None
    if conf.get("data_type", "feat") == "raw":
        from wespeaker_mfcon.frontend.fbank import Fbank
        frontend = Fbank(**conf.get("fbank_args", {}), dither=1.0).to(device)
    return trainer.to(device), frontend


def build_optimizer(conf, params):
    name, opt_args = conf.get("optimizer", "adam").lower(), conf.get("optimizer_args", {})
    if name == "adam":
        return torch.optim.Adam(params, **opt_args)
    if name == "sgd":
        return torch.optim.SGD(params, **opt_args)
    raise UserError(f"unknown optimizer {name!r} (adam or sgd)")


def build_loader(conf, data_dir, spk2id, rank, world, seed):
    ds_args = conf["dataset_args"]
    augmentor = None
    if conf.get("data_type", "feat") == "raw" and ds_args.get("aug_args"):
        from wespeaker_mfcon.dataset.augment import Augmentor
        augmentor = Augmentor(resolve_data_paths(ds_args["aug_args"], data_dir))
    speeds = ds_args.get("speeds", [1.0]) if ds_args.get("speed_perturb") else [1.0]
    dataset = SpeakerChunkDataset(data_dir, spk2id, ds_args["num_frames"],
                                  conf.get("data_type", "feat"), augmentor, speeds)
    sampler = build_sampler(dataset.labels, ds_args, seed, rank, world)
    loader_args = conf.get("dataloader_args", {})
    workers = loader_args.get("num_workers", 0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        pin_memory=loader_args.get("pin_memory", False),
                        prefetch_factor=loader_args.get("prefetch_factor", 2) if workers else None,
                        # its own generator: creating an iterator must not consume the global
                        # RNG, or a run resumed mid-epoch would draw different dropout masks
                        generator=torch.Generator().manual_seed(seed))
    return loader, sampler


def resolve_data_paths(aug_args, data_dir):
    """Replace "{data}" in the noise/RIR list paths by the parent of the training data dir."""
    data_root = os.path.dirname(os.path.abspath(data_dir))
    return {k: v.replace("{data}", data_root) if isinstance(v, str) else v
            for k, v in aug_args.items()}


def training_state(trainer, optimizer, scheduler, epoch, batch_in_epoch, global_step):
    return {"model": _unwrap(trainer).model.state_dict(),
            "projection": _unwrap(trainer).projection.state_dict(),
            "mfcon": _unwrap(trainer).mfcon.state_dict() if _unwrap(trainer).mfcon else {},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "batch_in_epoch": batch_in_epoch, "step": global_step,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}


def restore_state(state, trainer, optimizer, scheduler):
    inner = _unwrap(trainer)
    inner.model.load_state_dict(state["model"])
    inner.projection.load_state_dict(state["projection"])
    if inner.mfcon is not None:
        inner.mfcon.load_state_dict(state["mfcon"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["epoch"], state["batch_in_epoch"], state["step"]


def _unwrap(module):
    return module.module if hasattr(module, "module") else module


def check_ranks_in_sync(trainer, world):
    """All-gather a parameter checksum; differing replicas are a bug worth stopping for."""
    total = sum(p.detach().double().sum() for p in _unwrap(trainer).parameters()).cpu()
    gathered = [torch.zeros_like(total) for _ in range(world)]
    dist.all_gather(gathered, total)
    values = [float(v) for v in gathered]
    if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {values}")
    return values[0]


def train(args):
    """Set up logging to E/train.log on rank 0 around the training run."""
    handler = None
    if int(os.environ.get("RANK", 0)) == 0:
        os.makedirs(args.exp_dir, exist_ok=True)
        handler = _file_handler(os.path.join(args.exp_dir, "train.log"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
    try:
        TrainingRun(args).fit()
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


class TrainingRun:
    """Everything one process trains with, built from the resolved config."""

    def __init__(self, args):
        self.rank, self.world, self.device = init_distributed(args.device)
        self.is_main = self.rank == 0
        self.conf, spk2id = resolve_config(args)
        seed = int(self.conf.get("seed", 42))
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.models_dir = os.path.join(args.exp_dir, "models")
        if self.is_main:
            os.makedirs(self.models_dir, exist_ok=True)
            save_config(self.conf, os.path.join(args.exp_dir, "config.yaml"))
            write_table(os.path.join(args.exp_dir, "spk2id"), sorted(spk2id.items()))
        self.trainer, frontend = build_parts(self.conf, self.device)
        self.loader, self.sampler = build_loader(self.conf, args.train_data, spk2id, self.rank,
                                                 self.world, seed)
        self.steps_per_epoch = self.sampler.num_global // self.world
        self.num_epochs = int(self.conf["num_epochs"])
        self.optimizer = build_optimizer(self.conf, self.trainer.parameters())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, self.steps_per_epoch, self.steps_per_epoch * self.num_epochs,
            **self.conf.get("scheduler_args", {})))
        margin_scheduler = None
        if self.conf.get("margin_scheduler_args"):
            margin_scheduler = MarginScheduler(self.trainer.projection,
                                               epoch_iter=self.steps_per_epoch,
                                               **self.conf["margin_scheduler_args"])
        self.position = self.resume()  # (epoch, batch_in_epoch, global_step)
        if self.world > 1:
            self.trainer = torch.nn.parallel.DistributedDataParallel(
                self.trainer, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)
        ds_args = self.conf["dataset_args"]
        self.runner = EpochRunner(
            self.trainer, self.optimizer, self.scheduler, margin_scheduler, frontend,
            ds_args.get("spec_aug_args") if ds_args.get("spec_aug") else None, self.device,
            _amp_dtype(self.conf, self.device), self.conf.get("grad_clip", 0.0),
            self.conf.get("log_batch_interval", 50), self.is_main)

    def resume(self):
        """Load the newest checkpoint if there is one; returns where training stands."""
        latest = ckpt.latest_checkpoint(self.models_dir, self.steps_per_epoch)
        position = (0, 0, 0)
        if latest:
            position = restore_state(ckpt.load_checkpoint(latest, map_location=self.device),
                                     self.trainer, self.optimizer, self.scheduler)
            if self.is_main:
                logging.info("resumed from %s (epoch %d, batch %d, step %d)", latest, *position)
        if self.is_main:
            n_params = sum(p.numel() for p in self.trainer.model.parameters())
            logging.info("model %s: %.2f M parameters; %d classes; %d steps/epoch on %d "
                         "process(es)", self.conf["model"], n_params / 1e6,
                         self.conf["num_classes"], self.steps_per_epoch, self.world)
        return position

    def save(self, name, epoch, batch_in_epoch, global_step):
        state = training_state(self.trainer, self.optimizer, self.scheduler, epoch,
                               batch_in_epoch, global_step)
        ckpt.save_checkpoint(state, os.path.join(self.models_dir, name))

    def fit(self):
        epoch, batch_in_epoch, global_step = self.position
        save_every = int(self.conf.get("save_interval_steps", 0))
        for epoch in range(epoch, self.num_epochs):
            self.sampler.set_epoch(epoch, batch_in_epoch)
            start_step = global_step - batch_in_epoch

            def on_step(step, epoch=epoch, start_step=start_step):
                in_epoch = step - start_step
                if self.is_main and save_every and step % save_every == 0 and \
                        in_epoch < self.steps_per_epoch:
                    self.save(f"step_{step}.pt", epoch, in_epoch, step)
                    ckpt.remove_older_step_checkpoints(self.models_dir, step)

            global_step, stats = self.runner.run_epoch(self.loader, epoch + 1, global_step,
                                                       on_step)
            batch_in_epoch = 0
            self.end_epoch(epoch + 1, global_step, stats)
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()

    def end_epoch(self, epoch, global_step, stats):
        """Check replicas agree, write model_<epoch>.pt, log the epoch line."""
        checksum = check_ranks_in_sync(self.trainer, self.world) if self.world > 1 else None
        if not self.is_main:
            return
        self.save(f"model_{epoch}.pt", epoch, 0, global_step)
        ckpt.remove_older_step_checkpoints(self.models_dir, global_step + 1)
        sync = f" ranks in sync (checksum {checksum:.6f})" if checksum is not None else ""
        logging.info("epoch %d done: %s%s", epoch, self.runner.describe(stats), sync)


def _amp_dtype(conf, device):
    amp = conf.get("amp", "none")
    if amp in (None, "none", False):
        return None
    if device.type != "cuda":
        logging.warning("amp=%s ignored on CPU", amp)
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _file_handler(path):
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler


def main(argv=None):
    train(get_args(argv))


if __name__ == "__main__":
    run_main(main)
