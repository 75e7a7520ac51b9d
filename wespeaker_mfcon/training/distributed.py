"""torchrun process setup (gloo on CPU, NCCL on GPU) and the check that replicas agree."""

import os

import torch
import torch.distributed as dist

from wespeaker_mfcon.training.model_with_heads import unwrap
from wespeaker_mfcon.utils.errors import ReportedElsewhere, UserError


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


def wrap_ddp(net, device):
    return torch.nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None)


def check_ranks_in_sync(net, world):
    """All-gather a parameter checksum; differing replicas are a bug worth stopping for."""
    total = sum(p.detach().double().sum() for p in unwrap(net).parameters()).cpu()
    gathered = [torch.zeros_like(total) for _ in range(world)]
    dist.all_gather(gathered, total)
    values = [float(v) for v in gathered]
    if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {values}")
    return values[0]


def on_rank0(fn, rank, world):
    """Run fn() on rank 0; a UserError of it is raised on every rank: the others stop at the
    same point, quietly (rank 0 reports it), rather than in their next collective with
    tracebacks about a lost peer."""
    error = None
    if rank == 0:
        try:
            fn()
        except UserError as e:
            error = e
    if world > 1:
        shared = [None if error is None else str(error)]
        dist.broadcast_object_list(shared, src=0)
        if rank != 0 and shared[0] is not None:
            raise ReportedElsewhere(shared[0])
    if error is not None:
        raise error


def finish(world):
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
