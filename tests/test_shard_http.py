"""Shards over the network (dataset/remote.py, dataset/shards.read_shard): shard.list lines that
are http:// URLs or pipe: commands, served here by a threaded HTTP server on localhost that the
tests stop and start. The same samples as the local files; a connection cut mid-shard or a
server gone for a few seconds is retried and training ends identical to training from local
files; a server gone for good ends the run with one line naming the URL, and the same command
resumes once the server is back."""

import functools
import logging
import os
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import yaml

from test_shards import shard_data  # noqa: F401  (4 speakers x 4 utterances, 4 shards of 4)
from train_utils import TINY_MODEL, tiny_config
from wespeaker_mfcon.training.run import train as run_training
from wespeaker_mfcon.dataset.shards import read_shard, read_shard_list
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.utils.errors import UserError


class ShardServer:
    """A threaded HTTP server on localhost serving a directory. stop() and start() it on the same
    port; outage(after, seconds) stops it once `after` requests were served (for `seconds`,
    or for good with None); cut holds paths whose next response stops half-way."""

    def __init__(self, root):
        self.root, self.port, self.requests, self.cut = root, 0, [], set()
        self.server = self.thread = self.outage_at = None
        self.start()

    def start(self):
        handler = functools.partial(_Handler, directory=self.root)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.owner, self.port = self, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.server = None

    def outage(self, after, seconds):
        self.outage_at = (after, seconds)

    def served(self, path):
        """Called by the handler after each response."""
        self.requests.append(path)
        if self.outage_at and len(self.requests) == self.outage_at[0]:
            threading.Thread(target=self._down, args=(self.outage_at[1],), daemon=True).start()

    def _down(self, seconds):
        self.stop()
        if seconds is not None:
            time.sleep(seconds)
            self.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        owner = self.server.owner
        if self.path in owner.cut:            # Content-Length promises more: curl exits 18
            owner.cut.discard(self.path)
            data = source.read()
            outputfile.write(data[:len(data) // 2])
        else:
            super().copyfile(source, outputfile)
        owner.served(self.path)


@pytest.fixture
def server(shard_data):
    server = ShardServer(str(shard_data / "shards"))
    yield server
    server.stop()


def http_data(shard_data, server, tmp_path):
    """A copy of the data dir whose shard.list names the shards by their URLs."""
    data = tmp_path / "http_train"
    data.mkdir()
    for name in ("utt2spk", "wav.scp"):
        (data / name).write_text((shard_data / name).read_text())
    names = [os.path.basename(p) for p in read_shard_list(str(shard_data))]
    (data / "shard.list").write_text("".join(server.url(n) + "\n" for n in names))
    return str(data)


def shard_config(path, **shard_args):
    conf = tiny_config(str(path), data_type="shard", save_interval_steps=1,
                       model_args=dict(TINY_MODEL, input_dim=80))
    c = yaml.safe_load(open(conf))
    c["dataset_args"].update(spk_per_batch=2, utts_per_spk=2,
                             shard_args={"shuffle_size": 4, "buffer_size": 8, **shard_args})
    yaml.safe_dump(c, open(conf, "w"))
    return conf


def train(conf, exp, data):
    run_training(conf, str(exp), data)
    return load_checkpoint(str(exp / "models/model_2.pt"))


def assert_same_model(a, b):
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["step"] == b["step"] == 8


@pytest.fixture(scope="module")
def local_run(shard_data, tmp_path_factory):
    """The final checkpoint of training from the local shard files."""
    root = tmp_path_factory.mktemp("local")
    return train(shard_config(root / "c.yaml"), root / "exp", str(shard_data))


def test_urls_and_pipes_give_the_samples_of_the_local_files(shard_data, server):
    for path in read_shard_list(str(shard_data)):
        local = [s[:3] for s in read_shard(path)]
        assert len(local) == 4
        assert [s[:3] for s in read_shard(server.url(os.path.basename(path)))] == local
        assert [s[:3] for s in read_shard(f"pipe:cat {path}")] == local


def test_a_connection_cut_mid_shard_is_read_again_from_where_it_stopped(shard_data, server,
                                                                        caplog):
    name = os.path.basename(read_shard_list(str(shard_data))[1])
    local = [s[:3] for s in read_shard(str(shard_data / "shards" / name))]
    server.cut.add(f"/{name}")
    with caplog.at_level(logging.WARNING):
        samples = [s[:3] for s in read_shard(server.url(name), retries=2, retry_wait=0.1)]
    assert samples == local and server.requests == [f"/{name}"] * 2
    assert "curl: the transfer ended early (exit status 18)" in caplog.text


def test_training_over_http_survives_an_outage_and_ends_identical(shard_data, server, local_run,
                                                                  tmp_path, caplog):
    conf = shard_config(tmp_path / "c.yaml", retries=4, retry_wait=0.5)
    server.outage(after=2, seconds=2.0)               # gone for 2 s from the 3rd shard on
    with caplog.at_level(logging.WARNING):
        final = train(conf, tmp_path / "exp", http_data(shard_data, server, tmp_path))
    assert "curl: could not connect to the server (exit status 7)" in caplog.text
    assert "trying again in" in caplog.text
    assert_same_model(local_run, final)


def test_a_server_gone_for_good_is_one_line_and_the_run_resumes_when_it_is_back(
        shard_data, server, local_run, tmp_path):
    conf = shard_config(tmp_path / "c.yaml", retries=2, retry_wait=0.2)
    data = http_data(shard_data, server, tmp_path)
    # the first batch needs 12 samples (buffers of 8 + 4), each next one 4: with 5 shards
    # served, 3 steps are done (and checkpointed) before the 6th request fails
    server.outage(after=5, seconds=None)
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        train(conf, tmp_path / "exp", data)
    message = str(caught.value)
    assert "\n" not in message and time.monotonic() - started < 60
    assert message.startswith(f"http://127.0.0.1:{server.port}/shards_")
    assert (": unreachable: curl: could not connect to the server (exit status 7); 3 "
            "attempt(s) in a row failed over ") in message
    assert os.listdir(tmp_path / "exp/models") == ["step_3.pt"]
    server.start()
    final = train(conf, tmp_path / "exp", data)
    assert "resumed from" in (tmp_path / "exp/train.log").read_text()
    assert_same_model(local_run, final)
