"""Entry-point glue: bad input becomes one line on stderr and exit status 1."""

import argparse
import json
import logging
import os
import sys
import time

from wespeaker_mfcon.utils.errors import ReportedElsewhere, UserError


def setup_logging(level=logging.INFO):
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")


def run_main(main, argv=None):
    """Call main(argv); a UserError is printed as 'error: ...' and the process exits 1 (a
    ReportedElsewhere exits 1 silently). Under torchrun the line also goes where its agent
    reads a worker's error (training/elastic.py ends the job's output with it)."""
    setup_logging()
    try:
        return main(argv)
    except ReportedElsewhere:
        sys.exit(1)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        _tell_torchrun(str(e))
        sys.exit(1)


def _tell_torchrun(message):
    """Write message as torchrun's error file of this worker, if it is one: the file that
    torch.distributed.elastic reads into the failure of this rank."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"message": message, "timestamp": int(time.time()), "user_error": True},
                      f)
    except OSError:
        pass    # the line is on stderr already; torchrun then reports the exit status


def probability(value):
    """argparse type: a float strictly between 0 and 1 (a prior, a fraction)."""
    x = float(value)
    if not 0.0 < x < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return x


def at_least(low, why=""):
    """argparse type: an integer >= low; `why` is added to the message, e.g. "a std needs two
    scores"."""
    def check(value):
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
        if n < low:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"must be >= {low}{reason}, got {value}")
        return n
    return check
