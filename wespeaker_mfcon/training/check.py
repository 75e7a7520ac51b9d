"""A dry run of stage 2: the config, its overrides and the training data tables checked the
way training reads them, without training (run.sh does it before torchrun, so that a mistake
is one line rather than a launcher traceback)."""

from wespeaker_mfcon.training.builders import build_loader
from wespeaker_mfcon.training.run import resolve_config


def check_training(config, train_data, overrides=None):
    """UserError for a bad config, override or data table; else a one-line summary: speakers,
    classes and batches per epoch (one process)."""
    conf, spk2id = resolve_config(config, overrides or {}, train_data)
    _, sampler = build_loader(conf, train_data, spk2id, rank=0, world_size=1)
    return (f"{config}: OK; {len(spk2id)} speakers, {conf.num_classes} classes, "
            f"{sampler.num_global} batches of {conf.batch_size} per epoch (one process)")
