"""Top-k cosine search over a speaker database (speaker_db.py): exact, or a usearch HNSW index.

All embeddings are unit length, so the cosine is a dot product.

* exact: scores = embeddings (N, E) @ query (E,), the k best by argpartition. O(N E) per query,
  no approximation; the (N, E) matrix is read from the database once and again after a write.
* index: a usearch HNSW graph (inner-product metric) over the same vectors quantized to int8
  (a quarter of the memory, faster to build). Its cost grows about as log N, but it is
  approximate (recall@1 below 1) and must be built and kept. Its RERANK best candidates are
  scored again exactly with their float32 embeddings from the database, so the cosines it
  returns are exact and only the choice of candidates is approximate.

method "auto" uses the index from INDEX_MIN_SPEAKERS speakers on: the size from which a query
through the index at the default search breadth was faster than exact search
(benchmarks/bench_speaker_db.py; docs/identification.md has the figures). The breadth is set for
recall: 1024 found the exact best speaker for all queries at cosine 0.7 from it among 100k
random speakers, 256 for 94 % of them.

The index is a cache of the database in a file beside it, `DB.index-<uuid>-<generation>.usearch`,
written through atomic_path, so that its name says which state of which database it holds. To
search, the newest such file is loaded and caught up with SpeakerDB.changes_since(its
generation): removed and changed speakers out, changed ones back in. A build from nothing, or a
catch-up of more than SAVE_FRACTION of the speakers, is saved as a new file (older ones of the
database are deleted). `wespeaker-mfcon db index` builds and saves it at once.
"""

import glob
import logging
import os
import re
import time

import numpy as np
from tqdm import tqdm

from wespeaker_mfcon.apps.speaker_db import MEMORY
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path

log = logging.getLogger(__name__)

INDEX_MIN_SPEAKERS = 100000    # "auto" switches to the index here (measured crossover)
CONNECTIVITY = 16              # HNSW graph degree (usearch's M)
EXPANSION_ADD = 64             # candidate list while building
EXPANSION_SEARCH = 1024        # candidate list while searching: recall against speed
RERANK = 10                    # index candidates scored exactly
SAVE_FRACTION = 0.01
METHODS = ("auto", "exact", "index")


def exact_top_k(embeddings, queries, k):
    """embeddings (N, E), queries (Q, E) -> rows (Q, k') int64 and scores (Q, k') float32,
    best first, k' = min(k, N)."""
    scores = np.asarray(queries, np.float32) @ np.asarray(embeddings, np.float32).T   # (Q, N)
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), np.int64), np.zeros((len(scores), 0), np.float32)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]                             # (Q, k)
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


class ExactSearch:
    """Brute force over the database's (N, E) matrix, reloaded when the database changed."""

    def __init__(self, db):
        self.db, self.gen, self.ids, self.embeddings = db, None, None, None

    def refresh(self):
        if self.gen != self.db.generation():
            self.gen, self.ids, self.embeddings = self.db.snapshot()

    def search(self, queries, k):
        """queries (Q, E) -> speaker ids (Q, k') int64, cosines (Q, k') float32."""
        rows, scores = exact_top_k(self.embeddings, queries, k)
        return self.ids[rows], scores


class IndexSearch:
    """A usearch HNSW index of the database, loaded from its file or built, then caught up."""

    def __init__(self, db, expansion_search=EXPANSION_SEARCH, threads=1):
        from usearch.index import Index

        self.db, self.threads, self.gen, self.index, self.saved = db, threads, None, None, None
        self._new = lambda: Index(ndim=db.dim, metric="ip", dtype="i8",
                                  connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                                  expansion_search=expansion_search)   # load() keeps it

    def refresh(self, save=None):
        """Bring the index to the database's generation; saved when built from nothing or
        caught up over more than SAVE_FRACTION of it (save True/False forces it)."""
        built = self.index is None and self._load_or_build()
        gen, removed, changed, embeddings = self.db.changes_since(self.gen)
        gone = np.concatenate([removed, changed]).astype(np.uint64)
        if len(gone):
            self.index.remove(gone)
        add_vectors(self.index, changed, embeddings)
        self.gen = gen
        if save or (save is None and (built or len(gone) > SAVE_FRACTION * len(self.index))):
            self.save()

    def _load_or_build(self):
        """Load the newest saved index (False), or build one from a snapshot (True)."""
        for gen, path in reversed(index_files(self.db)):
            if gen > self.db.generation():
                continue
            try:
                self.index = self._new()
                self.index.load(path)
                self.gen = self.saved = gen
                return False
            except (OSError, RuntimeError) as e:          # deleted or damaged meanwhile
                log.warning("%s: cannot load the index (%s); trying another", path, e)
        self.gen, ids, embeddings = self.db.snapshot()
        self.index = self._new()
        add_vectors(self.index, ids, embeddings)
        return True

    def save(self):
        """Write the index as DB.index-<uuid>-<generation>.usearch; delete older ones."""
        if self.db.path == MEMORY or self.saved == self.gen:
            return
        path = f"{self.db.path}.index-{self.db.meta['uuid']}-{self.gen}.usearch"
        with atomic_path(path) as tmp:
            self.index.save(tmp)
        self.saved = self.gen
        for gen, old in index_files(self.db):
            if gen < self.gen:
                _remove_quietly(old)

    def search(self, queries, k):
        """queries (Q, E) -> speaker ids (Q, k') int64, cosines (Q, k') float32."""
        queries = np.asarray(queries, np.float32)
        k = min(k, len(self.index))
        if k == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        matches = self.index.search(queries, max(k, RERANK), threads=self.threads)
        keys = np.atleast_2d(matches.keys)
        counts = np.atleast_1d(getattr(matches, "counts", keys.shape[1]))
        found = [self._rerank(q, row[:n], k) for q, row, n in zip(queries, keys, counts)]
        k = min(len(ids) for ids, _ in found)       # fewer: a thin graph or a removal meanwhile
        return (np.stack([ids[:k] for ids, _ in found]),
                np.stack([cos[:k] for _, cos in found]).astype(np.float32))

    def _rerank(self, query, keys, k):
        """Candidates (n,) of one query -> the k best ids and their exact cosines."""
        stored = self.db.embeddings_of(keys)
        ids = np.array([i for i in keys if i in stored], np.int64)
        cosines = (np.stack([stored[i] for i in ids]) @ query if len(ids)
                   else np.zeros(0, np.float32))
        order = np.argsort(-cosines, kind="stable")[:k]
        return ids[order], cosines[order]


def add_vectors(index, ids, embeddings):
    """Add (N,) ids and (N, E) embeddings to a usearch index, both cores, with a progress bar
    for many."""
    if len(ids) == 0:
        return
    many = len(ids) >= 100000
    with tqdm(total=len(ids), desc="index", mininterval=2, dynamic_ncols=True,
              disable=not many) as bar:
        def progress(done: int, total: int) -> bool:      # usearch checks the signature
            bar.update(done - bar.n)
            return True
        start = time.time()
        index.add(ids.astype(np.uint64), embeddings, threads=0, progress=progress)
    if many:
        log.info("added %d speakers to the index in %.1f s", len(ids), time.time() - start)


def index_files(db):
    """[(generation, path)] of the database's saved index files, oldest first."""
    if db.path == MEMORY:
        return []
    pattern = re.compile(re.escape(f"{db.path}.index-{db.meta['uuid']}-") + r"(\d+)\.usearch$")
    found = [(pattern.match(p), p) for p in glob.glob(f"{glob.escape(db.path)}.index-*.usearch")]
    return sorted((int(m.group(1)), p) for m, p in found if m)


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:                  # another process removed it first
        pass


class SpeakerSearch:
    """search(queries, k) over a SpeakerDB by `method` (auto | exact | index), kept current
    with the database's writes (checked on every search: one small SELECT)."""

    def __init__(self, db, method="auto", index_min=INDEX_MIN_SPEAKERS,
                 expansion_search=EXPANSION_SEARCH, threads=1):
        if method not in METHODS:
            raise UserError(f"search method {method!r}: one of {', '.join(METHODS)}")
        self.db, self.method, self.index_min = db, method, index_min
        self.index_args = dict(expansion_search=expansion_search, threads=threads)
        self.backend, self.gen = None, None

    def _current(self):
        gen = self.db.generation()
        if self.backend is None or gen != self.gen:
            use_index = self.method == "index" or (
                self.method == "auto" and len(self.db) >= self.index_min)
            kind = IndexSearch if use_index else ExactSearch
            if not isinstance(self.backend, kind):
                self.backend = (IndexSearch(self.db, **self.index_args) if use_index
                                else ExactSearch(self.db))
            self.backend.refresh()
            self.gen = gen
        return self.backend

    def save_index(self):
        """Build or catch up the index now, and save it (`wespeaker-mfcon db index`)."""
        if self.db.dim is None:
            raise UserError(f"{self.db.path}: no speakers enrolled; nothing to index")
        IndexSearch(self.db, **self.index_args).refresh(save=True)

    def search(self, queries, k):
        """queries (Q, E) unit length -> speaker ids (Q, k') int64 and cosines (Q, k')
        float32, best first; k' = min(k, number of speakers)."""
        if self.db.dim is None:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        return self._current().search(queries, k)
