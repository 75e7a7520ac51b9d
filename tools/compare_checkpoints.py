#!/usr/bin/env python3
"""Are two training checkpoints bit-identical? (determinism and refactoring checks)

    python tools/compare_checkpoints.py exp/A/models/model_12.pt exp/B/models/model_12.pt

Compares with torch.equal every tensor of the model, the classification head, the MFCon heads
and the optimizer state, and the epoch/step; prints the count, or the first difference and
exits 1.
"""

import argparse

import torch

from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError


def tensors(state):
    """{name: tensor} of every tensor in a checkpoint, the optimizer state flattened."""
    out = {}
    for part in ("model", "projection", "mfcon"):
        out.update({f"{part}.{k}": v for k, v in state.get(part, {}).items()})
    for param, slots in state.get("optimizer", {}).get("state", {}).items():
        out.update({f"optimizer.{param}.{k}": v for k, v in slots.items()
                    if torch.is_tensor(v)})
    return out


def first_difference(a, b):
    if a.keys() != b.keys():
        return f"different tensors: {sorted(a.keys() ^ b.keys())[:3]}"
    for name in a:
        if not torch.equal(a[name], b[name]):
            return f"{name} differs (max |diff| {(a[name] - b[name]).abs().max():.3g})"
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("first")
    p.add_argument("second")
    args = p.parse_args(argv)
    a, b = load_checkpoint(args.first), load_checkpoint(args.second)
    ta, tb = tensors(a), tensors(b)
    diff = first_difference(ta, tb)
    if diff is None and (a.get("epoch"), a.get("step")) != (b.get("epoch"), b.get("step")):
        diff = f"epoch/step {a.get('epoch')}/{a.get('step')} vs {b.get('epoch')}/{b.get('step')}"
    if diff:
        raise UserError(f"{args.second}: {diff}")
    print(f"bit-identical: all {len(ta)} tensors (model, heads, optimizer state); "
          f"epoch {a.get('epoch')}, step {a.get('step')}")


if __name__ == "__main__":
    run_main(main)
