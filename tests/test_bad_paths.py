"""Stage 0 refuses, with one error naming the path, what a Kaldi table cannot hold.

Each case builds a small VoxCeleb-layout tree, adds one bad entry and checks the UserError
names the offending path and says why; nothing may be written.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import python_env, write_tree
from wespeaker_mfcon.dataset.aug_lists import write_aug_lists
from wespeaker_mfcon.dataset.voxceleb import prepare_sets, scan_tree, shown
from wespeaker_mfcon.utils.errors import UserError

GOOD = "id10000/vid0/00001.wav"
SPLIT_SCP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "tools", "split_scp.py")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "vox"
    write_tree(str(root), speakers=2, videos=1, utts=1, seconds=0.2)
    return root


def add_copy(root, rel):
    """Copy the good wav to root/rel (str or bytes); return the new path as os.listdir gives it."""
    dst = os.path.join(os.fsencode(root), os.fsencode(rel))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(os.path.join(root, GOOD), dst)
    return os.fsdecode(dst)


def refused(root, out, trials=(), match=""):
    with pytest.raises(UserError, match=match) as err:
        prepare_sets([(str(root), str(out), [str(t) for t in trials])])
    assert not os.path.exists(out), "a refused set must leave no data dir"
    message = str(err.value)
    assert "\n" not in message and "\r" not in message
    return message


@pytest.mark.parametrize("rel,offender,why", [
    ("id10000/vid copy/00001.wav", "id10000/vid copy", r"whitespace \(a space\)"),
    ("id10000/vid0/000 01.wav", "id10000/vid0/000 01.wav", r"whitespace \(a space\)"),
    ("id 10002/vid0/00001.wav", "id 10002", r"whitespace \(a space\)"),
    ("id10000/vid0/00\t002.wav", "id10000/vid0/00\t002.wav", r"whitespace \(a tab\)"),
    ("id10000/vid0/00\n002.wav", "id10000/vid0/00\n002.wav", r"whitespace \(a newline\)"),
    ("id10000/v\rid/00001.wav", "id10000/v\rid", r"whitespace \(a carriage return\)"),
    ("id10000/vid\u00a0x/00001.wav", "id10000/vid\u00a0x", "U\\+00A0 NO-BREAK SPACE"),
    ("id10000/vid0/\u3000.wav", "id10000/vid0/\u3000.wav", "U\\+3000 IDEOGRAPHIC SPACE"),
    ("id10000/vid\u2028x/00001.wav", "id10000/vid\u2028x", "U\\+2028 LINE SEPARATOR"),
    ("id10000/vid\x1fx/00001.wav", "id10000/vid\x1fx", r"whitespace \(U\+001F\)"),
    ("id10000/vid0/00\x07002.wav", "id10000/vid0/00\x07002.wav", "control character U\\+0007"),
    ("id10000/vid0/00\u200b002.wav", "id10000/vid0/00\u200b002.wav", "U\\+200B ZERO WIDTH"),
])
def test_name_a_table_cannot_hold_is_refused(tree, tmp_path, rel, offender, why):
    add_copy(tree, rel)
    message = refused(tree, tmp_path / "data" / "train", match=why)
    assert shown(os.path.join(str(tree), offender)) in message
    assert "Kaldi tables" in message and "rename it" in message


def test_undecodable_file_name_is_refused(tree, tmp_path):
    try:
        bad = add_copy(tree, b"id10000/vid0/00\xff002.wav")
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    message = refused(tree, tmp_path / "out", match="not valid UTF-8")
    assert repr(bad) in message


def test_whitespace_in_the_root_or_data_dir_is_refused(tree, tmp_path):
    spaced = tmp_path / "my corpora" / "vox"
    shutil.copytree(tree, spaced)
    message = refused(spaced, tmp_path / "out", match="move or link the tree")
    assert str(spaced) in message
    message = refused(tree, tmp_path / "my data" / "train", match="move or link the data dir")
    assert str(tmp_path / "my data" / "train") in message


@pytest.mark.parametrize("make,offender,match", [
    (lambda r: add_copy(r, "id10000/vid0/.wav"), "id10000/vid0/.wav", "only an extension"),
    (lambda r: add_copy(r, "id10000/vid0/00001.flac"), "id10000/vid0/00001",
     "duplicate utterance id 'id10000/vid0/00001'"),
    (lambda r: add_copy(r, "id10000/vid0/00001.WAV"), "id10000/vid0/00001",
     "duplicate utterance id 'id10000/vid0/00001'"),
    (lambda r: add_copy(r, "id10000/VID0/00001.wav"), "id10000/VID0/00001.wav",
     "only in letter case"),
    (lambda r: os.makedirs(os.path.join(r, "id10009")), "id10009", "speaker directory holds no"),
    (lambda r: os.makedirs(os.path.join(r, "id10000", "vid9")), "id10000/vid9",
     "video directory holds no"),
    (lambda r: add_copy(r, "00009.wav"), "00009.wav", "wrong depth.*found 0 directory"),
    (lambda r: add_copy(r, "id10000/00009.wav"), "id10000/00009.wav", "wrong depth.*found 1"),
    (lambda r: add_copy(r, "id10000/vid0/sub/00009.wav"), "id10000/vid0/sub/00009.wav",
     "wrong depth.*found 3"),
    (lambda r: os.symlink(os.path.join(r, "gone.wav"), os.path.join(r, "id10000/vid0/9.wav")),
     "id10000/vid0/9.wav", "broken symbolic link"),
    (lambda r: os.mkfifo(os.path.join(r, "id10000/vid0/9.wav")), "id10000/vid0/9.wav",
     "not a regular file"),
])
def test_tree_layout_problems_name_the_path(tree, tmp_path, make, offender, match):
    make(str(tree))
    message = refused(tree, tmp_path / "out", match=match)
    assert os.path.join(str(tree), offender) in message


def test_symlinked_dirs_and_foreign_files_are_fine(tree, tmp_path):
    os.symlink(tree / "id10001", tree / "id10002")
    (tree / "README.txt").write_text("not audio")
    (tree / "id10000" / "vid0" / "notes with spaces.txt").write_text("ignored")
    assert [u for u, _ in scan_tree(str(tree))] == [
        "id10000/vid0/00001", "id10001/vid0/00001", "id10002/vid0/00001"]


@pytest.mark.parametrize("lines,line,match", [
    ([f"1 {GOOD} id10001/vid 0/00001.wav"], 2, "expected 3 fields.*got 4.*whitespace"),
    ([f"1 {GOOD}"], 2, "expected 3 fields.*got 2"),
    ([f"target {GOOD} {GOOD}"], 2, "label must be 0 or 1, got 'target'"),
    ([f"0 {GOOD} id10009/vid0/00001.wav"], 2, "'id10009/vid0/00001' is not in"),
    ([f"0 {GOOD} id10001/vid0/0\x070001.wav"], 2, "control character U\\+0007"),
    ([f"0 {GOOD} id10001/vid0/00001.wav", "0 \udcff.wav x.wav"], 3, "not valid UTF-8"),
])
def test_trial_list_errors_name_file_and_line(tree, tmp_path, lines, line, match):
    trials = tmp_path / "trials.txt"
    text = "\n".join([f"1 {GOOD} id10001/vid0/00001.wav"] + lines) + "\n"
    trials.write_bytes(text.encode("utf-8", "surrogateescape"))
    message = refused(tree, tmp_path / "test", trials=[trials], match=match)
    assert message.startswith(f"{trials}:{line}: ")


def test_trial_lists_need_distinct_names_without_whitespace(tree, tmp_path):
    good = f"1 {GOOD} id10001/vid0/00001.wav\n"
    (tmp_path / "a").mkdir()
    for path in (tmp_path / "trials.txt", tmp_path / "a" / "trials.txt", tmp_path / "my t.txt"):
        path.write_text(good)
    message = refused(tree, tmp_path / "test", match="trials/trials.kaldi",
                      trials=[tmp_path / "trials.txt", tmp_path / "a" / "trials.txt"])
    assert str(tmp_path / "a" / "trials.txt") in message
    message = refused(tree, tmp_path / "test", trials=[tmp_path / "my t.txt"],
                      match="whitespace")
    assert str(tmp_path / "my t.txt") in message
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + good.replace("\n", "\r\n").encode())
    prepare_sets([(str(tree), str(tmp_path / "test"), [str(tmp_path / "bom.txt")])])
    assert open(tmp_path / "test" / "trials" / "bom.kaldi").read() == \
        "id10000/vid0/00001 id10001/vid0/00001 target\n"


def test_a_bad_test_tree_leaves_no_train_dir(tree, tmp_path):
    bad = tmp_path / "test_tree"
    shutil.copytree(tree, bad)
    add_copy(bad, "id10000/vid copy/00001.wav")
    data = tmp_path / "data"
    with pytest.raises(UserError, match="vid copy"):
        prepare_sets([(str(tree), str(data / "train"), ()), (str(bad), str(data / "test"), ())])
    assert not data.exists() or os.listdir(data) == []


def test_cli_space_in_a_name_is_one_error_line_and_writes_nothing(tree, tmp_path):
    bad = add_copy(tree, "id10001/vid copy/00002.wav")
    trials = tmp_path / "trials.txt"
    trials.write_text(f"1 {GOOD} id10001/vid0/00001.wav\n")
    proc = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.bin.prepare_data",
                           "--train_root", str(tree), "--test_root", str(tree),
                           "--trials", str(trials), "--data", str(tmp_path / "data")],
                          capture_output=True, text=True, env=python_env())
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0] == (f"error: {os.path.dirname(bad)}: name holds whitespace (a space), "
                        "which Kaldi tables cannot hold; rename it")
    assert not (tmp_path / "data").exists()


def test_aug_lists_refuse_names_tables_cannot_hold(tree, tmp_path):
    wav = str(tree / GOOD)
    musan = tmp_path / "musan"
    (musan / "noise" / "free sound").mkdir(parents=True)
    shutil.copy(wav, musan / "noise" / "free sound" / "n1.wav")
    out = tmp_path / "lists"
    with pytest.raises(UserError, match="whitespace") as err:
        write_aug_lists(str(out), musan_root=str(musan))
    assert str(musan / "noise" / "free sound" / "n1.wav") in str(err.value)

    rirs = tmp_path / "RIR root" / "RIRS_NOISES" / "simulated_rirs" / "small"
    rirs.mkdir(parents=True)
    shutil.copy(wav, rirs / "r1.wav")
    with pytest.raises(UserError, match="move or link the corpus") as err:
        write_aug_lists(str(out), rir_root=str(tmp_path / "RIR root"))
    assert str(tmp_path / "RIR root") in str(err.value)

    rir_root = tmp_path / "rirs"
    shutil.copytree(tmp_path / "RIR root", rir_root)
    small = rir_root / "RIRS_NOISES" / "simulated_rirs" / "small"
    shutil.copy(wav, small / "r1.WAV")
    with pytest.raises(UserError, match="RIR key 'simulated_rirs-small-r1'"):
        write_aug_lists(str(out), rir_root=str(rir_root))
    os.remove(small / "r1.WAV")
    os.symlink(tmp_path / "gone.wav", small / "r2.wav")
    with pytest.raises(UserError, match="broken symbolic link") as err:
        write_aug_lists(str(out), rir_root=str(rir_root))
    assert str(small / "r2.wav") in str(err.value)
    assert not out.exists()


def test_split_scp_keeps_values_verbatim_and_names_a_non_utf8_line(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_bytes(b"a /x  y.wav\r\nb /z\tw.wav\n\nc /q.wav\n")
    parts = [tmp_path / "p1", tmp_path / "p2"]
    subprocess.run([sys.executable, SPLIT_SCP, str(scp), *map(str, parts)], check=True)
    assert [p.read_text() for p in parts] == ["a /x  y.wav\nb /z\tw.wav\n", "c /q.wav\n"]
    scp.write_bytes(b"a /x.wav\nb /\xff.wav\n")
    proc = subprocess.run([sys.executable, SPLIT_SCP, str(scp), str(parts[0])],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr == f"error: {scp}:2: not UTF-8 text " \
                                                   "(invalid start byte)\n"
