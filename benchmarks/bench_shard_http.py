"""Shard read throughput over HTTP against local files, samples/s per loader worker.

    python benchmarks/bench_shard_http.py [--utts 1000] [--seconds 2.0] [--per_shard 100]
        [--repeats 5] [--json docs/results/shard_http.json] [--force]

Writes --utts utterances of --seconds of 16 kHz PCM16 noise into tar shards of --per_shard
(dataset/shard_writer.write_shard) in a temporary directory, serves that directory with
`python -m http.server` in its own process on 127.0.0.1, and reads every shard in this
process, as one loader worker does (dataset/shards.read_shard: webdataset, the shard.list
entry as given):
  * local file: the tar path (page cache warm after the first repeat);
  * HTTP: http://127.0.0.1:PORT/NAME (curl in a pipe, as dataset/remote.py opens a URL);
  * pipe:cat: the path through a pipe: command, the same pipe without the network.
"read" times the samples (key, speaker, bytes); "read + decode" also decodes each to a
waveform (utils/audio.decode_audio), as a training worker does before cutting its chunk.
Every repeat runs every mode in turn (interleaved), so machine load changing during the run
hits them alike; a figure is the median over the repeats, a ratio the median of the
per-repeat ratios against local files. Localhost has no network latency or bandwidth limit:
the ratio is the cost of the transport (curl, a pipe, the HTTP server), not of a network.
The table is analysis/distributed_tables.render_shard_http's.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, start
from wespeaker_mfcon.analysis.distributed_tables import render_shard_http
from wespeaker_mfcon.dataset.shard_writer import write_shard
from wespeaker_mfcon.dataset.shards import read_shard
from wespeaker_mfcon.utils.audio import decode_audio
from wespeaker_mfcon.utils.entrypoint import run_main

MODES = ("local file", "HTTP", "pipe:cat")


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=2.0, help="length of each utterance")
    p.add_argument("--per_shard", type=int, default=100, help="utterances per shard")
    p.add_argument("--repeats", type=int, default=5)
    add_bench_options(p)
    return p.parse_args(argv)


def write_data(root, utts, seconds, per_shard):
    """Tar shards of noise utterances under root/shards; returns their names."""
    import soundfile as sf
    rng = np.random.default_rng(0)
    names = []
    for first in range(0, utts, per_shard):
        members = []
        for i in range(first, min(first + per_shard, utts)):
            path = os.path.join(root, f"{i}.wav")
            sf.write(path, rng.integers(-3000, 3000, int(16000 * seconds), dtype=np.int16),
                     16000, subtype="PCM_16")
            members.append((f"spk{i % 50}/v/{i:05d}", f"spk{i % 50}", path))
        names.append(f"shard_{first // per_shard:06d}.tar")
        write_shard(os.path.join(root, "shards", names[-1]), members)
        for _, _, path in members:
            os.remove(path)
    return names


def serve(directory):
    """(process, port) of python -m http.server on 127.0.0.1 serving directory, once it
    answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", directory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("http.server did not start")


def entries(mode, shard_dir, names, port):
    if mode == "local file":
        return [os.path.join(shard_dir, n) for n in names]
    if mode == "HTTP":
        return [f"http://127.0.0.1:{port}/{n}" for n in names]
    return [f"pipe:cat {os.path.join(shard_dir, n)}" for n in names]


def time_pass(shard_entries, decode):
    """(samples/s, MB/s) of one pass over the shards."""
    count, nbytes = 0, 0
    began = time.perf_counter()
    for entry in shard_entries:
        for key, _, data, where in read_shard(entry):
            count, nbytes = count + 1, nbytes + len(data)
            if decode:
                decode_audio(data, where, 16000, warn=False)
    elapsed = time.perf_counter() - began
    return count / elapsed, nbytes / elapsed / 1e6


def measure(shard_dir, names, port, repeats):
    """{(mode, kind): [(samples/s, MB/s) per repeat]}, modes interleaved in every repeat."""
    runs = {}
    for _ in range(repeats):
        for decode in (False, True):
            for mode in MODES:
                rate = time_pass(entries(mode, shard_dir, names, port), decode)
                runs.setdefault((mode, "read + decode" if decode else "read"), []).append(rate)
    return runs


def summarize(runs):
    rows = []
    for (mode, kind), rates in runs.items():
        local = runs[("local file", kind)]
        rows.append({"mode": mode, "kind": kind,
                     "samples_per_s": statistics.median(r[0] for r in rates),
                     "mb_per_s": statistics.median(r[1] for r in rates),
                     "vs_local": statistics.median(r[0] / l[0] for r, l in zip(rates, local))})
    return rows


def main(argv=None):
    args = get_args(argv)
    record = start("shard_http", "bench_shard_http.py", argv, args.force)
    with tempfile.TemporaryDirectory(prefix="bench_shard_http_") as root:
        names = write_data(root, args.utts, args.seconds, args.per_shard)
        shard_dir = os.path.join(root, "shards")
        server, port = serve(shard_dir)
        try:
            runs = measure(shard_dir, names, port, args.repeats)
        finally:
            server.kill()
            server.wait()
    record.update(utterances=args.utts, seconds=args.seconds, per_shard=args.per_shard,
                  repeats=args.repeats, rows=summarize(runs))
    print(render_shard_http(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
