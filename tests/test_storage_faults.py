"""Storage faults (utils/storage.py, through utils/file_utils.atomic_path and
utils/checkpoint.py): a full disk, a quota, a read-only or vanished directory while writing a
checkpoint, embeddings, scores or a shard ends with one line naming the path, what happened
and, when known, how much space the write needed; what was already written stays as it was;
training resumes once the fault is fixed. Real faults on a small tmpfs the test mounts (root
only, skipped otherwise); the rest of the errno class by injected errors."""

import errno
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import kaldiio
import numpy as np
import pytest
import torch

from conftest import python_env
from train_utils import make_feats_dir, tiny_config
from wespeaker_mfcon.training.run import train
from wespeaker_mfcon.dataset.shard_writer import write_shard
from wespeaker_mfcon.scoring.trials import write_scores
from wespeaker_mfcon.utils import storage
from wespeaker_mfcon.utils.checkpoint import load_checkpoint, save_checkpoint
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path

MIB = 1 << 20


def mount_tmpfs(path, size):
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    return path


@pytest.fixture
def small_fs(tmp_path):
    """A 512 KiB tmpfs."""
    mnt = mount_tmpfs(tmp_path / "mnt", "512k")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def write_checkpoint(path, nbytes):            # torch.save: RuntimeErrors without an errno
    with atomic_path(path) as tmp:
        torch.save({"w": torch.zeros(nbytes // 4)}, tmp)


def write_embeddings(path, nbytes):            # kaldiio
    with atomic_path(path) as tmp:
        kaldiio.save_ark(tmp, {f"utt{i}": np.ones(256, np.float32) for i in range(nbytes // 1024)})


def write_score_file(path, nbytes):            # Python text
    n = nbytes // 40
    write_scores(path, [f"enroll{i}" for i in range(n)], [f"test{i}" for i in range(n)],
                 np.linspace(-1, 1, n), np.arange(n) % 2)


def write_tar_shard(path, nbytes):             # tarfile, its audio read from another disk
    with tempfile.TemporaryDirectory() as source:
        wav = os.path.join(source, "a.wav")
        with open(wav, "wb") as f:
            f.write(b"\0" * nbytes)
        write_shard(path, [("spk1/v/00001", "spk1", wav)])


WRITERS = [write_checkpoint, write_embeddings, write_score_file, write_tar_shard]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_a_full_disk_is_one_line_and_the_previous_file_survives(small_fs, writer):
    path = str(small_fs / "out.bin")
    writer(path, 1024)                                   # fits
    before = open(path, "rb").read()
    with pytest.raises(UserError) as caught:
        writer(path, MIB)                                # the disk holds 512 KiB
    message = str(caught.value)
    assert message.startswith(f"{path}: not written: no space left on the device (")
    assert "\n" not in message and " free there)" in message
    assert open(path, "rb").read() == before
    assert os.listdir(small_fs) == ["out.bin"]           # no partial file left behind


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_a_read_only_file_system_is_one_line(small_fs, writer):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    path = str(small_fs / "sub" / "out.bin")
    with pytest.raises(UserError, match=f"^{path}: not written: read-only file system;"):
        writer(path, 1024)


def test_a_vanished_directory_is_one_line(tmp_path):
    out = tmp_path / "exp" / "models"
    out.mkdir(parents=True)
    with pytest.raises(UserError, match=f"^{out}/a.pt: not written: {out}: the directory "
                                        "vanished;"):
        with atomic_path(str(out / "a.pt")) as tmp:
            shutil.rmtree(tmp_path / "exp")              # e.g. a network mount went away
            open(tmp, "wb").close()


@pytest.mark.parametrize("code, reason", [(errno.EDQUOT, "disk quota exceeded"),
                                          (errno.ENOSPC, "no space left on the device"),
                                          (errno.EROFS, "read-only file system")])
def test_the_errno_class_is_named_whatever_the_writer(tmp_path, code, reason):
    path = tmp_path / "scores"
    path.write_text("old\n")
    with pytest.raises(UserError, match=f"^{path}: not written: {reason}"):
        with atomic_path(str(path)) as tmp:
            open(tmp, "w").close()
            raise OSError(code, os.strerror(code))
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["scores"]


def test_other_failures_keep_their_own_error(tmp_path):
    """A bug, or an unreadable input while the output dir is fine, is not a storage fault."""
    with pytest.raises(ValueError, match="a bug"):
        with atomic_path(str(tmp_path / "a")):
            raise ValueError("a bug")
    with pytest.raises(PermissionError):
        with atomic_path(str(tmp_path / "b")):
            raise PermissionError(errno.EACCES, "Permission denied", "/some/input.wav")


def test_a_checkpoint_that_cannot_fit_is_refused_before_writing_and_warned_of(small_fs,
                                                                             caplog):
    with caplog.at_level(logging.WARNING):
        save_checkpoint({"w": torch.zeros(75_000)}, str(small_fs / "model_1.pt"))   # 300 kB
    assert "less than a checkpoint like" in caplog.text and "model_1.pt needs" in caplog.text
    with pytest.raises(UserError) as caught:
        save_checkpoint({"w": torch.zeros(75_000)}, str(small_fs / "model_2.pt"))
    # the tensor bytes: 75,000 x 4 = 292.97 KiB; about 512 - 300 kB left
    assert str(caught.value).startswith(
        f"{small_fs}/model_2.pt: not written: not enough free space (the write needs about "
        "293.0 KiB; ")
    assert sorted(os.listdir(small_fs)) == ["model_1.pt"]


def test_size_text():
    assert [storage.size_text(n) for n in (1000, 1536, 3 * 2**30 + 2**29)] == [
        "1000 bytes", "1.5 KiB", "3.5 GiB"]


def test_training_into_a_disk_that_fills_ends_with_one_line_and_resumes_elsewhere(tmp_path):
    """Two processes under bin/torchrun into a 2.5 MB exp dir: model_1.pt (1.6 MB) fits,
    model_2.pt does not. The job ends with one line and no traceback; the experiment, copied
    to a roomier disk, resumes there."""
    data = make_feats_dir(str(tmp_path / "train"))
    conf = tiny_config(str(tmp_path / "c.yaml"))
    mnt = mount_tmpfs(tmp_path / "mnt", "2500k")
    try:
        cmd = [sys.executable, "-m", "wespeaker_mfcon.bin.torchrun", "--standalone",
               "--nproc_per_node=2", "-m", "wespeaker_mfcon.bin.train", "--config", conf,
               "--exp_dir", str(mnt / "exp"), "--train_data", data, "--num_epochs", "2"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=python_env(),
                              timeout=300)
        assert proc.returncode == 1
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {mnt}/exp/models/model_2.pt: not written: not enough "
                               "free space (the write needs about 1.4 MiB; ")
        assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
        assert sorted(os.listdir(mnt / "exp/models")) == ["model_1.pt"]
        assert load_checkpoint(str(mnt / "exp/models/model_1.pt"))["epoch"] == 1
        shutil.copytree(mnt / "exp", tmp_path / "moved")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
    train(conf, str(tmp_path / "moved"), data, overrides={"num_epochs": 2})
    log = (tmp_path / "moved" / "train.log").read_text()
    assert f"resumed from {tmp_path}/moved/models/model_1.pt" in log
    assert load_checkpoint(str(tmp_path / "moved/models/model_2.pt"))["epoch"] == 2
