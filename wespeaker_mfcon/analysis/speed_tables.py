"""The speed tables of the docs, rendered from the JSON record a benchmark writes
(benchmarks/*.py --json; analysis/benchmarking.py makes the record). Each benchmark prints the
same table its record renders to, so the console and docs/speed.md never disagree.

Every table starts with its caption: the under-load banner of a --force run on a busy
machine, the contention note, the host, the command and the load average before and after.
"""

import statistics

from wespeaker_mfcon.analysis.onnx_profile import profile_table
from wespeaker_mfcon.analysis.tables import markdown_table, measured_on


def caption(data):
    """The lines above a speed table (see the module docstring)."""
    where = (f"{measured_on(data)} Load average (1, 5, 15 min) before: "
             f"{data.get('load_before', 'n/a')}; after: {data.get('load_after', 'n/a')}.")
    return "\n\n".join(line for line in (data.get("under_load"), data.get("note"), where)
                       if line) + "\n\n"


def rtf(ms, seconds):
    """'0.0123 (81x)': real-time factor of `ms` for `seconds` of audio, and times real time."""
    r = ms / 1000.0 / seconds
    return f"{r:.4f} ({1.0 / r:.0f}x)"


def render_asnorm(data):
    """bench_asnorm: cosine scoring and its normalization over random embeddings."""
    check = "-"
    if data.get("check_trials"):
        full = data["check_s"] / data["check_trials"] * data["trials"]
        check = (f"max abs diff {data['check_max_abs_diff']:.1e} on {data['check_trials']} "
                 f"trials (per trial: {data['check_s']:.2f} s, ~{full:.0f} s for all)")
    return caption(data) + markdown_table(
        ["trials", "utterances", "cohort speakers", "dim", "normalization", "cosine s",
         "normalization s", "per-trial reference"],
        [[f"{data['trials']:,}", f"{data['utts']:,}", f"{data['speakers']:,}", data["dim"],
          f"{data['method']} top {data['top_n']}", f"{data['cosine_s']:.2f}",
          f"{data['norm_s']:.2f}", check]])


def render_extract(data):
    """bench_extract: real-time factor of embedding extraction, PyTorch vs ONNX Runtime."""
    header = ["config (params)", "threads", "utterance", "fbank RTF (xRT)", "PyTorch ms",
              "PyTorch RTF (xRT)"]
    if data["onnx"]:
        header += ["ORT ms", "ORT RTF (xRT)", "ORT speed-up", "max abs ORT - torch"]
    rows = []
    for r in data["results"]:
        dur = r["duration_s"]
        row = [f"{r['config']} ({r['params'] / 1e6:.1f} M)", r["threads"],
               f"{dur:g} s ({r['frames']} frames)", rtf(r["fbank_ms"], dur),
               f"{r['torch_ms']:.1f}", rtf(r["torch_ms"], dur)]
        if data["onnx"]:
            row += [f"{r['ort_ms']:.1f}", rtf(r["ort_ms"], dur),
                    f"{r['torch_ms'] / r['ort_ms']:.2f}x", f"{r['max_abs_diff']:.1e}"]
        rows.append(row + [r["loadavg"]])
    return (caption(data) + f"Batch 1, median of {data['repeats']} runs after a warm-up; RTF = "
            "time / audio duration, (Nx) = times faster than real time. Model times exclude "
            "the fbank, listed on its own (Fbank module, float32).\n\n"
            + markdown_table(header + ["load avg before / after"], rows))


BATCHED_MODES = {"torch_1": "PyTorch, batch 1", "torch_batched": "PyTorch, batched (masked)",
                 "ort_1": "ORT, batch 1", "ort_equal": "ORT, equal lengths only",
                 "ort_batched": "ORT, batched (masked, `lengths` input)"}


def render_batched_extract(data):
    """bench_batched_extract: utterances/s of batched extraction against batch 1."""
    rows = [[r["jobs"], BATCHED_MODES[r["mode"]], r["batch"],
             f"{statistics.median(r['utts_per_s']):.1f}", f"{r['speedup']:.2f}x",
             f"{r['max_diff_batch1']:.1e}", f"{r['max_diff_torch1']:.1e}"]
            for r in data["rows"]]
    return (caption(data) + f"{data['utterances']} utterances of a stage-1 feats.scp, 1 thread "
            f"per job, median of {data['repeats']} interleaved passes; speed-up against batch "
            "1 of the same backend and job count (median of per-pass ratios).\n\n"
            + markdown_table(["jobs", "mode", "batch", "utterances/s", "speed-up",
                              "max abs diff vs batch 1", "vs PyTorch batch 1"], rows))


def render_onnx_profile(data):
    """profile_onnx: ORT kernel time per operator type, the models side by side."""
    return (caption(data) + f"ORT kernel time per operator type, ms per {data['seconds']:g} s "
            f"utterance, {data['threads']} thread(s), mean of {data['runs']} profiled runs "
            "after a warm-up.\n\n"
            + profile_table(data["models"], data["profiles"], data.get("top", 20)))


def render_quantize(data):
    """bench_quantize: int8 against fp32 ONNX Runtime, interleaved (and the op profiles)."""
    rows = [[r["config"], r["threads"], f"{r['seconds']:g} s",
             f"{r['fp32_ms']:.1f} ({r['fp32_ms'] / 1000 / r['seconds']:.4f})",
             f"{r['int8_ms']:.1f} ({r['int8_ms'] / 1000 / r['seconds']:.4f})",
             f"{r['fp32_ms'] / r['int8_ms']:.2f}x", f"{r['round_ratio']:.2f}x",
             f"{r['fp32_cpu_ms']:.1f} / {r['int8_cpu_ms']:.1f}", f"{r['cosine']:.5f}",
             f"{r['fp32_mib']:.1f} / {r['int8_mib']:.1f}", r["loadavg"]]
            for r in data["results"]]
    text = (caption(data) + f"ONNX Runtime fp32 vs int8 (QDQ), batch 1, {data['repeats']} "
            "interleaved rounds after a warm-up; ms (RTF).\n\n" + markdown_table(
                ["config", "threads", "utterance", "fp32 ms (RTF)", "int8 ms (RTF)",
                 "int8 speed-up (medians)", "median per-round ratio", "CPU ms fp32 / int8",
                 "cosine fp32/int8", "size fp32 / int8 MiB", "load avg before / after"], rows))
    for r in data["results"]:
        if "profiles" in r:
            text += (f"\n{r['config']}: ORT kernel time per operator type, ms per "
                     f"{r['seconds']:g} s utterance:\n\n"
                     + profile_table(["fp32", "int8"], r["profiles"]))
    return text


def render_train_step(data):
    """bench_train_step: CPU training step, baseline against MFCon, interleaved."""
    rows = [[r["config"], r["threads"], f"{r['batch']} ({r['P']}x{r['K']}) x {r['frames']}",
             f"{r['model_params'] / 1e6:.2f} M / {r['mfcon_head_params'] / 1e6:.2f} M",
             f"{r['base_median_ms']:.0f} ({r['base_min_ms']:.0f})",
             f"{r['mfcon_median_ms']:.0f} ({r['mfcon_min_ms']:.0f})",
             f"{r['overhead_pct']:+.1f}% ({r['overhead_min_pct']:+.1f}%)",
             f"{r['base_cpu_median_ms']:.0f} / {r['mfcon_cpu_median_ms']:.0f}",
             f"{r['cpu_overhead_pct']:+.1f}%",
             f"{r['heads_median_ms']:.0f} ({r['heads_overhead_pct']:.1f}%)",
             (f"{r['base_gflop']:.0f} / {r['mfcon_gflop']:.0f} ({r['flop_overhead_pct']:+.1f}%)"
              if r["flop_overhead_pct"] is not None else "-"),
             f"{r['loadavg_before']} / {r['loadavg_after']}"] for r in data["results"]]
    header = ["config", "threads", "batch (PxK) x frames", "model / MFCon-head params",
              "baseline ms/step median (min)", "MFCon ms/step median (min)",
              "MFCon overhead, wall: medians (mins)", "baseline / MFCon CPU ms/step",
              "MFCon overhead (CPU time)", "MFCon heads alone fwd+bwd ms (% of baseline step)",
              "GFLOP/step fwd+bwd baseline / MFCon (overhead)", "load avg before / after"]
    return (caption(data) + "Training step on CPU (forward + backward + Adam, as training "
            f"runs it), median of {data['steps']} interleaved steps after {data['warmup']} "
            "warm-up step(s). Overheads are ratios of the medians (of the minimums in "
            "parentheses). Wall time is what a user waits; CPU time (all threads of the "
            "process) is less sensitive to other processes. 'MFCon heads alone': the per-block "
            "heads + SupCon, forward and backward, on random block outputs of the step's shape, "
            f"median of {data['head_repeats']}. GFLOP: matmul/conv FLOPs of one forward + "
            "backward (torch FlopCounterMode; load-independent). Random fbank input, random "
            "weights; the paper config's batch is reduced unless --full_batch.\n\n"
            + markdown_table(header, rows))


def render_weighting(data):
    """bench_train_step --weightings: step time of each MFCon weighting against constant."""
    rows = [[r["weighting"], r["threads"], f"{r['constant_ms']:.0f}", f"{r['scheme_ms']:.0f}",
             f"{100 * (r['wall_ratio'] - 1):+.1f}%", f"{100 * (r['cpu_ratio'] - 1):+.1f}%",
             f"{r['added_ms']:.3f} ({100 * r['added_ms'] / r['fastest_constant_ms']:.3f}%)"]
            for r in data["rows"]]
    return (caption(data) + f"MFCon weighting vs constant, small config, {data['steps']} "
            f"interleaved rounds after {data['warmup']} warm-up. Timed alone: the scheme's "
            "own work on a stand-in graph, median of 50 interleaved differences to constant, "
            "over the fastest constant step; the wall and CPU ratios carry the machine's "
            "noise, this column much less.\n\n"
            + markdown_table(["weighting", "threads", "constant ms/step (median)",
                              "scheme ms/step (median)",
                              "overhead, wall (median of per-round ratios)",
                              "overhead, CPU time",
                              "added ms timed alone (% of the fastest constant step)"], rows))


def render_loader(data):
    """bench_loader: one raw-waveform loader worker against what a training step consumes."""
    batch, worker = data["batch"], data["worker_chunks_per_s"]
    breakdown = markdown_table(
        ["augmentation", "speed", "items", "median ms/chunk", "mean ms/chunk", "mean CPU ms"],
        [[b["aug"], b["speed"], b["count"], f"{b['median_ms']:.1f}", f"{b['mean_ms']:.1f}",
          f"{b['mean_cpu_ms']:.1f}"] for b in data["breakdown"]])
    rows = [["loader, 1 worker (all items)", f"{worker:.1f} (wall), "
             f"{data['worker_chunks_per_cpu_s']:.1f} (per CPU-second)",
             f"{1000.0 / worker:.1f} ms/chunk", data["loader_loadavg"]]]
    rows += [[f"fbank of the batch, {f['threads']} thread(s)", f"{f['chunks_per_s']:.0f}",
              f"{f['ms_per_batch']:.0f} ms / batch of {batch}", f["loadavg"]]
             for f in data["fbank"]]
    gpu = data["gpu_consumption_chunks_per_s"]
    rows += [[f"CPU training step ({data['step_source']})",
              f"{data['cpu_consumption_chunks_per_s']:.2f} consumed",
              f"{data['step_ms']:.0f} ms / {data['step_batch']} chunks", ""],
             ["workers needed to feed the CPU step", f"{data['workers_for_cpu_step']:.3f}",
              "consumption / per-worker rate (wall)", ""],
             [f"ESTIMATE: GPU step {data['gpu_step_ms']:g} ms per batch of {batch} (fbank on "
              "GPU)", f"{gpu:.0f} consumed", "assumed, not measured", ""],
             ["ESTIMATE: workers needed to feed that GPU step",
              f"{-(-gpu // data['worker_chunks_per_cpu_s']):.0f} "
              f"({data['workers_for_gpu_step_estimate']:.1f}; "
              f"{data['workers_for_gpu_step_estimate_wall']:.1f} by wall rate)",
              "GPU rate / per-worker CPU-time rate, one free core per worker", ""]]
    return (caption(data) + f"Raw-waveform data path, paper config ({data['num_frames']}-frame "
            f"chunks = {data['chunk_samples']} samples, speeds {data['speeds']}, aug_prob "
            f"{data['aug_prob']}; {data['utts']} synthetic {data['utt_dur']:g} s wavs, "
            "synthetic noise/music/babble/RIR set). Producer: one worker in-process, 1 torch "
            f"thread, {data['items']} items after {data['warmup']} warm-up items.\n\n"
            + breakdown + "\n" + markdown_table(
                ["stage", "chunks/s", "time", "load avg (before / after)"], rows)
            + "\nThe GPU rows are estimates: linear scaling over workers with a free CPU core "
            "each, wavs in the page cache (real corpora add decoding and disk I/O), and the "
            "fbank done on the GPU in the training loop.\n")


def _ratio(r):
    return "-" if r is None else f"{r:.2f}"


def _scale_sampling(data):
    return ("**Epoch build per rank** (P 50 x K 4, 3 speeds; time and peak tracemalloc MB of "
            "rank 0; the batcher gets 1/world of the utterances, labels only)\n\n"
            + markdown_table(
                ["what", "world", "utterances", "s", "us/utt", "per-utt ratio", "peak MB",
                 "batches (topped up)", "distinct utts / batch of 200"],
                [[r["what"], r["world"], f"{r['utts']:,}", f"{r['s']:.2f}",
                  f"{r['us_per_utt']:.2f}", _ratio(r["ratio"]), f"{r['peak_mb']:.1f}",
                  f"{r['batches']} ({r['topped']})", f"{r['distinct']:.1f}"]
                 for r in data["sampling"]]))


def _scale_stage0(data):
    return ("**Stage 0** (prepare_sets on a tree of tiny 0.1 s wavs, files just written so in "
            "the page cache)\n\n" + markdown_table(
                ["files", "nj", "s", "files/s", "us/file", "per-file ratio"],
                [[f"{r['utts']:,}", r["nj"], f"{r['s']:.2f}", f"{r['files_per_s']:.0f}",
                  f"{r['us_per_utt']:.0f}", _ratio(r["ratio"])] for r in data["stage0"]]))


def _scale_write(data):
    return ("**Shard write** (write_shards, page-cache-hot wavs; the last columns are "
            "EXTRAPOLATED to VoxCeleb2 dev, 1,092,009 utterances x 7.8 s)\n\n" + markdown_table(
                ["wavs", "MB", "nj", "s", "utts/s", "MB/s", "VoxCeleb2 h (by MB/s)",
                 "VoxCeleb2 h (by utts/s)"],
                [[r["set"], f"{r['mb']:.0f}", r["nj"], f"{r['s']:.2f}", f"{r['utt_per_s']:.0f}",
                  f"{r['mb_per_s']:.0f}", f"{r['vox2_h_by_mb']:.2f}",
                  f"{r['vox2_h_by_utt']:.2f}"] for r in data["write"]]))


def _scale_read(data):
    return (f"**Shard read, one worker** (the training loader of the paper shard config in "
            f"one process, {data['num_frames']}-frame chunks, speeds 0.9/1.0/1.1, 1 torch "
            f"thread; {data['read_utts']} x 8 s wavs; GPU step of {data['gpu_step_ms']:g} ms "
            "per batch of 200 ASSUMED)\n\n" + markdown_table(
                ["augmentation", "chunks", "s", "chunks/s (wall)", "chunks per CPU-s",
                 "GPU step consumes chunks/s", "workers to feed it"],
                [[r["aug"], r["chunks"], f"{r['s']:.2f}", f"{r['per_s']:.1f}",
                  f"{r['per_cpu_s']:.1f}", f"{r['gpu_rate']:.0f}", f"{r['workers']:.1f}"]
                 for r in data["read"]]))


def _scale_scoring(data):
    res = data["scoring"]
    return (f"**Scoring at VoxCeleb1-H size** (`{res['command']}`)\n\n" + markdown_table(
        ["trials", "utterances", "cohort speakers", "cosine s", "AS-norm (top 300) s"],
        [[f"{res['trials']:,}", f"{res['utts']:,}", f"{res['speakers']:,}",
          f"{res['cosine_s']:.2f}", f"{res['asnorm_s']:.2f}"]]))


def _scale_batching(data):
    return ("**Shard batches at VoxCeleb2 shape** (P 50 x K 4, batcher buffer 1500, world 1, "
            "one epoch; counts, not times)\n\n" + markdown_table(
                ["utterances", "shard order", "shuffle_size", "topped-up batches",
                 "distinct utts / batch of 200", "distinct speakers / 10 batches (of 500)"],
                [[f"{r['utts']:,}", "plain shuffle" if r["group_size"] == 1
                  else f"speaker runs of {r['group_size']}", r["shuffle_size"],
                  f"{r['topped']} of {r['batches']}", f"{r['distinct']:.1f}",
                  f"{r['speakers_per_10']:.0f}"] for r in data["batching"]]))


SCALE_SECTIONS = (("sampling", _scale_sampling), ("stage0", _scale_stage0),
                  ("write", _scale_write), ("read", _scale_read), ("scoring", _scale_scoring),
                  ("batching", _scale_batching))


def render_scale(data):
    """bench_scale: the data path and scoring from 10 k utterances to VoxCeleb2 size; the
    sections its record holds ("Per-utt ratio": time per utterance over the previous size's,
    ~1 = linear)."""
    return caption(data) + "\n".join(render(data) for key, render in SCALE_SECTIONS
                                     if key in data)
