"""Stage 2 as a library, read in this order:

  model_with_heads.py  backbone + classification head + MFCon heads: what the optimizer trains
  builders.py          the parts, each built from the validated config (utils/config.py)
  loop.py              one optimizer step and one epoch (loader batch -> fbank -> loss -> step)
  checkpointing.py     the training state in a checkpoint, and resuming from the newest one
  distributed.py       torchrun process setup, the replica check, rank-0 writes that stop all
  run.py               TrainingRun: all of the above for one process, from config to checkpoints
  elastic.py           torchrun as the recipe runs it (bin/torchrun.py): restarts that resume,
                       a failed job ending with one line

`bin/train.py` only parses the command line and calls `run.train`.
"""
