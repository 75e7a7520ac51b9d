"""torchrun as the recipe runs it: torch.distributed.run itself (its options, its elastic agent
and c10d rendezvous, its restarts), with two changes that make elastic jobs work and fail well.

  * TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (unless set): torch shares the rendezvous TCPStore
    with the workers and keeps it across restarts without a per-round prefix, so after a
    restart a worker can read the address its dead peer published and fail to connect
    (pytorch/pytorch#135712). With the setting each round's rank 0 makes a fresh store.
  * A failed job ends with one line instead of torchrun's tracebacks and ChildFailedError
    banner: the UserError line of the rank that failed first (bin/*.py write it where the agent
    reads a worker's error: utils/entrypoint.py), or which rank died how.

Training resumes by itself after a restart: every worker starts from the newest checkpoint
(training/run.py), dealing batches and shards to the world size of the new round.
"""

import os
import signal

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous.api import RendezvousError

from wespeaker_mfcon.utils.errors import UserError


def run_torchrun(argv):
    """torchrun with argv (its own options, then the module or script and its arguments)."""
    os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    args = torchrun.parse_args(argv)
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        raise UserError(failure_line(e.failures, args.max_restarts)) from None
    except RendezvousError as e:
        raise UserError(f"torchrun rendezvous {args.rdzv_id} at {args.rdzv_endpoint} failed: "
                        f"{type(e).__name__}: {_first_line(e)}") from None


def failure_line(failures, max_restarts):
    """One line for torchrun's {global rank: ProcessFailure} of the last attempt: the user
    error of the earliest failing rank that wrote one, else how the first rank died."""
    after = f" (after {max_restarts} restart(s))" if max_restarts else ""
    reported = sorted((f.timestamp, rank) for rank, f in failures.items()
                      if f.error_file_data.get("user_error"))
    if reported:
        return failures[reported[0][1]].message
    rank = min(failures)
    failure = failures[rank]
    if failure.exitcode < 0:
        how = f"was killed by {_signal_name(-failure.exitcode)}"
    else:
        how = f"exited with status {failure.exitcode} (its traceback is above)"
    return f"training failed{after}: rank {rank} (pid {failure.pid}) {how}"


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
