"""Fine-tuning: a fresh run that starts from the weights of another run (config key init_from).

  init_from CKPT: a training checkpoint {"model", "projection", "mfcon", ...} (models/model_N.pt)
                  or an averaged one {"model", "epochs"} (bin/average_model.py, avg_model.pt)
    backbone               always loaded; its keys and shapes must be the config's exactly
    MFCon heads            init_mfcon_heads (default on): loaded when the checkpoint and the
                           config both have them, else they start new
    classification head    init_projection (default off): new speakers get a new head of
                           conf.num_classes rows; large-margin fine-tuning on the same speakers
                           keeps the trained one (its shape must match)

An averaged checkpoint holds no heads. Its "epochs" name the model_<N>.pt it averaged; when they
lie beside it, the heads are averaged from them (WeSpeaker's avg_model.pt holds the head, which
is part of its model). When the source exp dir's config.yaml and spk2id lie beside models/, a
mismatch names the config keys that differ, and init_projection checks the speakers are the same.

The random initialization runs first, exactly as in a run from scratch, and is then
overwritten: the RNG stream after it (dropout, SpecAugment) does not depend on init_from.
The warm-up freeze (freeze_backbone_steps) is in loop.py: the backbone's gradients are dropped
before the optimizer step while global_step < N, so resuming is exact by construction.
"""

import os

from wespeaker_mfcon.training.model_with_heads import unwrap
from wespeaker_mfcon.utils.checkpoint import load_checkpoint, mean_state_dicts
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp


def initialize(net, conf, spk2id):
    """Load conf.init_from into a freshly built ModelWithHeads; returns a one-line summary."""
    path = conf.init_from
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise UserError(f"{path}: not a checkpoint of this toolkit (no 'model' state dict)")
    source = Source(path)
    inner = unwrap(net)
    load_part(inner.model, state["model"], "model", source=source, conf=conf)
    done = ["backbone"]
    want_mfcon = conf.init_mfcon_heads and inner.mfcon is not None
    heads = source.heads(state) if conf.init_projection or want_mfcon else {}
    if conf.init_projection:
        if "projection" not in heads:
            raise UserError(f"{path}: init_projection: the checkpoint has no classification "
                            "head (an averaged model whose model_<N>.pt are not beside it); "
                            "give a training checkpoint (models/model_<N>.pt)")
        source.check_speakers(spk2id)
        found = projection_rows(heads["projection"], inner.projection, conf, source)
        load_part(inner.projection, found, "projection", source=source, conf=conf)
        done.append("classification head")
    if want_mfcon and heads.get("mfcon"):
        load_part(inner.mfcon, heads["mfcon"], "mfcon", source=source, conf=conf)
        done.append("MFCon heads")
    new = [name for name in ("classification head", "MFCon heads") if name not in done
           and (inner.mfcon is not None or name != "MFCon heads")]
    return (f"initialized from {path}: {', '.join(done)}{source.heads_note}"
            + (f"; new: {', '.join(new)}" if new else ""))


class Source:
    """The checkpoint's surroundings: its exp dir's config.yaml, spk2id and epoch checkpoints."""

    def __init__(self, path):
        self.path = path
        self.models_dir = os.path.dirname(os.path.abspath(path))
        self.exp_dir = os.path.dirname(self.models_dir)
        self.config_path = os.path.join(self.exp_dir, "config.yaml")
        self.conf = None
        if os.path.isfile(self.config_path):
            try:
                self.conf = load_train_config(self.config_path)
            except UserError:
                self.conf = None
        self.heads_note = ""

    def heads(self, state):
        """{"projection": sd, "mfcon": sd} of the checkpoint, or averaged from its epochs."""
        if "projection" in state:
            return {k: state[k] for k in ("projection", "mfcon") if k in state}
        paths = [os.path.join(self.models_dir, f"model_{e}.pt") for e in state.get("epochs", [])]
        if not paths or not all(os.path.isfile(p) for p in paths):
            return {}
        parts = [load_checkpoint(p) for p in paths]
        self.heads_note = f" (heads averaged from epochs {list(state['epochs'])})"
        return {k: mean_state_dicts(p[k] for p in parts) for k in ("projection", "mfcon")
                if all(p.get(k) for p in parts)}

    def check_speakers(self, spk2id):
        """init_projection keeps rows per speaker: the speakers must be the same ones."""
        table = os.path.join(self.exp_dir, "spk2id")
        if not os.path.isfile(table):
            return
        theirs = {spk: int(i) for spk, i in read_scp(table).items()}
        if theirs != spk2id:
            raise UserError(f"{self.path}: init_projection: the speakers of {table} differ from "
                            f"this training data's ({len(theirs)} vs {len(spk2id)}); "
                            "new speakers need a new head: init_projection: false")


def projection_rows(found, projection, conf, source):
    """The checkpoint's head rows for this run. A source trained with speed perturbation has
    k x S rows (labels spk + speed_index * S); without it here, the first S are the speakers."""
    here = next(iter(projection.state_dict().values())).shape[0]
    there = next(iter(found.values())).shape[0]
    speeds = len(source.conf.speeds) if source.conf is not None else 1
    if there != here and len(conf.speeds) == 1 and speeds > 1 and there == speeds * here:
        return {k: v[:here] if v.dim() and v.shape[0] == there else v for k, v in found.items()}
    if there != here:
        raise UserError(f"{source.path}: init_projection: its classification head has {there} "
                        f"classes, this run {here} (num_classes); new speakers need a new head: "
                        "init_projection: false")
    return found


def load_part(module, found, what, source, conf):
    """load_state_dict after checking keys and shapes; a mismatch is one line naming both."""
    expected = module.state_dict()
    mismatch = first_mismatch(expected, found)
    if mismatch is not None:
        key, here, there = mismatch
        raise UserError(f"{source.path}: its {what} does not fit this config's: {what}.{key} "
                        f"is {_shape(there)} in the checkpoint, {_shape(here)} here"
                        f"{config_hint(conf, source, what, here, there)}")
    module.load_state_dict(found)


def first_mismatch(expected, found):
    """(key, shape here, shape in found) of the first differing entry (None = missing)."""
    for key, tensor in expected.items():
        if key not in found or found[key].shape != tensor.shape:
            return key, tuple(tensor.shape), tuple(found[key].shape) if key in found else None
    for key, tensor in found.items():
        if key not in expected:
            return key, None, tuple(tensor.shape)
    return None


def _shape(shape):
    return "missing" if shape is None else f"({', '.join(map(str, shape))})"


def config_hint(conf, source, what, here, there):
    """'; differs from SRC/config.yaml: model_args.output_size (96 there, 32 here)', or a
    guess from the shapes when the source config is not beside the checkpoint."""
    if source.conf is not None:
        keys = [("model", None)] + [("model_args", k) for k in vars(conf.model_args)]
        if what == "mfcon":
            keys += [("mfcon_args", "embed_dim"), ("mfcon_args", "blocks")]
        if what == "projection":
            keys += [("projection_args", "project_type")]
        diffs = [f"{_name(s, k)} ({_value(source.conf, s, k)} there, {_value(conf, s, k)} here)"
                 for s, k in keys if _value(source.conf, s, k) != _value(conf, s, k)]
        if diffs:
            return f"; differs from {source.config_path}: {', '.join(diffs)}"
    if here is None or there is None:
        return f"; a different model or number of blocks? ({conf.model} here)"
    dims = set(here) - set(there)
    keys = [f"model_args.{k}" for k, v in vars(conf.model_args).items()
            if type(v) is int and v in dims]
    return f"; probably {' or '.join(keys)} differs" if keys else ""


def _name(section, key):
    return section if key is None else f"{section}.{key}"


def _value(conf, section, key):
    node = getattr(conf, section)
    if key is None:
        return node
    return node.get(key) if isinstance(node, dict) else getattr(node, key, None)

