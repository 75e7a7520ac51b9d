"""Stage 2 as a library, read in this order:

  model_with_heads.py  backbone + classification head + MFCon heads: what the optimizer trains
  builders.py          the parts, each built from the validated config (utils/config.py)
  loop.py              one optimizer step and one epoch (loader batch -> fbank -> loss -> step)
  checkpointing.py     the training state in a checkpoint, and resuming from the newest one
  distributed.py       torchrun process setup and the replica check
  run.py               TrainingRun: all of the above for one process, from config to checkpoints

`bin/train.py` only parses the command line and calls `run.train`.
"""
