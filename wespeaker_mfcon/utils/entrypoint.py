"""Entry-point glue: bad input becomes one line on stderr and exit status 1."""

import argparse
import logging
import sys

from wespeaker_mfcon.utils.errors import UserError


def setup_logging(level=logging.INFO):
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")


def run_main(main, argv=None):
    """Call main(argv); a UserError is printed as 'error: ...' and the process exits 1."""
    setup_logging()
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


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
