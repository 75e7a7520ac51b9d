"""Figures of benchmarks/bench_speaker_db.py: latency statistics, the exact/index crossover and
the docs table (report block `speaker_db_scale`).

The JSON holds one entry per database size under "sizes", each with its fill rate, bytes on
disk, index build and load times, per-method query latencies (ms, one query at a time) and the
index's recall@1 against exact search on two query sets.
"""

import numpy as np

from wespeaker_mfcon.analysis.tables import markdown_table, measured_on


def latency_stats(seconds):
    """{median, p90} in ms of per-query times in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"median": round(float(np.median(ms)), 4), "p90": round(float(np.percentile(ms, 90)),
                                                                    4)}


def crossover(sizes, index_method):
    """The smallest size from which on the index's median latency stays below exact's
    (None when it never does)."""
    found = None
    for entry in sizes:
        lat = entry["latency_ms"]
        if lat[index_method]["median"] < lat["exact"]["median"]:
            found = entry["speakers"] if found is None else found
        else:
            found = None
    return found


def _mb(n):
    return f"{n / 1e6:.1f}"


def render_latency(data):
    """Markdown (report `speaker_db_latency`): per size, the query latency of each method,
    the bytes on disk, index build and load times, the bulk enrollment rate."""
    methods = list(data["sizes"][0]["latency_ms"])
    header = (["speakers"] + [f"{m} ms (median / p90)" for m in methods] +
              ["DB MB", "index MB", "index adds/s", "index load s", "fill speakers/s"])
    rows = [[f"{e['speakers']:,}"] + [_lat(e["latency_ms"][m]) for m in methods] +
            [_mb(e["db_bytes"]), _mb(e["index_bytes"]), _rate(e["index_add_per_s"]),
             f"{e['index_load_s']:.2f}", _rate(e["fill_per_s"])] for e in data["sizes"]]
    notes = [f"Synthetic speakers: {data['synthetic']}. Latency of {data['rounds']} x "
             f"{data['queries']} x {len(data['sizes'][0]['recall_at_1'])} single queries per "
             "method and size in interleaved rounds, one thread: search + name lookup, no "
             "embedding. Load average "
             f"{data['load_before']} at the start, {data['load_after']} at the end: the "
             "machine was shared, so times are inflated and noisy (index builds use both cores "
             "and suffer most). Index adds/s: speakers added to the saved index since the "
             "previous size (built from nothing at the first), as identify catches it up.",
             f"Crossover (the index faster from this size on): {_crossover_text(data)}. One "
             "enrollment per transaction (fsync at each commit): "
             f"{data['single_enroll_per_s']:.0f} enrollments/s; the fill column is bulk "
             f"enrollment (SpeakerDB.enroll_many, {data['fill_batch']:,} speakers per "
             "transaction).",
             measured_on(data)]
    return markdown_table(header, rows) + "\n" + "\n\n".join(n for n in notes if n) + "\n"


def render_recall(data):
    """Markdown (report `speaker_db_recall`): recall@1 of each index setting against exact
    search, per size and query set."""
    first = data["sizes"][0]["recall_at_1"]
    columns = [(s, m) for s in first for m in first[s]]
    header = ["speakers"] + [f"{s} {m}" for s, m in columns]
    rows = [[f"{e['speakers']:,}"] + [f"{e['recall_at_1'][s][m]:.3f}" for s, m in columns]
            for e in data["sizes"]]
    return (markdown_table(header, rows) + f"\nrecall@1: the fraction of "
            f"{data['rounds'] * data['queries']} queries per set whose best speaker through the "
            "index is the exact search's best.\n")


def _rate(per_s):
    return "–" if per_s is None else f"{per_s:,.0f}"


def _lat(stats):
    return f"{stats['median']:.3f} / {stats['p90']:.3f}"


def _crossover_text(data):
    found = data["crossover"]
    return ", ".join(f"{m}: {'never' if n is None else f'{n:,} speakers'}"
                     for m, n in found.items())
