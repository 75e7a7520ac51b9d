"""The speaker database (apps/speaker_db.py) and its search (apps/search.py) against numpy
brute force; a SIGKILLed write and two concurrent writers (real processes) lose nothing."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import python_env
from wespeaker_mfcon.apps.search import SpeakerSearch, exact_top_k, index_files
from wespeaker_mfcon.apps.speaker_db import SpeakerDB
from wespeaker_mfcon.utils.errors import UserError


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _fill(path, n, dim=16, seed=0):
    """A database of n one-enrollment speakers s0.. with random embeddings (n, dim)."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    db = SpeakerDB(str(path), model_hash="m", create=True)
    db.enroll_many([(f"s{i}", x[i:i + 1], [f"/a/{i}.wav"]) for i in range(n)])
    return db, x


def _check_consistent(path):
    """Every speaker's count and mean follow from its enrollment rows; returns {name: count}."""
    with SpeakerDB(str(path)) as db:
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {}
        for name, _, emb in db.enrollments():
            rows.setdefault(name, []).append(emb)
        _, ids, means = db.snapshot()
        names = db.names(ids)
        for sid, mean in zip(ids, means):
            expect = _unit(_unit(np.stack(rows[names[sid]])).mean(axis=0))
            np.testing.assert_allclose(mean, expect, atol=1e-6)
        counts = {s.name: s.count for s in db.speakers()}
    assert counts == {n: len(e) for n, e in rows.items()}
    return counts


def test_speaker_is_the_unit_mean_of_unit_enrollments(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 8)) * [[1.0], [5.0]], rng.standard_normal((1, 8))
    db = SpeakerDB(str(tmp_path / "s.db"), model_hash="m", create=True)
    assert db.enroll("alice", a, ["x/1.wav", "x/2.wav"]).count == 2
    assert db.enroll("alice", b, ["x/3.wav"]).count == 3
    _, ids, means = db.snapshot()
    np.testing.assert_allclose(means[0], _unit(_unit(np.vstack([a, b])).mean(0)), atol=1e-6)
    assert [p for _, p, _ in db.enrollments()] == [os.path.abspath(f"x/{i}.wav")
                                                     for i in (1, 2, 3)]
    np.testing.assert_allclose(db.enrollments()[2][2], b[0], atol=1e-6)   # stored as given
    assert db.generation() == 2 and db.dim == 8
    with pytest.raises(UserError, match="8-dim embeddings, got 4-dim"):
        db.enroll("bob", np.ones((1, 4)), ["y.wav"])
    with pytest.raises(UserError, match="without white space"):
        db.enroll("bo b", np.ones((1, 8)), ["y.wav"])
    assert db.generation() == 2 and len(db) == 1                  # refused writes left nothing
    assert "alice" in db and "bob" not in db


def test_exact_search_equals_brute_force(tmp_path):
    db, x = _fill(tmp_path / "s.db", 300)
    queries = _unit(np.random.default_rng(2).standard_normal((7, 16)))
    ids, cosines = SpeakerSearch(db, "exact").search(queries, 5)
    oracle = _unit(x) @ queries.T                                     # (300, 7), full sort
    for q in range(7):
        best = np.argsort(-oracle[:, q])[:5]
        assert [db.names(ids[q])[i] for i in ids[q]] == [f"s{i}" for i in best]
        np.testing.assert_allclose(cosines[q], oracle[best, q], atol=1e-5)
    rows, scores = exact_top_k(x[:3], queries, 10)                    # k > N: all of them
    assert rows.shape == (7, 3) and np.all(np.diff(scores, axis=1) <= 0)


def test_index_agrees_with_exact_and_follows_writes(tmp_path):
    db, x = _fill(tmp_path / "s.db", 2000)
    rng = np.random.default_rng(3)
    near = _unit(_unit(x[:200]) + 0.05 * rng.standard_normal((200, 16)))  # enrolled speakers
    exact, index = SpeakerSearch(db, "exact"), SpeakerSearch(db, "index")

    def agree():
        (e_ids, e_cos), (i_ids, i_cos) = exact.search(near, 3), index.search(near, 3)
        same = i_ids[:, 0] == e_ids[:, 0]
        np.testing.assert_allclose(i_cos[same, 0], e_cos[same, 0], atol=1e-5)
        return np.mean(same), i_ids

    recall, ids = agree()
    assert recall >= 0.99 and np.mean(ids[:, 0] == np.arange(1, 201)) >= 0.99
    assert [g for g, _ in index_files(db)] == [1]                      # built, then saved
    db.remove(["s0", "s1"])
    db.enroll("s2", x[5:6], ["/b.wav"])                                # s2 moves towards s5
    db.enroll("new", x[0:1], ["/c.wav"])                               # s0's vector, new id
    recall, ids = agree()
    assert recall >= 0.99 and not np.isin(ids, [1, 2]).any()           # s0, s1 are gone
    assert db.names(ids[:1, 0]) == {2001: "new"}
    reloaded = SpeakerSearch(db, "index")              # gen 1 from its file, caught up to 4
    np.testing.assert_array_equal(reloaded.search(near, 3)[0], ids)
    assert [g for g, _ in index_files(db)] == [1]      # 4 changes < SAVE_FRACTION: not saved
    reloaded.save_index()
    assert [g for g, _ in index_files(db)] == [4]      # saved, the old one gone


def test_auto_switches_to_the_index_at_index_min(tmp_path):
    db, _ = _fill(tmp_path / "s.db", 50)
    search = SpeakerSearch(db, "auto", index_min=51)
    search.search(np.ones((1, 16)) / 4, 1)
    assert not index_files(db)
    db.enroll("one_more", np.ones((1, 16)), ["/x.wav"])
    ids, _ = search.search(np.ones((1, 16)) / 4, 1)
    assert db.names(ids[0]) == {ids[0][0]: "one_more"} and index_files(db)


def test_remove_is_all_or_nothing(tmp_path):
    db, _ = _fill(tmp_path / "s.db", 3)
    with pytest.raises(UserError, match="no speaker 'zed'; nothing removed"):
        db.remove(["s0", "zed"])
    assert db.remove(["s0", "s2"]) == 2
    assert [s.name for s in db.speakers()] == ["s1"] and len(db.enrollments()) == 1


def test_another_model_and_bad_files_are_refused(tmp_path):
    _fill(tmp_path / "s.db", 2)[0].close()
    with pytest.raises(UserError, match="made with model m .*re-enroll") as err:
        SpeakerDB(str(tmp_path / "s.db"), model_hash="other", model_path="new.onnx")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no such speaker database"):
        SpeakerDB(str(tmp_path / "none.db"))
    (tmp_path / "text.db").write_text("not a database, " * 100)
    with pytest.raises(UserError, match="not a speaker database"):
        SpeakerDB(str(tmp_path / "text.db"))


# ----------------------------------------------------------------------------- processes

_WRITER = """
import os, sys, time
import numpy as np
from wespeaker_mfcon.apps import speaker_db
path, go, mode, tag = sys.argv[1:5]
if mode == "pause":            # stop inside the transaction, after its rows are written
    add = speaker_db.SpeakerDB._add
    def paused(self, *args):
        info = add(self, *args)
        if args[0] == "s2999":
            open(go + ".inside", "w").close()
            time.sleep(120)
        return info
    speaker_db.SpeakerDB._add = paused
db = speaker_db.SpeakerDB(path, model_hash="m", create=True)
rng = np.random.default_rng(abs(hash(tag)) % 1000)
if mode == "pause":
    db.enroll_many([(f"s{i}", rng.standard_normal((1, 192)), [f"/p/{i}"]) for i in range(3000)])
    sys.exit()
open(f"{go}.{tag}.ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
for i in range(int(mode)):     # many small enrollments (as a real one, embeddings between)
    db.enroll(f"spk{i % 4}", rng.standard_normal((2, 16)), [f"/{tag}/{i}a", f"/{tag}/{i}b"])
    if i == 0:
        open(f"{go}.{tag}.writing", "w").close()
    time.sleep(0.003)
"""


def _writer(tmp_path, mode, tag="w"):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "s.db"),
                             str(tmp_path / "go"), str(mode), tag], env=python_env())


def _wait_for(path, proc, seconds=60):
    deadline = time.time() + seconds
    while not os.path.exists(path):
        assert proc.poll() is None and time.time() < deadline, f"no {path} from the writer"
        time.sleep(0.005)


def test_sigkill_inside_a_write_leaves_the_database_as_before(tmp_path):
    db, _ = _fill(tmp_path / "s.db", 2, dim=192)
    db.close()
    wal = tmp_path / "s.db-wal"
    before = _check_consistent(tmp_path / "s.db")
    proc = _writer(tmp_path, "pause")
    _wait_for(tmp_path / "go.inside", proc)
    assert wal.stat().st_size > 1_000_000        # its 3000 rows are already in the file
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _check_consistent(tmp_path / "s.db") == before
    with SpeakerDB(str(tmp_path / "s.db"), model_hash="m") as db:    # and it takes writes
        assert db.enroll("s0", np.ones((1, 192)), ["/z"]).count == 2


def test_sigkill_at_random_points_leaves_before_or_after(tmp_path):
    (tmp_path / "go").touch()
    totals = [0]
    for round_, delay in enumerate((0.05, 0.13, 0.21, 0.29)):
        proc = _writer(tmp_path, 10 ** 6, tag=f"r{round_}")
        _wait_for(tmp_path / f"go.r{round_}.writing", proc)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        totals.append(sum(_check_consistent(tmp_path / "s.db").values()))
        assert totals[-1] % 2 == 0               # whole enrollments (2 rows each) only
    assert all(b > a for a, b in zip(totals, totals[1:]))     # each round wrote, then died


def test_two_concurrent_writers_lose_nothing(tmp_path):
    procs = [_writer(tmp_path, 60, tag) for tag in ("a", "b")]
    for proc, tag in zip(procs, "ab"):
        _wait_for(tmp_path / f"go.{tag}.ready", proc)
    (tmp_path / "go").touch()
    for proc in procs:
        assert proc.wait(120) == 0
    counts = _check_consistent(tmp_path / "s.db")
    assert counts == {f"spk{i}": 2 * 2 * 15 for i in range(4)}       # 2 writers x 60 x 2 rows
    with SpeakerDB(str(tmp_path / "s.db")) as db:
        paths = [p for (p,) in db.conn.execute("SELECT path FROM enrollments ORDER BY id")]
        assert db.generation() == 120
    assert set(paths) == {f"/{t}/{i}{s}" for t in "ab" for i in range(60) for s in "ab"}
    writers = [p[1] for p in paths]                          # in commit order
    assert sum(a != b for a, b in zip(writers, writers[1:])) >= 2   # they did interleave


def test_scale_tables_and_crossover():
    from wespeaker_mfcon.analysis import speaker_db_scale

    def size(n, exact, index):
        return {"speakers": n, "latency_ms": {"exact": {"median": exact, "p90": 2 * exact},
                                              "index_ef64": {"median": index, "p90": 9.0}},
                "recall_at_1": {"random": {"index_ef64": 0.5}}, "db_bytes": 2e6,
                "index_bytes": 1e6, "index_add_per_s": 1000.0, "index_load_s": 0.01,
                "fill_per_s": 5000.0}
    sizes = [size(1000, 0.1, 0.2), size(3000, 0.3, 0.2), size(10000, 0.5, 0.6),
             size(30000, 1.5, 0.3), size(100000, 5.0, 0.4)]
    assert speaker_db_scale.crossover(sizes, "index_ef64") == 30000  # 3000 was a fluke
    assert speaker_db_scale.crossover(sizes[:3], "index_ef64") is None
    assert speaker_db_scale.latency_stats([0.001, 0.002, 0.003]) == {"median": 2.0, "p90": 2.8}
    data = {"sizes": sizes, "synthetic": "random", "queries": 10, "rounds": 2,
            "load_before": "1", "load_after": "2", "single_enroll_per_s": 90.0,
            "fill_batch": 100, "crossover": {"index_ef64": 30000}}
    latency = speaker_db_scale.render_latency(data)
    row = "| 30,000 | 1.500 / 3.000 | 0.300 / 9.000 | 2.0 | 1.0 | 1,000 | 0.01 | 5,000 |"
    assert row in latency
    assert "index_ef64: 30,000 speakers" in latency
    assert "| 1,000 | 0.500 |" in speaker_db_scale.render_recall(data)
