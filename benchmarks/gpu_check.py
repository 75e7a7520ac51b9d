"""What one GPU does with this project, in one run sized for under 8 minutes, into one JSON.

    python benchmarks/gpu_check.py --json docs/results/gpu_check.json [--force]   # on a GPU
    python benchmarks/gpu_check.py --dry_run --json /tmp/gpu_check.json   # CPU, tiny sizes

1. train: samples/s of training steps (training/loop.EpochRunner.step: mean normalization,
   forward, AM-softmax + lambda MFCon, backward, Adam) of the paper config
   (conf/mfa_conformer_mfcon.yaml: 6 blocks, d 256, 5994 classes) at batch 128 (32 speakers x
   4) of 3 s chunks of random fbank, in fp32, bf16 and fp16 (autocast; fp16 with its gradient
   scaler), with the peak GPU memory; the same with MFCon off (the baseline), and the MFCon
   overhead: MFCon step time / baseline step time - 1, per precision.
2. torchrun: one-process jobs of bin/torchrun on the GPU: NCCL all_reduce and
   broadcast_object_list (what DDP and a failed save use; a one-process training job needs no
   process group), and training (--device cuda) on a small synthetic data dir, stopped after
   epoch 1 and started again, against an unbroken run: did it resume, and does it end
   bit-identical (cuDNN may make it differ: the max |difference| says by how much).
3. extract: utterances/s of embedding extraction (apps/embedder.Embedder.embed_many) of 512
   random-length utterances (2-12 s) at batch 64 (length-sorted, padding masked) against one
   at a time, and the max |difference| of their embeddings.
4. onnxruntime: the exported deployable graph (export/onnx.export_checked) on the CUDA
   execution provider if onnxruntime has it (pip install onnxruntime-gpu), one utterance at a
   time, against PyTorch on the GPU.
--dry_run runs the same code on the CPU with tiny sizes (the test suite runs it, so that the
script still works when a GPU is lent): its figures are not measurements, and it runs on a busy
machine without --force. The tables are analysis/distributed_tables.render_gpu_check's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import kaldiio
import numpy as np
import torch
import yaml

from wespeaker_mfcon.analysis.benchmarking import (add_bench_options, cpu_model, finish,
                                                   quiet_exporter_logs, start)
from wespeaker_mfcon.analysis.distributed_tables import render_gpu_check
from wespeaker_mfcon.apps.embedder import Embedder, load_embedding_net
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.export.onnx import export_checked
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.training.builders import (amp_dtype, build_lr_scheduler,
                                               build_model_with_heads, build_optimizer)
from wespeaker_mfcon.training.loop import EpochRunner, StepOptions
from wespeaker_mfcon.utils.checkpoint import load_checkpoint, save_checkpoint
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError

PAPER_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples", "voxceleb", "v2_mfcon", "conf",
                            "mfa_conformer_mfcon.yaml")     # the paper setting, with MFCon
TINY_MODEL = {"num_blocks": 2, "output_size": 32, "attention_heads": 2, "linear_units": 64,
              "cnn_module_kernel": 7, "subsampling": 4, "embed_dim": 16}


@dataclass
class Sizes:
    classes: int            # speakers of the classification head (train)
    P: int                  # train batch: P speakers x K utterances of `frames`
    K: int
    frames: int
    warmup: int
    steps: int
    utts: int               # extract: utterances of utt_frames[0]..[1] frames
    utt_frames: tuple
    batch: int
    ort_utts: int           # onnxruntime: utterances of `frames`
    resume: tuple           # torchrun resume check: speakers, utterances each, its P and K


GPU = Sizes(classes=5994, P=32, K=4, frames=300, warmup=5, steps=20, utts=512,
            utt_frames=(200, 1200), batch=64, ort_utts=100, resume=(8, 8, 4, 2))
DRY = Sizes(classes=8, P=2, K=2, frames=60, warmup=1, steps=1, utts=6, utt_frames=(60, 140),
            batch=3, ort_utts=2, resume=(4, 3, 2, 2))      # resume: 3 steps an epoch


def write_config(path, dry, **changes):
    """The paper config (the tiny model with dry) with top-level changes, as a YAML file."""
    with open(PAPER_CONFIG, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    if dry:
        conf["model_args"].update(TINY_MODEL)
    conf.update(changes)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(conf, f)
    return path


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device):
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def time_training(conf_path, precision, mfcon, sizes, device):
    """{samples_per_s, step_ms, peak_gib} of sizes.steps training steps after warm-up."""
    conf = load_train_config(conf_path, {"amp": precision, "mfcon_args.enable": mfcon})
    conf.num_classes = sizes.classes
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    net = build_model_with_heads(conf).to(device)
    optimizer = build_optimizer(conf, net.parameters())
    runner = EpochRunner(net, optimizer, build_lr_scheduler(conf, optimizer, 1000), None,
                         StepOptions(device=device, amp_dtype=amp_dtype(conf, device),
                                     is_main=False))
    labels = torch.arange(sizes.P).repeat_interleave(sizes.K)
    chunks = torch.randn(len(labels), sizes.frames, conf.feat_dim) * 3 + 5
    for step in range(sizes.warmup):
        runner.step(chunks, labels, step)
    sync(device)
    began = time.perf_counter()
    for step in range(sizes.steps):
        stats = runner.step(chunks, labels, sizes.warmup + step)
    sync(device)
    elapsed = time.perf_counter() - began
    if not torch.isfinite(stats).all():
        raise RuntimeError(f"{precision} mfcon={mfcon}: non-finite loss {stats.tolist()}")
    return {"samples_per_s": sizes.steps * len(labels) / elapsed,
            "step_ms": 1000 * elapsed / sizes.steps, "peak_gib": peak_gib(device)}


def training(conf_path, sizes, device):
    """Per precision: MFCon and baseline figures and the MFCon overhead in %."""
    out = {}
    for precision in ("none", "bf16", "fp16"):
        name = {"none": "fp32"}.get(precision, precision)
        if precision == "fp16" and device.type != "cuda":
            out[name] = {"skipped": "fp16 autocast needs CUDA"}
            continue
        mf = time_training(conf_path, precision, True, sizes, device)
        base = time_training(conf_path, precision, False, sizes, device)
        out[name] = {"mfcon": mf, "baseline": base,
                     "mfcon_overhead_pct": 100 * (mf["step_ms"] / base["step_ms"] - 1)}
        print(f"train {name}: MFCon {mf['samples_per_s']:.0f} samples/s, baseline "
              f"{base['samples_per_s']:.0f}, overhead {out[name]['mfcon_overhead_pct']:.1f}%",
              flush=True)
    return out


def write_feats(data_dir, speakers, utts, frames, dim=80):
    """A Kaldi data dir of random fbank (feats.scp, utt2spk): a speaker is a mean offset."""
    os.makedirs(data_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    with kaldiio.WriteHelper(f"ark,scp:{data_dir}/feats.ark,{data_dir}/feats.scp") as writer, \
            open(f"{data_dir}/utt2spk", "w", encoding="utf-8") as utt2spk:
        for s in range(speakers):
            offset = rng.standard_normal(dim) * 2
            for u in range(utts):
                length = int(rng.integers(frames, 2 * frames))
                writer(f"spk{s}-{u}", (offset + rng.standard_normal((length, dim)) + 5)
                       .astype(np.float32))
                utt2spk.write(f"spk{s}-{u} spk{s}\n")
    return data_dir


def torchrun_check(work, dry, sizes, device):
    """NCCL collectives in a one-process torchrun job (probe), and a training job stopped
    after epoch 1 and started again against an unbroken one."""
    return {"backend": "nccl" if device.type == "cuda" else "gloo",
            "collectives": _launch([os.path.abspath(__file__), "--probe", device.type]),
            "resume": _resume(work, dry, sizes, device)}


def _resume(work, dry, sizes, device):
    speakers, utts, P, K = sizes.resume
    conf = write_config(os.path.join(work, "resume.yaml"), dry, num_epochs=2,
                        save_interval_steps=2, dataloader_args={"num_workers": 0},
                        dataset_args={"num_frames": sizes.frames, "spk_per_batch": P,
                                      "utts_per_spk": K})
    data = write_feats(os.path.join(work, "data"), speakers, utts, frames=sizes.frames)
    stopped = os.path.join(work, "stopped")
    for exp, epochs in (("unbroken", 2), ("stopped", 1), ("stopped", 2)):
        result = _launch(["-m", "wespeaker_mfcon.bin.train", "--config", conf, "--exp_dir",
                          os.path.join(work, exp), "--train_data", data,
                          "--device", device.type, "--num_epochs", str(epochs)])
        if not result["ok"]:
            return result
    a, b = (load_checkpoint(os.path.join(work, exp, "models", "model_2.pt"))["model"]
            for exp in ("unbroken", "stopped"))
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    with open(os.path.join(stopped, "train.log"), encoding="utf-8") as f:
        resumed = "resumed from" in f.read()
    return {"ok": True, "resumed": resumed, "identical": diff == 0.0, "max_abs_diff": diff}


def _launch(worker):
    """A one-process job of bin/torchrun running worker (a script or -m module and its
    arguments): {"ok": True} and the JSON its last stdout line holds, if any; or the error."""
    cmd = [sys.executable, "-m", "wespeaker_mfcon.bin.torchrun", "--standalone",
           "--nproc_per_node=1", *worker]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        return {"ok": False, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
    return {"ok": True, **(json.loads(last) if last.startswith("{") else {})}


def probe(device_type):
    """In a torchrun worker: all_reduce and broadcast_object_list (what training uses) over
    the device's backend; prints the outcome as JSON."""
    import torch.distributed as dist
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if device_type == "cuda" \
        else torch.device("cpu")
    total = torch.full((4,), float(rank + 1), device=device)
    dist.all_reduce(total)
    shared = ["from rank 0" if rank == 0 else None]
    dist.broadcast_object_list(shared, src=0)
    dist.barrier()
    ok = float(total[0]) == world * (world + 1) / 2 and shared[0] == "from rank 0"
    print(json.dumps({"world_size": world, "backend": dist.get_backend(),
                      "all_reduce_and_broadcast": ok}))
    dist.destroy_process_group()


def random_utts(count, frame_range, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((int(rng.integers(*frame_range)), 80)) * 3 + 5)
            .astype(np.float32) for _ in range(count)]


def extraction(model_path, conf_path, sizes, device):
    """Batched Embedder.embed_many against batch 1: utterances/s and max |difference|."""
    embedder = Embedder(model_path, conf_path, device=device.type)
    feats = random_utts(sizes.utts, sizes.utt_frames)
    rates, embeds = {}, {}
    for batch in (1, sizes.batch):
        embedder.embed_many(feats[:batch], batch, batch * sizes.utt_frames[1])   # warm-up
        sync(device)
        began = time.perf_counter()
        embeds[batch] = embedder.embed_many(feats, batch, batch * sizes.utt_frames[1])
        sync(device)
        rates[batch] = len(feats) / (time.perf_counter() - began)
    return {"utts": len(feats), "batch": sizes.batch, "batch_1_utts_per_s": rates[1],
            "batched_utts_per_s": rates[sizes.batch],
            "speedup": rates[sizes.batch] / rates[1],
            "max_abs_diff": float(np.abs(embeds[1] - embeds[sizes.batch]).max())}


def onnx_runtime(model_path, conf_path, work, sizes, device):
    """The exported graph on ONNX Runtime's execution provider for the device, against
    PyTorch, one utterance of `frames` at a time."""
    import onnxruntime as ort
    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        return {"available": False, "providers": ort.get_available_providers()}
    net, conf = load_embedding_net(model_path, conf_path)
    onnx_path = os.path.join(work, "model.onnx")
    export_checked(net, conf, onnx_path)
    session = ort.InferenceSession(onnx_path, providers=[provider])
    feats = random_utts(sizes.ort_utts, (sizes.frames, sizes.frames + 1))
    net = net.to(device)
    timings, outs = {}, {}
    for name, run in (("onnxruntime", lambda x: session.run(["embs"], {"feats": x[None]})[0]),
                      ("torch", lambda x: _torch_embed(net, x, device))):
        run(feats[0])
        began = time.perf_counter()
        outs[name] = np.concatenate([run(x) for x in feats])
        timings[name] = len(feats) / (time.perf_counter() - began)
    return {"available": True, "provider": provider,
            "onnxruntime_utts_per_s": timings["onnxruntime"],
            "torch_utts_per_s": timings["torch"],
            "max_abs_diff": float(np.abs(outs["onnxruntime"] - outs["torch"]).max())}


def _torch_embed(net, feats, device):
    with torch.inference_mode():
        out = net(torch.from_numpy(feats[None]).to(device)).float().cpu().numpy()
    sync(device)
    return out


def run_parts(dry, sizes, device):
    """{part: its figures, "part_seconds": {part: s}} of the four parts, run in a temporary
    directory on a randomly initialized model of the paper config (the tiny model with dry)."""
    out = {"part_seconds": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        conf = write_config(os.path.join(work, "paper.yaml"), dry)
        model_path = os.path.join(work, "model.pt")
        c = load_train_config(conf)
        save_checkpoint({"model": build_model(c.model, c.model_args).state_dict()}, model_path)
        parts = {"train": lambda: training(conf, sizes, device),
                 "torchrun": lambda: torchrun_check(work, dry, sizes, device),
                 "extraction": lambda: extraction(model_path, conf, sizes, device),
                 "onnxruntime": lambda: onnx_runtime(model_path, conf, work, sizes, device)}
        for name, run in parts.items():
            began = time.perf_counter()
            out[name] = run()
            out["part_seconds"][name] = time.perf_counter() - began
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry_run", action="store_true", help="CPU, tiny sizes: checks the script")
    p.add_argument("--probe", choices=("cpu", "cuda"), help=argparse.SUPPRESS)  # a worker
    add_bench_options(p)
    args = p.parse_args(argv)
    if args.probe:
        probe(args.probe)
        return
    quiet_exporter_logs()
    if not args.dry_run and not torch.cuda.is_available():
        raise UserError("no CUDA device visible: run on a GPU machine, or give --dry_run")
    record = start("gpu_check", "gpu_check.py", argv, args.force, timed=not args.dry_run)
    sizes, device = (DRY, torch.device("cpu")) if args.dry_run else (GPU, torch.device("cuda"))
    record.update(device=torch.cuda.get_device_name() if device.type == "cuda" else
                  f"CPU ({cpu_model()}), dry run", dry_run=args.dry_run,
                  torch=torch.__version__, cuda=torch.version.cuda, batch=sizes.P * sizes.K,
                  frames=sizes.frames, classes=sizes.classes)
    began = time.perf_counter()
    record.update(run_parts(args.dry_run, sizes, device))
    record["seconds"] = time.perf_counter() - began
    print(render_gpu_check(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
