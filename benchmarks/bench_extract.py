"""CPU real-time factor of embedding extraction: PyTorch eager vs ONNX Runtime.

    python benchmarks/bench_extract.py [--configs small paper] [--threads 1 2]
        [--durations 4 10] [--repeats 5] [--opset 18] [--json OUT]

For each config (small = conf/mfa_conformer_small.yaml, paper = conf/mfa_conformer.yaml,
~20 M parameters) the deployable EmbeddingNet (mean normalization + model, as stage 3 and
the ONNX file use it) is built with random weights and put in eval mode (BatchNorm running
statistics), then
  * PyTorch: net(feats) under torch.inference_mode, torch.set_num_threads(N);
  * ONNX Runtime: the same net exported with wespeaker_mfcon.export.onnx.export (dynamo,
    dynamic B and T) to a temporary directory, CPUExecutionProvider,
    intra_op_num_threads = N, inter_op_num_threads = 1 (as inference.Embedder does);
one utterance at a time (B = 1), for utterances of each duration (fbank frames as Kaldi
counts them for that many 16 kHz samples). The fbank itself (Fbank module, float32, no
dither) is timed separately on the waveform and is not part of the model RTF.

RTF = processing time / audio duration (lower is better); x-real-time = 1 / RTF.
Times are the median of --repeats runs after one warm-up run; fbank and PyTorch runs are
interleaved so that changing machine load affects them alike; the ORT runs come after them
(so that one runtime's idle-spinning thread pool cannot slow the other's timed runs).
The table is speed_tables.render_extract's.
"""

import argparse
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from wespeaker_mfcon.analysis.benchmarking import (add_bench_options, finish, interleaved,
                                                   load_avg, quiet_exporter_logs,
                                                   random_embedding_net, start)
from wespeaker_mfcon.analysis.speed_tables import render_extract
from wespeaker_mfcon.config import load_train_config
from wespeaker_mfcon.export.onnx import add_metadata, export
from wespeaker_mfcon.frontend.fbank import Fbank
from wespeaker_mfcon.utils.entrypoint import run_main

CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "voxceleb", "v2_mfcon", "conf")
CONFIGS = {"small": "mfa_conformer_small.yaml", "paper": "mfa_conformer.yaml"}
SAMPLE_RATE = 16000


def export_onnx(net, conf, path, opset, threads):
    """The deployable .onnx of net at path (as stage 5 exports it)."""
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        export(net, conf.feat_dim, path, opset)
    add_metadata(path, conf, net.model.embed_dim)
    print(f"{conf.model}: exported to ONNX in {time.perf_counter() - t0:.1f} s "
          f"({os.path.getsize(path) / 2**20:.1f} MiB)", flush=True)


def ort_session(path, threads):
    """An ONNX Runtime session as the Embedder makes it (intra-op threads, inter-op 1)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def measure_cell(net, session, fbank_mod, wave, repeats):
    """Median ms of fbank, PyTorch and (with a session) ORT on one utterance (B = 1)."""
    with torch.inference_mode():
        feats = fbank_mod(wave)[None]                      # (1, T, F)
    feats_np = np.ascontiguousarray(feats.numpy())

    def run_fbank():
        with torch.inference_mode():
            fbank_mod(wave)

    def run_torch():
        with torch.inference_mode():
            return net(feats)

    def run_ort():
        return session.run(["embs"], {"feats": feats_np})[0]

    # torch runs (fbank, model) interleaved; ORT in its own block afterwards, so that one
    # runtime's idle-spinning worker threads never run during the other's timed runs
    (fbank_ms, _), (torch_ms, _) = interleaved([run_fbank, run_torch], repeats)
    row = {"frames": feats.shape[1], "fbank_ms": statistics.median(fbank_ms),
           "fbank_all_ms": fbank_ms, "torch_ms": statistics.median(torch_ms),
           "torch_all_ms": torch_ms}
    if session is not None:
        (ort_ms, _), = interleaved([run_ort], repeats)
        diff = float(np.abs(run_ort() - run_torch().numpy()).max())
        row.update(ort_ms=statistics.median(ort_ms), ort_all_ms=ort_ms, max_abs_diff=diff)
    return row


def measure_config(name, args, tmp, rng):
    """Result rows of one config: every thread count x duration."""
    conf = load_train_config(os.path.join(CONF_DIR, CONFIGS[name]))
    net = random_embedding_net(conf)
    n_params = sum(p.numel() for p in net.parameters())
    onnx_path = None
    if not args.no_onnx:
        onnx_path = os.path.join(tmp, f"{name}.onnx")
        export_onnx(net, conf, onnx_path, args.opset, max(args.threads))
    fbank_mod, rows = Fbank().eval(), []
    for threads in args.threads:
        torch.set_num_threads(threads)
        session = ort_session(onnx_path, threads) if onnx_path else None
        for dur in args.durations:
            wave = torch.from_numpy((rng.standard_normal(int(round(dur * SAMPLE_RATE)))
                                     * 3000.0).astype(np.float32))
            load_before = load_avg()
            row = {"config": name, "params": n_params, "threads": threads, "duration_s": dur,
                   **measure_cell(net, session, fbank_mod, wave, args.repeats)}
            row["loadavg"] = f"{load_before} / {load_avg()}"
            rows.append(row)
            print(f"{name} threads={threads} {dur:g} s: fbank {row['fbank_ms']:.1f} ms, "
                  f"torch {row['torch_ms']:.1f} ms"
                  + (f", onnxruntime {row['ort_ms']:.1f} ms (|diff| {row['max_abs_diff']:.1e})"
                     if session is not None else "") + f" [load {load_avg()}]", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["small", "paper"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--durations", nargs="+", type=float, default=[4.0, 10.0],
                   help="utterance durations in seconds")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per cell (median)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--no_onnx", action="store_true", help="PyTorch only")
    add_bench_options(p)
    args = p.parse_args(argv)
    record = start("extract", "bench_extract.py", argv, args.force)
    quiet_exporter_logs()
    import onnxruntime as ort
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, load average {load_avg()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        record["results"] = [row for name in args.configs
                             for row in measure_config(name, args, tmp, rng)]
    record.update(repeats=args.repeats, onnx=not args.no_onnx)
    print()
    print(render_extract(finish(record, args.json, args.threads)))


if __name__ == "__main__":
    run_main(main)
