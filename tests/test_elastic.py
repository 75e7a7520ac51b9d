"""Elastic multi-node training through torchrun (bin/torchrun.py, training/elastic.py).

Two torchrun agents with a c10d rendezvous on localhost stand for two nodes (gloo, one worker
each). A worker killed with SIGKILL: the group restarts, resumes from the last checkpoint and
ends bit-identical to an unbroken run. A node lost (its agent and worker killed) with
--nnodes 1:2: the job finishes on the other, in a world of one. Both nodes lost: the same
command started again resumes and ends identical. Plus the pieces: positions carried over to
another world size, the lr schedule set to a step, the latest checkpoint by saved position, and
the one-line failure.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import python_env
from train_utils import make_feats_dir, tiny_config
from wespeaker_mfcon.training import builders
from wespeaker_mfcon.training.checkpointing import Position, in_world, set_schedule_step
from wespeaker_mfcon.training.elastic import failure_line
from wespeaker_mfcon.utils.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from wespeaker_mfcon.config import load_train_config

EPOCHS = 6          # 8 global batches per epoch: 4 steps per epoch on 2 processes, 8 on 1
TIMEOUT = 300       # seconds any one job may take before the test fails


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Data (6 speakers x 8 utterances), the config, and the final checkpoint of an unbroken
    run on two processes (one agent)."""
    root = tmp_path_factory.mktemp("elastic")
    data = make_feats_dir(str(root / "train"), num_spk=6, utts=8)
    conf = tiny_config(str(root / "c.yaml"), num_epochs=EPOCHS, save_interval_steps=2)
    unbroken = root / "unbroken"
    proc = subprocess.run(torchrun_cmd(["--standalone", "--nproc_per_node=2"], conf, data,
                                       unbroken),
                          capture_output=True, text=True, env=python_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"data": data, "conf": conf, "root": root,
            "final": load_checkpoint(str(unbroken / f"models/model_{EPOCHS}.pt"))}


def torchrun_cmd(launch, conf, data, exp):
    return [sys.executable, "-m", "wespeaker_mfcon.bin.torchrun", *launch,
            "-m", "wespeaker_mfcon.bin.train", "--config", conf, "--exp_dir", str(exp),
            "--train_data", data]


class Nodes:
    """Two torchrun agents ("nodes") of one c10d rendezvous on localhost; node 0 hosts it."""

    def __init__(self, job, exp, nnodes):
        self.job, self.exp, self.nnodes = job, exp, nnodes
        self.port = free_port()
        self.agents = [self.start(i) for i in range(2)]

    def start(self, node):
        launch = [f"--nnodes={self.nnodes}", "--nproc_per_node=1", "--max_restarts=2",
                  "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{self.port}",
                  "--rdzv_id=test", f"--rdzv_conf=is_host={int(node == 0)},last_call_timeout=3,"
                  "keep_alive_interval=1,keep_alive_max_attempt=2"]
        log = open(f"{self.exp}.node{node}.log", "w")
        return subprocess.Popen(torchrun_cmd(launch, self.job["conf"], self.job["data"],
                                             self.exp),
                                stdout=log, stderr=subprocess.STDOUT, env=python_env())

    def kill_worker(self, node):
        workers = children(self.agents[node].pid)
        assert workers, f"node {node} has no worker"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)

    def kill_node(self, node):
        """The agent and its workers at once, as when a machine goes down."""
        workers = children(self.agents[node].pid)
        for pid in [self.agents[node].pid, *workers]:
            os.kill(pid, signal.SIGKILL)
        self.agents[node].wait(TIMEOUT)

    def wait(self, node):
        return self.agents[node].wait(TIMEOUT)

    def log(self, node):
        with open(f"{self.exp}.node{node}.log") as f:
            return f.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """Kill what is still running (a failed test must not leave jobs behind)."""
        for agent in self.agents:
            if agent.poll() is None:
                for pid in [agent.pid, *children(agent.pid)]:
                    os.kill(pid, signal.SIGKILL)
                agent.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """Pids whose parent is pid (torchrun starts its workers in sessions of their own)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


def wait_for_checkpoint(exp, world_size=None):
    """Path of a checkpoint of the run (saved by world_size processes, if given)."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        for path in glob.glob(f"{exp}/models/*.pt"):
            if world_size is None or saved_world(path) == world_size:
                return path
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint in {exp}/models after {TIMEOUT} s")


def saved_world(path):
    try:
        return load_checkpoint(path, mmap=True)["world_size"]
    except Exception:       # removed (an older step checkpoint) while we looked
        return None


def assert_same_final(job, exp):
    state = load_checkpoint(str(exp / f"models/model_{EPOCHS}.pt"))
    for part in ("model", "projection", "mfcon"):
        for key, value in job["final"][part].items():
            assert torch.equal(value, state[part][key]), f"{part}.{key}"
    assert state["step"] == job["final"]["step"] == EPOCHS * 4


def test_a_killed_worker_heals_and_the_run_ends_identical(job):
    exp = job["root"] / "healed"
    with Nodes(job, exp, "2") as nodes:
        wait_for_checkpoint(exp)
        nodes.kill_worker(1)
        assert nodes.wait(0) == 0 and nodes.wait(1) == 0, nodes.log(0)[-3000:]
    log = (exp / "train.log").read_text()
    assert "resumed from" in log and "world size changed" not in log
    assert_same_final(job, exp)


def test_a_lost_node_lets_the_job_finish_on_the_other(job):
    exp = job["root"] / "shrunk"
    with Nodes(job, exp, "1:2") as nodes:
        wait_for_checkpoint(exp, world_size=2)
        nodes.kill_node(1)
        assert nodes.wait(0) == 0, nodes.log(0)[-3000:]
    log = (exp / "train.log").read_text()
    assert "world size changed from 2 to 1 process(es)" in log
    assert "8 steps/epoch on 1 process(es)" in log
    final = load_checkpoint(str(exp / f"models/model_{EPOCHS}.pt"))
    # the step count of a run that had always had one process: 8 steps per epoch
    assert final["step"] == EPOCHS * 8 and final["world_size"] == 1


def test_both_nodes_lost_then_the_same_command_resumes_identical(job):
    exp = job["root"] / "restarted"
    with Nodes(job, exp, "2") as nodes:
        wait_for_checkpoint(exp)
        nodes.kill_node(1)
        nodes.kill_node(0)
    assert not (exp / f"models/model_{EPOCHS}.pt").exists()
    with Nodes(job, exp, "2") as nodes:
        assert nodes.wait(0) == 0 and nodes.wait(1) == 0, nodes.log(0)[-3000:]
    assert "resumed from" in (exp / "train.log").read_text()
    assert_same_final(job, exp)


# ------------------------------------------------------------------------------ the pieces


def test_a_position_goes_to_another_world_size_by_the_share_of_the_epoch_done():
    # 3 batches of 2 processes = 6 global batches = 6 batches of 1 (step 2 * 8 + 6)
    assert in_world(Position(2, 3, 11, 2), 1, 8) == Position(2, 6, 22, 1)
    # 5 batches of 1 process = 5 global batches: 2 batches of 2 (one global batch again)
    assert in_world(Position(1, 5, 13, 1), 2, 4) == Position(1, 2, 6, 2)
    # the same world size, or an unknown one: as saved
    assert in_world(Position(1, 3, 7, 2), 2, 4) == Position(1, 3, 7, 2)
    assert in_world(Position(1, 3, 7, 0), 2, 4) == Position(1, 3, 7, 2)
    # never past the end of the epoch
    assert in_world(Position(0, 7, 7, 1), 3, 2) == Position(0, 2, 2, 3)


def test_the_lr_schedule_set_to_a_step_equals_stepping_to_it(tmp_path):
    conf = load_train_config(tiny_config(str(tmp_path / "c.yaml")))
    stepped, jumped = (torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.002)
                       for _ in range(2))
    sched_a = builders.build_lr_scheduler(conf, stepped, steps_per_epoch=3)
    sched_b = builders.build_lr_scheduler(conf, jumped, steps_per_epoch=3)
    for _ in range(7):
        stepped.step()
        sched_a.step()
    set_schedule_step(sched_b, 7)
    # warm-up of 3 steps, then halved every epoch of 3 steps: 0.002 * 0.5 ** (7 // 3)
    assert jumped.param_groups[0]["lr"] == stepped.param_groups[0]["lr"] == 0.002 * 0.25
    assert sched_b.last_epoch == sched_a.last_epoch == 7
    assert sched_b.get_last_lr() == sched_a.get_last_lr()


def test_the_latest_checkpoint_is_the_most_advanced_saved_position(tmp_path):
    def save(name, epoch, batch, world):
        save_checkpoint({"epoch": epoch, "batch_in_epoch": batch, "world_size": world},
                        str(tmp_path / name))

    save("model_1.pt", 1, 0, 2)
    save("step_6.pt", 1, 2, 2)          # epoch 2, 4 global batches done
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "step_6.pt")
    save("step_5.pt", 1, 5, 1)          # a smaller step number of a world of one: 5 batches
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "step_5.pt")
    save("model_2.pt", 2, 0, 1)         # a stale mid-epoch save left behind by a kill
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "model_2.pt")


def test_a_failed_job_ends_with_the_user_error_of_its_first_failing_rank(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    def failure(rank, exitcode, message=None, when=0):
        path = tmp_path / f"error{len(list(tmp_path.iterdir()))}.json"   # a new one each time
        if message:
            path.write_text(json.dumps({"message": message, "timestamp": when,
                                        "user_error": True}))
        return ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode,
                              error_file=str(path))

    failures = {0: failure(0, 1, "exp/models/model_3.pt: not written: no space", when=20),
                1: failure(1, 1), 2: failure(2, 1, "a later one", when=30)}
    assert failure_line(failures, 2) == "exp/models/model_3.pt: not written: no space"
    killed = {1: failure(1, -signal.SIGKILL), 3: failure(3, 1)}
    assert failure_line(killed, 2) == ("training failed (after 2 restart(s)): rank 1 "
                                       "(pid 101) was killed by SIGKILL")
    assert failure_line({0: failure(0, 1)}, 0) == ("training failed: rank 0 (pid 100) exited "
                                                   "with status 1 (its traceback is above)")
