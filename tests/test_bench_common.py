"""benchmarks/common.py: no speed figures from a busy machine unless --force, and then marked."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from wespeaker_mfcon.utils.errors import UserError  # noqa: E402

CPUS = os.cpu_count() or 1


def test_a_busy_machine_is_refused_without_force():
    with pytest.raises(UserError, match=rf"load average {CPUS + 1.5:.2f} > {CPUS} CPUs"):
        common.require_idle(force=False, load=CPUS + 1.5)


def test_with_force_every_table_says_it_was_measured_under_load():
    banner = common.require_idle(force=True, load=CPUS + 1.5)
    table = common.markdown_table(["a", "b"], [[1, 2]]).splitlines()
    assert banner.startswith("**MEASURED UNDER LOAD**") and table[0] == banner
    assert table[1:] == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_an_idle_machine_gives_plain_tables():
    assert common.require_idle(force=False, load=CPUS - 0.5) == ""
    assert common.markdown_table(["a"], [[1]]).splitlines()[0] == "| a |"
