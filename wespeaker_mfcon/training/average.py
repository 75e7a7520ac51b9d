"""Checkpoint averaging, the end of stage 2: the model weights of the last N epoch
checkpoints (exp/NAME/models/model_<epoch>.pt) into one file (avg_model.pt)."""

import logging

from wespeaker_mfcon.utils.checkpoint import (average_state_dicts, epoch_checkpoints,
                                              save_checkpoint)
from wespeaker_mfcon.utils.errors import UserError


def average_last(models_dir, num, dst):
    """Write {"model": the mean state dict of the last `num` epochs, "epochs": [...]} to dst
    (atomically); returns the epochs averaged."""
    found = epoch_checkpoints(models_dir)
    if not found:
        raise UserError(f"{models_dir}: no model_<epoch>.pt checkpoints")
    epochs = [e for e, _ in found[-num:]]
    logging.info("averaging epochs %s", epochs)
    state = average_state_dicts([p for _, p in found[-num:]])
    save_checkpoint({"model": state, "epochs": epochs}, dst)
    return epochs
