import subprocess
import sys

import pytest

from conftest import python_env, write_tree
from wespeaker_mfcon.dataset.voxceleb import prepare_sets, scan_tree
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp, read_table


def test_prepares_train_and_test_dirs_with_kaldi_trials(vox_tree, tmp_path):
    root, trials, rels, n = vox_tree
    data = tmp_path / "data"
    prepare_sets([(root, str(data / "train"), ()), (root, str(data / "test"), [trials])])
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


def test_m4a_without_ffmpeg_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no_bin"))  # no ffmpeg on PATH ...
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # ... nor from PyPI
    root = tmp_path / "vox2"
    (root / "id00001" / "v").mkdir(parents=True)
    (root / "id00001" / "v" / "00001.m4a").write_bytes(b"\0" * 100)
    with pytest.raises(UserError, match="ffmpeg is not installed") as err:
        prepare_sets([(str(root), str(tmp_path / "train"), ())])
    assert str(err.value).startswith(str(root / "id00001" / "v" / "00001.m4a"))
    assert "imageio-ffmpeg" in str(err.value) and not (tmp_path / "train").exists()


def _tree_with_bad_file(tmp_path):
    root = tmp_path / "vox"
    write_tree(str(root), speakers=2, videos=1, utts=2, seconds=0.3)
    bad = root / "id10001" / "vid0" / "00002.wav"
    bad.write_bytes(b"RIFF garbage not audio")
    return root, bad


def test_bad_audio_error_reads_everything_then_stops_with_the_list(tmp_path):
    root, bad = _tree_with_bad_file(tmp_path)
    (root / "id10000" / "vid0" / "00003.wav").write_bytes(b"")
    out = tmp_path / "data" / "train"
    with pytest.raises(UserError) as err:
        prepare_sets([(str(root), str(out), ())], nj=2)
    message = str(err.value)
    listed = tmp_path / "data" / "train.bad_audio.txt"
    assert message.startswith(f"{root / 'id10000' / 'vid0' / '00003.wav'}: ")
    assert "bad audio files: 2 of 5" in message and str(listed) in message
    assert "\n" not in message and not out.exists()
    rows = read_table(str(listed), min_fields=3)
    assert [(u, f[0]) for u, f in rows] == [
        ("id10000/vid0/00003", str(root / "id10000" / "vid0" / "00003.wav")),
        ("id10001/vid0/00002", str(bad))]
    assert "unreadable" in " ".join(rows[1][1][1:])
    bad.unlink()
    (root / "id10000" / "vid0" / "00003.wav").unlink()
    prepare_sets([(str(root), str(out), ())])  # fixed: the stale list goes
    assert not listed.exists() and len(read_scp(out / "wav.scp")) == 3


def test_bad_audio_skip_leaves_it_out_and_lists_it(tmp_path, caplog):
    root, bad = _tree_with_bad_file(tmp_path)
    out = tmp_path / "data" / "train"
    prepare_sets([(str(root), str(out), ())], nj=2, on_bad_audio="skip")
    assert sorted(read_scp(out / "wav.scp")) == [
        "id10000/vid0/00001", "id10000/vid0/00002", "id10001/vid0/00001"]
    assert sorted(read_scp(out / "utt2dur")) == sorted(read_scp(out / "wav.scp"))
    assert dict(read_table(out / "spk2utt"))["id10001"] == ["id10001/vid0/00001"]
    rows = read_table(str(out / "bad_audio.txt"), min_fields=3)
    assert [(u, f[0]) for u, f in rows] == [("id10001/vid0/00002", str(bad))]
    assert "skipped 1 of 4" in caplog.text and str(bad) in caplog.text


def test_skipped_file_named_by_a_trial_is_an_error(tmp_path):
    root, bad = _tree_with_bad_file(tmp_path)
    trials = tmp_path / "trials.txt"
    trials.write_text("1 id10001/vid0/00001.wav id10001/vid0/00002.wav\n")
    with pytest.raises(UserError, match="cannot be skipped") as err:
        prepare_sets([(str(root), str(tmp_path / "test"), [str(trials)])], on_bad_audio="skip")
    assert str(err.value).startswith(f"{bad}: ") and not (tmp_path / "test").exists()


def test_output_does_not_depend_on_nj(vox_tree, tmp_path):
    root, trials, _, _ = vox_tree
    texts = []
    for nj in (1, 3):
        out = tmp_path / f"nj{nj}"
        prepare_sets([(root, str(out), [trials])], nj=nj)
        texts.append({p.name: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert texts[0] == texts[1] and len(texts[0]) == 5


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
