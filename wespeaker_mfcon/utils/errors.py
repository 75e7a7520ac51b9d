"""The one exception type for mistakes a user can fix.

Raise UserError near the input, naming the file (and line), the config key or the option and
what is wrong with it. `utils.entrypoint.run_main` prints it as one `error: ...` line and exits 1;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad user input: a file, a line, a config value, an option, a missing device."""


class ReportedElsewhere(UserError):
    """A UserError that another process of the same job reports (rank 0 of a torchrun job
    reports a failed checkpoint save for every rank): run_main exits 1 without repeating it."""
