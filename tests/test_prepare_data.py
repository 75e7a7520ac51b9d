import shutil
import subprocess
import sys

import pytest

from conftest import python_env, write_tree
from wespeaker_mfcon.bin.prepare_data import main as prepare_main
from wespeaker_mfcon.dataset.voxceleb import prepare_sets, scan_tree
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp, read_table


def test_prepares_train_and_test_dirs_with_kaldi_trials(vox_tree, tmp_path):
    root, trials, rels, n = vox_tree
    data = tmp_path / "data"
    prepare_main(["--train_root", root, "--test_root", root, "--trials", trials,
                  "--data", str(data)])
    wav = read_scp(data / "test" / "wav.scp")
    assert sorted(wav) == sorted(r[:-4] for r in rels)
    assert read_scp(data / "train" / "utt2spk")["id10001/vid1/00002"] == "id10001"
    assert len(dict(read_table(data / "train" / "spk2utt"))["id10002"]) == 4
    assert float(read_scp(data / "test" / "utt2dur")["id10000/vid0/00001"]) == pytest.approx(1.0)
    kaldi = [l.split() for l in open(data / "test" / "trials" / "trials.kaldi")]
    assert len(kaldi) == n
    first = open(trials).readline().split()
    assert kaldi[0] == [first[1][:-4], first[2][:-4],
                        "target" if first[0] == "1" else "nontarget"]


def test_empty_tree_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no audio files"):
        scan_tree(str(tmp_path / "empty"))


@pytest.mark.parametrize("content,match", [(b"", "unreadable|empty"),
                                           (b"RIFF garbage not audio", "unreadable")])
def test_bad_audio_names_the_file_and_leaves_nothing(tmp_path, content, match):
    root = tmp_path / "vox"
    write_tree(str(root), speakers=1, videos=1, utts=1)
    bad = root / "id10000" / "vid0" / "00009.wav"
    bad.write_bytes(content)
    out = tmp_path / "data" / "train"
    with pytest.raises(UserError, match=match) as err:
        prepare_sets([(str(root), str(out), ())])
    assert "00009.wav" in str(err.value)
    assert not out.exists() and not (tmp_path / "data" / "train.tmp").exists()


def test_truncated_wav_is_detected(tmp_path):
    root = tmp_path / "vox"
    write_tree(str(root), speakers=1, videos=1, utts=1)
    path = root / "id10000" / "vid0" / "00001.wav"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="truncated"):
        prepare_sets([(str(root), str(tmp_path / "out"), ())])


def test_trial_naming_a_missing_file_fails_with_its_line(vox_tree, tmp_path):
    root, trials, _, _ = vox_tree
    with open(trials, "a") as f:
        f.write("1 id10000/vid0/00001.wav id19999/nope/00001.wav\n")
    with pytest.raises(UserError, match=r"id19999/nope/00001"):
        prepare_sets([(root, str(tmp_path / "test"), [trials])])
    assert not (tmp_path / "test").exists()


def test_rerun_replaces_a_previous_dir_completely(vox_tree, tmp_path):
    root, trials, _, _ = vox_tree
    out = tmp_path / "test"
    out.mkdir()
    (out / "stale").write_text("x")
    prepare_sets([(root, str(out), [trials])])
    assert not (out / "stale").exists() and (out / "wav.scp").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg is installed")
def test_m4a_without_ffmpeg_says_so(tmp_path):
    root = tmp_path / "vox2"
    (root / "id00001" / "v").mkdir(parents=True)
    (root / "id00001" / "v" / "00001.m4a").write_bytes(b"\0" * 100)
    with pytest.raises(UserError, match="ffmpeg is not installed"):
        prepare_sets([(str(root), str(tmp_path / "train"), ())])


def test_duplicate_ids_in_a_table_name_the_line(tmp_path):
    path = tmp_path / "wav.scp"
    path.write_text("a /x.wav\nb /y.wav\na /z.wav\n")
    with pytest.raises(UserError, match=r"wav.scp:3: duplicate id 'a'"):
        read_table(str(path))


def test_cli_prints_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.bin.prepare_data",
                           "--train_root", str(tmp_path / "empty"), "--test_root", "x",
                           "--trials", "t", "--data", str(tmp_path / "d")],
                          capture_output=True, text=True, env=python_env())
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no audio files" in lines[0]
