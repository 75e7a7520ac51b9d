"""The figures and docs tables of the benchmarks of docs/distributed.md, rendered from the JSON
record each writes (analysis/benchmarking.py makes the record; the script prints the same
table):

    shard_http        benchmarks/bench_shard_http.py: shard reads over HTTP and pipe: against
                      local files
    checkpoint_cost   benchmarks/checkpoint_cost.py: the paper config's checkpoint and the work
                      a failure throws away per world size (lost_work)
    gpu_check         benchmarks/gpu_check.py: what one GPU does (training precisions and MFCon
                      overhead, torchrun, batched extraction, ONNX Runtime)

A table starts with the record's under-load banner (a --force run on a busy machine) and its
contention note, when it has them.
"""

from wespeaker_mfcon.analysis.tables import markdown_table
from wespeaker_mfcon.dataset.sampler import global_batches


def _banner(data):
    """The under-load banner and the contention note of the record, each with a blank line."""
    return "".join(f"{data[key]}\n\n" for key in ("under_load", "note") if data.get(key))


def render_shard_http(data):
    """Samples/s and MB/s per loader worker of each shard source, and its ratio to local
    files."""
    rows = [[r["mode"], r["kind"], f"{r['samples_per_s']:.0f}", f"{r['mb_per_s']:.0f}",
             f"{r['vs_local']:.2f}"] for r in data["rows"]]
    return (_banner(data) + markdown_table(["source", "work", "samples/s per worker", "MB/s",
                                            "vs local file (median ratio)"], rows) +
            f"\n{data['utterances']} utterances of {data['seconds']} s in shards of "
            f"{data['per_shard']}, median of {data['repeats']} interleaved repeats on "
            f"{data['host']} (load average before / after: {data['load_before']} / "
            f"{data['load_after']}). Command: `{data['command']}`.\n")


def lost_work(conf, utts, world):
    """The most work one failure throws away in a world of `world` processes, for `utts`
    utterances an epoch at conf's batch per process: the steps since the last checkpoint, at
    most save_interval_steps or, when an epoch is shorter, one epoch (checkpoints are written
    at epoch ends too)."""
    steps = global_batches(utts, conf.batch_size, world) // world
    every = conf.save_interval_steps
    lost = min(every, steps) if every else steps
    samples = lost * world * conf.batch_size
    return {"world": world, "steps_per_epoch": steps, "lost_steps": lost,
            "lost_samples": samples, "lost_epochs": lost / steps,
            "lost_share_of_run": lost / (steps * conf.num_epochs)}


def render_checkpoint_cost(data):
    """Per world size: the steps of an epoch and the most work one failure loses; below it the
    checkpoint's size and its save and load times."""
    ck = data["checkpoint"]
    rows = [[r["world"], r["steps_per_epoch"], r["lost_steps"], f"{r['lost_samples']:,}",
             f"{r['lost_epochs']:.2f}", f"{100 * r['lost_share_of_run']:.2f}%"]
            for r in data["worlds"]]
    return (_banner(data) +
            markdown_table(["processes", "steps per epoch", "steps lost at most",
                            "samples lost", "epochs lost", "share of the run"], rows) +
            f"\n{data['config']}: batch {data['batch']} per process, "
            f"save_interval_steps {data['save_interval_steps']}, {data['num_epochs']} epochs of "
            f"{data['utts']:,} utterances. Its checkpoint ({ck['parameters'] / 1e6:.1f} M "
            f"parameters with the heads, Adam moments): {ck['bytes'] / 2**20:.0f} MiB, saved in "
            f"{ck['save_s']:.1f} s and loaded in {ck['load_s']:.1f} s on {data['host']} (load "
            f"average {data['load_after']}). Command: `{data['command']}`.\n")


def render_gpu_check(data):
    """The training table per precision, then one line each for torchrun, extraction and ONNX
    Runtime, and the time each part took."""
    run, ext, ort = data["torchrun"], data["extraction"], data["onnxruntime"]
    text = (_banner(data) + _training_table(data["train"]) +
            f"\nBatch {data['batch']} ({data['frames']} frames, {data['classes']} classes) on "
            f"{data['device']}, torch {data['torch']}.\n\n" + _torchrun_line(run))
    text += (f"- extraction of {ext['utts']} utterances: batch {ext['batch']} "
             f"{ext['batched_utts_per_s']:.0f} utt/s, batch 1 {ext['batch_1_utts_per_s']:.0f} "
             f"utt/s: {ext['speedup']:.1f}x (max |diff| {ext['max_abs_diff']:.1g})\n")
    text += (f"- ONNX Runtime {ort['provider']}: {ort['onnxruntime_utts_per_s']:.0f} utt/s "
             f"against PyTorch {ort['torch_utts_per_s']:.0f} (max |diff| "
             f"{ort['max_abs_diff']:.1g})\n" if ort["available"] else
             f"- ONNX Runtime: no CUDA provider (has {', '.join(ort['providers'])})\n")
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in data["part_seconds"].items())
    return text + (f"\n{data['seconds']:.0f} s in all ({seconds}). "
                   f"Command: `{data['command']}`.\n")


def _training_table(train):
    rows = []
    for name, part in train.items():
        if "skipped" in part:
            rows.append([name, "–", "–", "–", "–", part["skipped"]])
            continue
        mf, base = part["mfcon"], part["baseline"]
        rows.append([name, f"{mf['samples_per_s']:.0f}", f"{base['samples_per_s']:.0f}",
                     f"{part['mfcon_overhead_pct']:.1f}%", _gib(mf["peak_gib"]),
                     _gib(base["peak_gib"])])
    return markdown_table(["precision", "MFCon samples/s", "baseline samples/s",
                           "MFCon overhead", "MFCon peak memory", "baseline peak memory"], rows)


def _torchrun_line(run):
    coll, res = run["collectives"], run["resume"]
    return (f"- torchrun, one process ({run['backend']}): all_reduce and broadcast "
            + (f"{'work' if coll['all_reduce_and_broadcast'] else 'FAIL'}; " if coll["ok"] else
               f"failed: {coll['error']}; ")
            + (f"a job stopped after epoch 1 and started again resumed: {res['resumed']}, "
               f"identical to an unbroken run: {res['identical']} (max |diff| "
               f"{res['max_abs_diff']:.2g})\n" if res["ok"] else
               f"the stopped job failed: {res['error']}\n"))


def _gib(value):
    return "–" if value is None else f"{value:.2f} GiB"
