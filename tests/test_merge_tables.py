"""tools/merge_tables.py: per-job table parts -> one table, sorted, checked, atomic."""

import os
import subprocess
import sys

from conftest import ROOT, python_env

TOOL = os.path.join(ROOT, "tools", "merge_tables.py")


def merge(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True,
                          text=True, env=python_env())


def test_parts_are_merged_in_key_byte_order(tmp_path):
    (tmp_path / "a").write_text("id2/v/1 /x/a.ark:9\n\nid10/v/1 /x/a.ark:20\n")
    (tmp_path / "b").write_text("id1/v/2 /x/b.ark:5\nZ/v/1 path with  two spaces")
    proc = merge("--sort", "--expect", 4, tmp_path / "out", tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out").read_text() == ("Z/v/1 path with  two spaces\nid1/v/2 /x/b.ark:5\n"
                                              "id10/v/1 /x/a.ark:20\nid2/v/1 /x/a.ark:9\n")
    unsorted = merge(tmp_path / "out2", tmp_path / "b", tmp_path / "a")
    assert unsorted.returncode == 0
    assert (tmp_path / "out2").read_text().splitlines()[0] == "id1/v/2 /x/b.ark:5"


def test_duplicates_and_missing_entries_write_nothing(tmp_path):
    (tmp_path / "a").write_text("u1 1\nu2 2\n")
    (tmp_path / "b").write_text("u3 3\nu1 4\n")
    dup = merge(tmp_path / "out", tmp_path / "a", tmp_path / "b")
    assert dup.returncode == 1
    assert dup.stderr.strip() == (f"error: {tmp_path / 'b'}:2: duplicate key 'u1' "
                                  f"(also {tmp_path / 'a'}:1)")
    short = merge("--expect", 5, tmp_path / "out", tmp_path / "a")
    assert short.returncode == 1 and "hold 2 entries, expected 5" in short.stderr
    missing = merge(tmp_path / "out", tmp_path / "a", tmp_path / "nope")
    assert missing.returncode == 1 and "nope: no such file" in missing.stderr
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]          # no output, no temporaries
