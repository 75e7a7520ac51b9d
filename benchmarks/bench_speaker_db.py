"""Speaker database at scale (issue 21): enrollment rate, size on disk, query latency exact and
through the usearch HNSW index, and the index's recall@1 against exact search.

    OMP_NUM_THREADS=1 python benchmarks/bench_speaker_db.py
        [--sizes 1000 3000 10000 30000 100000 300000 1000000] [--dim 192] [--queries 50]
        [--rounds 5] [--expansions 64 256] [--single 300] [--dir DIR] [--json OUT] [--force]

SYNTHETIC speakers: random unit vectors (i.i.d. Gaussian, normalized), one enrollment each; they
say nothing about accuracy (benchmarks/eval_identification.py does), only about speed, size and
how the index approximates exact search. The database grows to each size in turn (bulk
enrollment, SpeakerDB.enroll_many, --fill_batch speakers per transaction); at each size:
  * size on disk: the SQLite file (after a WAL checkpoint) and the saved index file;
  * the index (usearch, both cores): built from nothing at the first size, then caught up by
    adding the speakers enrolled since the previous size, as identify does (timed: adds/s),
    saved, and loaded from its file (timed);
  * latency of one query at a time (SpeakerSearch.search + SpeakerDB.names, what identify does
    after the embedding), exact and through the index at each --expansions (HNSW search
    breadth), in --rounds interleaved rounds (the method order alternates) of --queries queries;
  * recall@1 of the index against exact search on three query sets, new queries each round:
    "enrolled_cos0.7" and "enrolled_cos0.5" (a stored speaker's vector turned to cosine 0.7
    or 0.5 from it: an enrolled speaker speaking again) and "random" (fresh random unit
    vectors: nobody close, where the answer is "none of them" anyway; the worst case for HNSW).
Once, on the first size: one enrollment per transaction (SpeakerDB.enroll, fsync at COMMIT).
The crossover is the size from which on the index answers faster than exact search. The tables
are analysis/speaker_db_scale.py's.
"""

import argparse
import glob
import os
import shutil
import tempfile
import time

import numpy as np

from wespeaker_mfcon.analysis import speaker_db_scale
from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, load_avg, start
from wespeaker_mfcon.apps.search import SpeakerSearch, index_files
from wespeaker_mfcon.apps.speaker_db import SpeakerDB
from wespeaker_mfcon.utils.entrypoint import run_main

SYNTHETIC = "random unit vectors (i.i.d. Gaussian, normalized), one enrollment each"


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+",
                   default=[1000, 3000, 10000, 30000, 100000, 300000, 1000000])
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--queries", type=int, default=50,
                   help="queries of each set, per method, size and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--expansions", type=int, nargs="+", default=[64, 256],
                   help="HNSW search breadths to time (usearch expansion_search)")
    p.add_argument("--single", type=int, default=300, help="one-transaction enrollments timed")
    p.add_argument("--fill_batch", type=int, default=10000)
    p.add_argument("--dir", default=None,
                   help="where the database goes (default: a temp dir, removed after); a "
                        "database already there is reused and grown to the sizes above its own")
    add_bench_options(p)
    return p.parse_args(argv)


def unit_rows(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill(db, start, stop, dim, batch):
    """Enroll speakers start..stop-1 (random unit vectors, seeded by their index) -> s."""
    t0 = time.perf_counter()
    for lo in range(start, stop, batch):
        hi = min(lo + batch, stop)
        x = unit_rows(np.random.default_rng(lo), hi - lo, dim)
        db.enroll_many([(f"spk{lo + i:07d}", x[i:i + 1], [f"/synthetic/{lo + i}.wav"])
                        for i in range(hi - lo)])
    return time.perf_counter() - t0


def single_enroll_rate(db, n, dim):
    x = unit_rows(np.random.default_rng(-1 % 2 ** 32), n, dim)
    t0 = time.perf_counter()
    for i in range(n):
        db.enroll(f"single{i:05d}", x[i:i + 1], [f"/synthetic/single{i}.wav"])
    rate = n / (time.perf_counter() - t0)
    db.remove([f"single{i:05d}" for i in range(n)])
    return rate


def query_sets(stored, n, rng):
    """{set: (n, E) unit queries}: a stored speaker's vector plus noise at cosine about 0.7
    and 0.5 to it (an enrolled speaker speaking again), and random ones (nobody close)."""
    picks = stored[rng.choice(len(stored), n, replace=len(stored) < n)]
    sets = {}
    for name, cos in (("enrolled_cos0.7", 0.7), ("enrolled_cos0.5", 0.5)):
        noise = unit_rows(rng, n, stored.shape[1])
        noise -= np.sum(noise * picks, axis=1, keepdims=True) * picks       # orthogonal part
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        sets[name] = cos * picks + np.sqrt(1 - cos ** 2) * noise           # unit, cosine cos
    sets["random"] = unit_rows(rng, n, stored.shape[1])
    return sets


def timed_queries(search, db, queries):
    """Top-1 ids (Q,) and per-query seconds of search + name lookup, one query at a time."""
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found, _ = search.search(q[None], 5)
        db.names(found[0])
        times.append(time.perf_counter() - t0)
        ids.append(found[0, 0])
    return np.array(ids), times


def index_searches(db, expansions):
    """Bring the saved index up to the database (built from nothing at the first size, then
    caught up by adding the new speakers: timed), then load it from its file once per search
    breadth (timed) -> ({method: SpeakerSearch}, update s, load s, index file bytes)."""
    t0 = time.perf_counter()
    SpeakerSearch(db, "index").save_index()
    update = time.perf_counter() - t0
    searches, load = {}, None
    probe = np.zeros((1, db.dim), np.float32)
    for ef in expansions:
        t0 = time.perf_counter()
        searches[f"index_ef{ef}"] = SpeakerSearch(db, "index", expansion_search=ef)
        searches[f"index_ef{ef}"].search(probe, 1)
        load = time.perf_counter() - t0 if load is None else load
    return searches, update, load, os.path.getsize(index_files(db)[-1][1])


def measure_size(db, args, rng, added):
    """Latency, recall and costs at the database's current size (`added` speakers since the
    previous one) -> its JSON entry."""
    t0 = time.perf_counter()
    searches = {"exact": SpeakerSearch(db, "exact")}
    searches["exact"].search(np.zeros((1, db.dim), np.float32), 1)
    exact_load = time.perf_counter() - t0
    indexed, update, load, index_bytes = index_searches(db, args.expansions)
    searches.update(indexed)
    stored = db.snapshot()[2]                                      # (N, E)
    times = {m: [] for m in searches}
    top1 = {}
    for r in range(args.rounds):
        order = list(searches) if r % 2 == 0 else list(searches)[::-1]
        for name, queries in query_sets(stored, args.queries, rng).items():
            for m in order:
                ids, t = timed_queries(searches[m], db, queries)
                times[m] += t
                top1.setdefault(name, {}).setdefault(m, []).append(ids)
    recall = {s: {m: round(float(np.mean(np.concatenate(top1[s][m]) ==
                                         np.concatenate(top1[s]["exact"]))), 4)
                  for m in indexed} for s in top1}
    return {"speakers": len(db), "exact_load_s": round(exact_load, 3),
            "index_update_s": round(update, 2),
            "index_add_per_s": round(added / update, 1) if added else None,
            "index_load_s": round(load, 3), "index_bytes": index_bytes, "recall_at_1": recall,
            "latency_ms": {m: speaker_db_scale.latency_stats(t) for m, t in times.items()}}


def db_bytes(db):
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(os.path.getsize(p) for p in glob.glob(glob.escape(db.path) + "*")
               if ".index-" not in p)


def run(args, workdir):
    db = SpeakerDB(os.path.join(workdir, "bench.db"), model_hash="synthetic", create=True)
    rng = np.random.default_rng(0)
    sizes, have, single = [], len(db), None         # --dir with a database: grow it further
    for size in sorted(s for s in args.sizes if s >= have):
        fill_s = fill(db, have, size, args.dim, args.fill_batch)
        added, have = size - have, size
        if single is None:
            single = single_enroll_rate(db, args.single, args.dim)
        entry = measure_size(db, args, rng, added)
        entry.update(fill_per_s=round(added / fill_s, 1) if added else None,
                     db_bytes=db_bytes(db))
        sizes.append(entry)
        print(f"{size:>9,} speakers: {entry['latency_ms']} recall {entry['recall_at_1']} "
              f"index +{added} in {entry['index_update_s']} s (load {load_avg()})", flush=True)
    db.close()
    return sizes, single


def main(argv=None):
    args = get_args(argv)
    record = start("speaker_db", "bench_speaker_db.py", argv, args.force)
    workdir = args.dir or tempfile.mkdtemp(prefix="bench_speaker_db.")
    try:
        sizes, single = run(args, workdir)
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    methods = [m for m in sizes[0]["latency_ms"] if m != "exact"]
    record.update(synthetic=SYNTHETIC, dim=args.dim, queries=args.queries, rounds=args.rounds,
                  fill_batch=args.fill_batch, single_enroll_per_s=round(single, 1),
                  sizes=sizes,
                  crossover={m: speaker_db_scale.crossover(sizes, m) for m in methods})
    print(speaker_db_scale.render_latency(finish(record, args.json)))
    print(speaker_db_scale.render_recall(record))


if __name__ == "__main__":
    run_main(main)
