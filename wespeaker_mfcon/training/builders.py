"""The parts of a training run, each built from the validated config (utils/config.py).

Every builder takes a TrainConfig and returns one part; the benchmarks build from here too.
The order in which run.py calls them fixes the random initialization for a seed.
"""

import os
from dataclasses import asdict

import torch
from torch.utils.data import DataLoader

from wespeaker_mfcon.dataset.dataset import SpeakerChunkDataset
from wespeaker_mfcon.dataset.sampler import build_sampler
from wespeaker_mfcon.losses.margin_scheduler import MarginScheduler
from wespeaker_mfcon.losses.mfcon import MFConLoss
from wespeaker_mfcon.losses.weighting import build_weighting
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.models.projections import build_projection
from wespeaker_mfcon.training.model_with_heads import ModelWithHeads
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.training.lr_schedule import lr_factor


def build_model_with_heads(conf):
    """Backbone, classification head for conf.num_classes and (if enabled) MFCon heads with
    their weighting against the classification loss."""
    model = build_model(conf.model, conf.model_args)
    projection = build_projection(conf.projection_args.project_type, model.embed_dim,
                                  conf.num_classes, **conf.projection_args.head_kwargs())
    mf = conf.mfcon_args
    mfcon = weighting = None
    if mf.enable:
        mfcon = MFConLoss(model.block_dims, embed_dim=mf.embed_dim or model.embed_dim,
                          temperature=mf.temperature, blocks=mf.blocks,
                          weights=mf.block_weights)
        weighting = build_weighting(mf)
    return ModelWithHeads(model, projection, mfcon, weighting)


def build_frontend(conf, device):
    """On-the-fly fbank with dither for data_type raw/shard; None for precomputed features."""
    if conf.data_type not in ("raw", "shard"):
        return None
    from wespeaker_mfcon.frontend.fbank import Fbank
    return Fbank(**conf.fbank_kwargs(), dither=1.0).to(device)


def build_optimizer(conf, params):
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    return optimizers[conf.optimizer](params, **conf.optimizer_args)


def build_lr_scheduler(conf, optimizer, steps_per_epoch):
    """Per-step LambdaLR: warm-up, then the configured decay over conf.num_epochs."""
    total = steps_per_epoch * conf.num_epochs
    args = vars(conf.scheduler_args)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, total, **args))


def build_margin_scheduler(conf, projection, steps_per_epoch):
    if conf.margin_scheduler_args is None:
        return None
    return MarginScheduler(projection, epoch_iter=steps_per_epoch,
                           **vars(conf.margin_scheduler_args))


def build_loader(conf, data_dir, spk2id, rank, world_size):
    """(DataLoader, its batch sampler) for this rank; deterministic in (seed, epoch).
    data_type shard: (ShardLoader, the same ShardLoader), see dataset/shards.py."""
    ds_args = conf.dataset_args
    augmentor = None
    if conf.data_type in ("raw", "shard") and ds_args.aug_args is not None:
        from wespeaker_mfcon.dataset.augment import Augmentor
        augmentor = Augmentor(resolve_data_paths(asdict(ds_args.aug_args), data_dir),
                              sample_rate=conf.sample_rate)
    if conf.data_type == "shard":
        from wespeaker_mfcon.dataset.shards import build_shard_loader
        loader = build_shard_loader(conf, data_dir, spk2id, rank=rank, world_size=world_size,
                                    augmentor=augmentor,
                                    generator=torch.Generator().manual_seed(conf.seed))
        return loader, loader
    dataset = SpeakerChunkDataset(data_dir, spk2id, num_frames=ds_args.num_frames,
                                  data_type=conf.data_type, augmentor=augmentor,
                                  speeds=conf.speeds, fbank_kwargs=conf.fbank_kwargs())
    sampler = build_sampler(dataset.labels, ds_args, num_speeds=len(conf.speeds),
                            seed=conf.seed, rank=rank, world_size=world_size)
    loader_args = conf.dataloader_args
    workers = loader_args.num_workers
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        pin_memory=loader_args.pin_memory,
                        prefetch_factor=loader_args.prefetch_factor if workers else None,
                        # its own generator: creating an iterator must not consume the global
                        # RNG, or a run resumed mid-epoch would draw different dropout masks
                        generator=torch.Generator().manual_seed(conf.seed))
    return loader, sampler


def resolve_data_paths(aug_args, data_dir):
    """Replace "{data}" in the noise/RIR list paths by the parent of the training data dir."""
    data_root = os.path.dirname(os.path.abspath(data_dir))
    return {k: v.replace("{data}", data_root) if isinstance(v, str) else v
            for k, v in aug_args.items()}


def amp_dtype(conf, device):
    """The autocast dtype of conf.amp on this device (None = float32)."""
    if conf.amp == "none":
        return None
    if conf.amp == "fp16" and device.type != "cuda":
        raise UserError("amp: fp16 needs a CUDA device (its gradient scaler is CUDA-only); "
                        "use amp: bf16 on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[conf.amp]
