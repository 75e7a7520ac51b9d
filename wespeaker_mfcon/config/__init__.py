"""The training config: a typed schema (schema.py), loaded and validated with its overrides
(loading.py). Everything downstream reads a TrainConfig, never a raw dict."""

from wespeaker_mfcon.config.loading import (aug_args_from, check_override_key, load_train_config,
                                            parse_overrides, read_yaml, save_config, validate)
from wespeaker_mfcon.config.schema import (AUG_TYPES, AugArgs, ConfigError, DatasetArgs,
                                           MFConArgs, TrainConfig)

__all__ = ["AUG_TYPES", "AugArgs", "ConfigError", "DatasetArgs", "MFConArgs", "TrainConfig",
           "aug_args_from", "check_override_key", "load_train_config", "parse_overrides",
           "read_yaml", "save_config", "validate"]
