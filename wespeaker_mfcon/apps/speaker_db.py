"""The speaker database: enrolled speakers and their enrollments in one SQLite file.

Tables (float32 little-endian blobs of dim values)::

    meta         key -> value: version, uuid, model_hash, model_path, dim, generation
    speakers     id, name (unique), embedding = unit-length mean of the speaker's unit-length
                 enrollment embeddings, count = number of enrollments, gen = generation of its
                 last change
    enrollments  id, speaker_id, path (absolute source audio, for re-enrolling with a new
                 model), embedding (as the model gave it)
    removed      speaker_id, gen: tombstones, so that a search index can catch up (search.py)

Every write is one transaction, `BEGIN IMMEDIATE ... COMMIT`, in WAL mode with synchronous=FULL:
a process killed at any point leaves the file as it was before the transaction or after it
(SQLite's journal rolls a half-done one back on the next open), and a second writer waits for
the first (busy timeout) and then reads the rows the first committed, so concurrent enrollments
lose nothing. A speaker's mean is recomputed from all its enrollment rows inside the same
transaction. Each write bumps `generation`; speaker ids are AUTOINCREMENT, never reused.

The database records the model that made its embeddings (the SHA-256 of the checkpoint or ONNX
bytes, apps/identification.model_hash); opened for another model it refuses with one line.
WAL needs a local file system (not NFS); while a connection is open the file has DB-wal and
DB-shm beside it.
"""

import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from wespeaker_mfcon.utils.errors import UserError

SCHEMA_VERSION = "1"
MEMORY = ":memory:"
BUSY_TIMEOUT_S = 600.0       # a writer waits this long for another writer's transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS speakers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, embedding BLOB NOT NULL,
    count INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS speakers_gen ON speakers(gen);
CREATE TABLE IF NOT EXISTS enrollments (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, embedding BLOB NOT NULL,
    speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS enrollments_speaker ON enrollments(speaker_id);
CREATE TABLE IF NOT EXISTS removed (speaker_id INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_gen ON removed(gen);
"""


@dataclass
class SpeakerInfo:
    name: str
    count: int


def to_blob(vector):
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs, dim):
    """[bytes] -> (N, dim) float32."""
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)


def unit(x):
    """Rows of x (N, E) (or one vector (E,)) scaled to unit length."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def check_name(name):
    if not name or any(c.isspace() for c in name):
        raise UserError(f"speaker name {name!r}: must be non-empty, without white space")
    return name


def _retry_while_locked(step, seconds=BUSY_TIMEOUT_S):
    """Run step(), again while SQLite says "database is locked": switching a new file to WAL
    while another process creates it fails at once, without waiting the busy timeout."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return step()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SpeakerDB:
    """One SQLite speaker database. `model_hash` given: refuse a database made by another
    model (UserError); `create`: make the file if it does not exist (recording model_hash)."""

    def __init__(self, path, model_hash=None, model_path="", create=False):
        self.path = path if path == MEMORY else os.path.abspath(path)
        if path != MEMORY and not create and not os.path.isfile(self.path):
            raise UserError(f"{path}: no such speaker database (enroll creates one)")
        try:
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S,
                                        isolation_level=None, check_same_thread=False)
            _retry_while_locked(lambda: self._setup(model_hash, model_path))
        except sqlite3.DatabaseError as e:
            raise UserError(f"{path}: not a speaker database ({e})") from None
        self.meta = self._read_meta()
        if model_hash is not None and self.meta.get("model_hash") != model_hash:
            raise UserError(f"{path}: made with model {self.meta.get('model_hash', '?')[:12]} "
                            f"({self.meta.get('model_path', '?')}), not with {model_path} "
                            f"({model_hash[:12]}); use that model, or re-enroll the audio with "
                            "this one: wespeaker-mfcon db reenroll")

    def _setup(self, model_hash, model_path):
        self.conn.execute("PRAGMA foreign_keys = ON")
        if self.path != MEMORY:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return
        with self.transaction():
            for statement in _SCHEMA.split(";"):    # not executescript: it would COMMIT
                self.conn.execute(statement)
            first = {"version": SCHEMA_VERSION, "uuid": uuid.uuid4().hex, "generation": "0",
                     "model_hash": model_hash or "", "model_path": model_path}
            self.conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", first.items())

    def _read_meta(self):
        meta = dict(self.conn.execute("SELECT key, value FROM meta"))
        if meta.get("version") != SCHEMA_VERSION:
            raise UserError(f"{self.path}: speaker database version {meta.get('version')!r}, "
                            f"this code reads {SCHEMA_VERSION}")
        return meta

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE (waits for another writer) ... COMMIT, or ROLLBACK on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _next_generation(self):
        gen = int(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'")
                  .fetchone()[0]) + 1
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(gen),))
        return gen

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------- writes

    def enroll(self, name, embeddings, paths):
        """Add enrollments (embeddings (K, E), K source paths) to a speaker, created if new;
        one transaction. Returns the speaker's SpeakerInfo after it."""
        return self.enroll_many([(name, embeddings, paths)])[0]

    def enroll_many(self, items):
        """[(name, embeddings (K, E), paths)] in one transaction -> [SpeakerInfo]."""
        items = [(check_name(n), np.atleast_2d(np.asarray(e, np.float32)), list(p))
                 for n, e, p in items]
        with self.transaction():
            gen = self._next_generation()
            dim = self._check_dim(items[0][1].shape[1]) if items else None
            return [self._add(name, embs, paths, gen, dim) for name, embs, paths in items]

    def _check_dim(self, dim):
        """The database's embedding size, set by the first enrollment (inside a write)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        if row is None:
            self.conn.execute("INSERT INTO meta VALUES ('dim', ?)", (str(dim),))
        elif int(row[0]) != dim:
            raise UserError(f"{self.path}: holds {row[0]}-dim embeddings, got {dim}-dim")
        return dim

    def _add(self, name, embs, paths, gen, dim):
        if embs.shape[1] != dim or len(paths) != len(embs):
            raise ValueError(f"{name}: embeddings {embs.shape} for {len(paths)} paths, dim {dim}")
        row = self.conn.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
        if row is None:                         # new: its mean is that of these embeddings
            sid = self.conn.execute(
                "INSERT INTO speakers (name, embedding, count, gen) VALUES (?, ?, ?, ?) "
                "RETURNING id", (name, to_blob(unit(unit(embs).mean(axis=0))), len(embs), gen)
            ).fetchone()[0]
        self._insert_enrollments(sid if row is None else row[0], embs, paths)
        if row is None:
            return SpeakerInfo(name, len(embs))
        blobs = [b for (b,) in self.conn.execute(
            "SELECT embedding FROM enrollments WHERE speaker_id = ?", (row[0],))]
        mean = unit(unit(from_blobs(blobs, dim)).mean(axis=0))
        self.conn.execute("UPDATE speakers SET embedding = ?, count = ?, gen = ? WHERE id = ?",
                          (to_blob(mean), len(blobs), gen, row[0]))
        return SpeakerInfo(name, len(blobs))

    def _insert_enrollments(self, sid, embs, paths):
        self.conn.executemany(
            "INSERT INTO enrollments (speaker_id, path, embedding) VALUES (?, ?, ?)",
            [(sid, os.path.abspath(p), to_blob(e)) for p, e in zip(paths, embs)])

    def remove(self, names):
        """Remove speakers (and their enrollments), all or none: an unknown name is a
        UserError and nothing is removed. Returns the number removed."""
        with self.transaction():
            ids = []
            for name in names:
                row = self.conn.execute("SELECT id FROM speakers WHERE name = ?",
                                        (name,)).fetchone()
                if row is None:
                    raise UserError(f"{self.path}: no speaker {name!r}; nothing removed")
                ids.append(row[0])
            gen = self._next_generation()
            self.conn.executemany("DELETE FROM speakers WHERE id = ?", [(i,) for i in ids])
            self.conn.executemany("INSERT INTO removed VALUES (?, ?)", [(i, gen) for i in ids])
        return len(ids)

    # ------------------------------------------------------------------------- reads

    @property
    def dim(self):
        """The embedding size (None before the first enrollment)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        return None if row is None else int(row[0])

    def generation(self):
        return int(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'")
                   .fetchone()[0])

    def __len__(self):
        return self.conn.execute("SELECT COUNT(*) FROM speakers").fetchone()[0]

    def __contains__(self, name):
        return self.conn.execute("SELECT 1 FROM speakers WHERE name = ?",
                                 (name,)).fetchone() is not None

    def speakers(self):
        """[SpeakerInfo] by name."""
        return [SpeakerInfo(n, c) for n, c in
                self.conn.execute("SELECT name, count FROM speakers ORDER BY name")]

    def enrollments(self):
        """[(name, source path, embedding (E,))] by name, then enrollment order."""
        rows = self.conn.execute(
            "SELECT s.name, e.path, e.embedding FROM enrollments e JOIN speakers s "
            "ON s.id = e.speaker_id ORDER BY s.name, e.id").fetchall()
        return [(n, p, np.frombuffer(b, "<f4")) for n, p, b in rows]

    def snapshot(self):
        """All speakers at one generation: (generation, ids (N,) int64, embeddings (N, E))."""
        with self._read():
            gen = self.generation()
            rows = self.conn.execute("SELECT id, embedding FROM speakers ORDER BY id").fetchall()
        return gen, np.array([r[0] for r in rows], np.int64), self._embeddings(rows)

    def changes_since(self, since):
        """What changed after generation `since`: (generation, removed ids (R,), changed ids
        (C,), their embeddings (C, E)); a changed id may also be in removed (remove it first)."""
        with self._read():
            gen = self.generation()
            removed = [r[0] for r in self.conn.execute(
                "SELECT speaker_id FROM removed WHERE gen > ?", (since,))]
            rows = self.conn.execute("SELECT id, embedding FROM speakers WHERE gen > ?",
                                     (since,)).fetchall()
        return (gen, np.array(removed, np.int64), np.array([r[0] for r in rows], np.int64),
                self._embeddings(rows))

    def _embeddings(self, rows):
        return from_blobs([r[1] for r in rows], self.dim or 0)

    @contextmanager
    def _read(self):
        """A read transaction: its SELECTs see one committed state."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def embeddings_of(self, ids):
        """{id: embedding (E,) float32} of those of the given speaker ids that exist."""
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(ids))
        return {i: np.frombuffer(b, "<f4") for i, b in self.conn.execute(
            f"SELECT id, embedding FROM speakers WHERE id IN ({marks})", ids)}

    def names(self, ids):
        """{id: name} of the given speaker ids (those that exist)."""
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(ids))
        return dict(self.conn.execute(f"SELECT id, name FROM speakers WHERE id IN ({marks})",
                                      ids)) if ids else {}
