"""What MFCon's lambda means at the paper's scale: the gradient diagnostics of the paper config
with a VoxCeleb-size classification head, on synthetic features of the right shape.

    python -m wespeaker_mfcon.analysis.paper_gradients \
        --config examples/voxceleb/v2_mfcon/conf/mfa_conformer_mfcon.yaml \
        --classes 1211 --steps 300 --interval 10 --out exp/paper_gradients/vox1.json

The ratio of the MFCon gradient to the classification gradient (training/diagnostics.py)
depends on the loss scales, the head size, the batch and the model, not on what the audio
says. So the config is trained as it is (its model, AM-softmax head, batch of P x K or random
utterances, temperature, lr schedule with warm-up, lambda) for a few hundred steps on
synthetic speakers: speaker c is a fixed random spectral envelope of the frames' variance (it
survives the per-utterance mean normalization, as a voice does), each utterance adds its own
offset and scale jitter, so the classifier can learn them as it learns real speakers. Every
`--interval` steps the diagnostics are measured. Writes one JSON with a row per measured step
(`--batch`, `--frames` shrink the step for a CPU; the JSON records what was used).
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch

from wespeaker_mfcon.analysis.tables import markdown_table
from wespeaker_mfcon.config import load_train_config, parse_overrides
from wespeaker_mfcon.losses.weighting import START_RATIO_TARGET, rule_weight
from wespeaker_mfcon.training.step import TrainStep
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.file_utils import atomic_write


class SyntheticSpeakers:
    """Batches (feats (B, T, F) float32, labels (B,)) of `classes` synthetic speakers."""

    def __init__(self, classes, feat_dim, frames, seed=0):
        gen = np.random.default_rng(seed)
        self.log_scales = gen.standard_normal((classes, feat_dim)).astype(np.float32) * 0.5
        self.frames, self.gen = frames, gen

    def batch(self, labels):
        labels = np.asarray(labels)
        b, f = len(labels), self.log_scales.shape[1]
        offset = self.gen.standard_normal((b, 1, f)).astype(np.float32) * 3.0
        jitter = self.gen.standard_normal((b, 1, f)).astype(np.float32) * 0.25
        noise = self.gen.standard_normal((b, self.frames, f)).astype(np.float32)
        scale = np.exp(self.log_scales[labels][:, None, :] + jitter)
        feats = offset + scale * noise                               # (B, T, F)
        return torch.from_numpy(feats), torch.from_numpy(labels.astype(np.int64))


def draw_labels(conf, classes, gen):
    """P speakers x K utterances (sampler pk), or B speakers drawn with replacement (random)."""
    ds = conf.dataset_args
    if ds.sampler == "pk":
        return np.repeat(gen.choice(classes, ds.spk_per_batch, replace=False), ds.utts_per_spk)
    return gen.integers(0, classes, conf.batch_size)


def probe(conf, classes, steps, interval, frames, steps_per_epoch, seed=0):
    """Train `steps` steps; returns the rows of the measured steps."""
    torch.manual_seed(seed)
    conf.num_classes = classes
    step = TrainStep(conf, steps_per_epoch=steps_per_epoch, diagnostics_interval=interval)
    data = SyntheticSpeakers(classes, conf.feat_dim, frames, seed)
    gen = np.random.default_rng(seed + 1)
    rows, start = [], time.time()
    for i in range(steps):
        stats = step(*data.batch(draw_labels(conf, classes, gen)))
        if step.diagnostics.wants(i):
            rows.append({"step": i, "lr": step.optimizer.param_groups[0]["lr"],
                         "loss_cls": float(stats[1]), "loss_mfcon": float(stats[2]),
                         "train_acc": float(stats[3]), "seconds": time.time() - start,
                         **step.diagnostics.summary()})
            step.diagnostics.reset()
            print(json.dumps(rows[-1]), flush=True)
    return rows


def render(data):
    """The docs table of one probe: per measured step, the losses and the gradient ratios."""
    rows = []
    for r in data["rows"]:
        supcon = [v for k, v in r.items() if k.startswith("supcon_rel_chance_")]
        rows.append([r["step"], f"{r['lr']:.1e}", f"{r['loss_cls']:.2f}",
                     f"{r['train_acc']:.3f}", f"{np.mean(supcon):.3f}", f"{r['raw_ratio']:.3f}",
                     f"{r['ratio']:.4f}"])
    head = (f"{data['classes']} classes, batch {data['batch']} ({data['sampler']}), "
            f"{data['frames']} frames, lambda {data['lambda']:g}, temperature "
            f"{data['temperature']:g}; {data['host']}")
    table = markdown_table(["step", "lr", "L_cls", "train acc", "SupCon / chance", "raw ratio",
                            f"applied ratio (lambda {data['lambda']:g})"], rows)
    target, rule = _rule(data)
    return (head + "\n\n" + table + f"\nThe rule (the MFCon gradient {target:g} x the "
            f"classification gradient at step 0) gives lambda {rule:.1f} for this config.\n")


def _rule(probe):
    """(target ratio, the rule's lambda) of a probe JSON (older ones hold no target: the
    default's)."""
    target = probe.get("target_ratio", START_RATIO_TARGET)
    return target, rule_weight(probe["rows"][0]["raw_ratio"], target)


def render_step0(data):
    """One row per probe of {"probes": [probe JSON, ...]}: the raw ratio at step 0 and the
    rule's lambda for that config and head size."""
    rows = []
    for probe in data["probes"]:
        r = probe["rows"][0]
        rows.append([os.path.basename(probe["config"]), probe["classes"], probe["batch"],
                     probe["frames"], f"{r['loss_cls']:.2f}", f"{r['raw_ratio']:.3f}",
                     f"{_rule(probe)[1]:.1f}"])
    return markdown_table(["config", "classes", "batch", "frames", "L_cls at step 0",
                           "raw ratio at step 0", "rule's lambda"], rows)


def get_parser():
    p = argparse.ArgumentParser(prog="python -m wespeaker_mfcon.analysis.paper_gradients",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the paper config (MFCon on)")
    p.add_argument("--classes", type=int, default=1211, help="head size (VoxCeleb1 dev: 1211, "
                                                             "VoxCeleb2 dev: 5994)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--interval", type=int, default=10, help="measure every N steps")
    p.add_argument("--frames", type=int, default=None,
                   help="chunk frames (default: the config's num_frames)")
    p.add_argument("--utterances", type=int, default=None,
                   help="training utterances the epoch length assumes (default: 148,642 for "
                        "1,211 classes, else 182 per class as in VoxCeleb2 dev)")
    p.add_argument("--target_ratio", type=float, default=START_RATIO_TARGET,
                   help="the rule's MFCon / classification gradient ratio at step 0; the JSON's "
                        "rule_lambda is this over the measured raw ratio (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, rest = get_parser().parse_known_args(argv)
    torch.set_num_threads(args.threads)
    conf = load_train_config(args.config, parse_overrides(rest))
    conf.amp = "none"                                    # CPU: float32
    frames = args.frames or conf.dataset_args.num_frames
    utts = args.utterances or (148642 if args.classes == 1211 else 182 * args.classes)
    steps_per_epoch = max(1, utts // conf.batch_size)
    rows = probe(conf, args.classes, args.steps, args.interval, frames, steps_per_epoch)
    result = {"config": args.config, "overrides": rest, "classes": args.classes,
              "batch": conf.batch_size, "sampler": conf.dataset_args.sampler,
              "frames": frames, "lambda": conf.mfcon_args.weight,
              "temperature": conf.mfcon_args.temperature, "steps_per_epoch": steps_per_epoch,
              "chance_supcon": math.log(conf.batch_size - 1), "rows": rows,
              "target_ratio": args.target_ratio,
              "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "command": "python -m wespeaker_mfcon.analysis.paper_gradients "
                         + " ".join(argv)}
    result["rule_lambda"] = _rule(result)[1]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(render(result))
    return 0


if __name__ == "__main__":
    run_main(main)
