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
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import (add_force_option, command_line, finish_report, load_avg,  # noqa: E402
                               markdown_table, quiet_exporter_logs, require_idle)
from wespeaker_mfcon.utils.entrypoint import run_main  # noqa: E402
from wespeaker_mfcon.export.onnx import add_metadata, export  # noqa: E402
from wespeaker_mfcon.frontend.fbank import Fbank  # noqa: E402
from wespeaker_mfcon.models.embedding_net import EmbeddingNet  # noqa: E402
from wespeaker_mfcon.models import build_model  # noqa: E402
from wespeaker_mfcon.config import load_train_config  # noqa: E402

CONF_DIR = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon", "conf")
CONFIGS = {"small": "mfa_conformer_small.yaml", "paper": "mfa_conformer.yaml"}
SAMPLE_RATE = 16000


def interleaved_ms(fns, repeats):
    """Run every fn once (warm-up), then `repeats` rounds of all fns in turn (so drifting
    machine load hits them alike); per fn: list of ms."""
    for fn in fns:
        fn()
    out = [[] for _ in fns]
    for _ in range(repeats):
        for fn, times in zip(fns, out):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000.0)
    return out


def build_net(name):
    conf = load_train_config(os.path.join(CONF_DIR, CONFIGS[name]))
    torch.manual_seed(0)
    model = build_model(conf.model, conf.model_args)
    # non-trivial BatchNorm statistics, so eval-mode BN is not an identity
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0.0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
    net = EmbeddingNet(model).eval()
    return net, conf


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
    p.add_argument("--json", help="write the results here")
    add_force_option(p)
    args = p.parse_args(argv)
    require_idle(args.force)
    cmd = command_line("bench_extract.py", argv)
    quiet_exporter_logs()

    import onnxruntime as ort
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_avg()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    fbank_mod = Fbank().eval()
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        for name in args.configs:
            net, conf = build_net(name)
            feat_dim = conf.feat_dim
            n_params = sum(p.numel() for p in net.parameters())
            onnx_path = None
            if not args.no_onnx:
                onnx_path = os.path.join(tmp, f"{name}.onnx")
                t0 = time.perf_counter()
                torch.set_num_threads(max(args.threads))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    export(net, feat_dim, onnx_path, args.opset)
                add_metadata(onnx_path, conf, net.model.embed_dim)
                print(f"{name}: exported to ONNX in {time.perf_counter() - t0:.1f} s "
                      f"({os.path.getsize(onnx_path) / 2**20:.1f} MiB)", flush=True)
            for threads in args.threads:
                torch.set_num_threads(threads)
                session = None
                if onnx_path:
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = threads
                    opts.inter_op_num_threads = 1
                    session = ort.InferenceSession(onnx_path, opts,
                                                   providers=["CPUExecutionProvider"])
                for dur in args.durations:
                    samples = int(round(dur * SAMPLE_RATE))
                    wave = torch.from_numpy(
                        (rng.standard_normal(samples) * 3000.0).astype(np.float32))
                    with torch.inference_mode():
                        feats = fbank_mod(wave)[None]                      # (1, T, F)
                    frames = feats.shape[1]
                    feats_np = np.ascontiguousarray(feats.numpy())
                    load_before = load_avg()

                    def run_fbank():
                        with torch.inference_mode():
                            fbank_mod(wave)

                    def run_torch():
                        with torch.inference_mode():
                            return net(feats)

                    def run_ort():
                        return session.run(["embs"], {"feats": feats_np})[0]

                    # torch runs (fbank, model) interleaved; ORT in its own block afterwards,
                    # so that one runtime's idle-spinning worker threads never run during
                    # the other's timed runs
                    all_ms = interleaved_ms([run_fbank, run_torch], args.repeats)
                    if session is not None:
                        all_ms += interleaved_ms([run_ort], args.repeats)
                    row = {"config": name, "params": n_params, "threads": threads,
                           "duration_s": dur, "frames": frames,
                           "fbank_ms": statistics.median(all_ms[0]), "fbank_all_ms": all_ms[0],
                           "torch_ms": statistics.median(all_ms[1]), "torch_all_ms": all_ms[1]}
                    fb_ms, pt_ms = row["fbank_ms"], row["torch_ms"]
                    if session is not None:
                        diff = float(np.abs(run_ort() - run_torch().numpy()).max())
                        row.update(ort_ms=statistics.median(all_ms[2]), ort_all_ms=all_ms[2],
                                   max_abs_diff=diff)
                    row["loadavg"] = f"{load_before} / {load_avg()}"
                    results.append(row)
                    msg = (f"{name} threads={threads} {dur:g} s: fbank {fb_ms:.1f} ms, "
                           f"torch {pt_ms:.1f} ms")
                    if session is not None:
                        msg += f", onnxruntime {row['ort_ms']:.1f} ms (|diff| {diff:.1e})"
                    print(msg + f" [load {load_avg()}]", flush=True)

    def rtf(ms, dur):
        r = ms / 1000.0 / dur
        return f"{r:.4f} ({1.0 / r:.0f}x)"

    header = ["config (params)", "threads", "utterance", "fbank RTF (xRT)",
              "PyTorch ms", "PyTorch RTF (xRT)"]
    if not args.no_onnx:
        header += ["ORT ms", "ORT RTF (xRT)", "ORT speed-up", "max |ORT - torch|"]
    header += ["load avg before / after"]
    rows = []
    for r in results:
        row = [f"{r['config']} ({r['params'] / 1e6:.1f} M)", r["threads"],
               f"{r['duration_s']:g} s ({r['frames']} frames)",
               rtf(r["fbank_ms"], r["duration_s"]), f"{r['torch_ms']:.1f}",
               rtf(r["torch_ms"], r["duration_s"])]
        if not args.no_onnx:
            row += [f"{r['ort_ms']:.1f}", rtf(r["ort_ms"], r["duration_s"]),
                    f"{r['torch_ms'] / r['ort_ms']:.2f}x", f"{r['max_abs_diff']:.1e}"]
        row += [r["loadavg"]]
        rows.append(row)
    print()
    print(f"Embedding extraction on CPU, batch 1, median of {args.repeats} runs after a warm-up; "
          "RTF = time / audio duration, (Nx) = times faster than real time. Model times "
          "exclude the fbank, which is listed separately (Fbank module, float32):")
    print()
    print(markdown_table(header, rows))
    print()
    finish_report(args.threads, cmd, args.json, {"command": cmd, "results": results})


if __name__ == "__main__":
    run_main(main)
