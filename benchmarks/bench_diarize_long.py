"""Diarization of long recordings: peak memory (RSS) and real-time factor at 10 and 60 minutes,
one thread, as JSON for the docs.

  python benchmarks/bench_diarize_long.py --model examples/voxceleb/v2_mfcon/exp/demo \
      --data examples/voxceleb/v2_mfcon/data_long --json docs/results/diarization_long.json

Makes one generated conversation of each length in --data (4 speakers; synth/conversations.py)
unless it is there, then diarizes each in a fresh process through the public API
(apps/diarize.diarize_rttm) with torch, ONNX Runtime and BLAS on one thread, and records that
process's peak resident memory (VmHWM), its CPU seconds per second of audio, and DER/JER
against the reference. Flat memory: the 60-minute peak is about the 10-minute one. The table
is analysis/diarization.render_long's.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from wespeaker_mfcon.analysis.benchmarking import add_bench_options, finish, start
from wespeaker_mfcon.analysis.diarization import render_long
from wespeaker_mfcon.bin.make_conversations import main as make_conversations
from wespeaker_mfcon.scoring.diarization import score_rttm
from wespeaker_mfcon.scoring.rttm import read_rttm
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.file_utils import atomic_write

MINUTES = (10, 60)


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="exp dir, .pt or .onnx")
    p.add_argument("--data", required=True, help="dir of the long recordings (made if absent)")
    p.add_argument("--child", help="(internal) diarize this wav and print the measurements")
    p.add_argument("--rttm", help="(internal, with --child) RTTM output")
    add_bench_options(p)
    return p.parse_args(argv)


def child(model, wav, rttm):
    """Diarize one file on one thread; print {"cpu_s", "peak_rss_mb", "load_s"} as JSON."""
    import torch
    from threadpoolctl import threadpool_limits
    from wespeaker_mfcon.apps.diarize import diarize_rttm
    from wespeaker_mfcon.apps.embedder import load_model
    torch.set_num_threads(1)
    t0 = time.process_time()
    embedder = load_model(model, num_threads=1)
    loaded = time.process_time()
    with threadpool_limits(limits=1):
        lines = diarize_rttm(embedder, wav)
    cpu = time.process_time() - loaded
    with atomic_write(rttm) as f:
        f.writelines(line + "\n" for line in lines)
    print(json.dumps(dict(cpu_s=cpu, load_s=loaded - t0, peak_rss_mb=peak_rss_mb())))


def peak_rss_mb():
    """This process's peak resident memory in MB: VmHWM of /proc/self/status, which starts
    afresh at exec (getrusage's ru_maxrss keeps the parent's peak across fork + exec)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_recording(data, minutes):
    """data/mMIN/ with one conversation of that length (4 speakers); returns its dir."""
    out = os.path.join(data, f"m{minutes}")
    if not os.path.isfile(os.path.join(out, "meta.json")):
        make_conversations(["--out_dir", out, "--num", "1", "--first_index", str(900 + minutes),
                            "--min_dur", str(60 * minutes), "--max_dur", str(60 * minutes),
                            "--min_spk", "4", "--max_spk", "4"])
    return out


def measure(model, rec_dir):
    """Diarize the recording of rec_dir in a child process: its measurements and scores."""
    wav = os.path.join(rec_dir, "wav", os.listdir(os.path.join(rec_dir, "wav"))[0])
    hyp = os.path.join(rec_dir, "hyp.rttm")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--model", model,
                           "--data", rec_dir, "--child", wav, "--rttm", hyp],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(os.path.join(rec_dir, "meta.json"), encoding="utf-8") as f:
        audio_s = json.load(f)["hours"] * 3600
    scores = score_rttm(os.path.join(rec_dir, "ref.rttm"), hyp)
    for s in scores.values():
        s.pop("files")
    speakers = [len({k for turns in read_rttm(path).values() for *_, k in turns})
                for path in (os.path.join(rec_dir, "ref.rttm"), hyp)]
    return dict(audio_s=audio_s, rtf=m["cpu_s"] / audio_s, **m, scores=scores,
                speakers=speakers)


def main(argv=None):
    args = get_args(argv)
    if args.child:
        return child(args.model, args.child, args.rttm)
    record = start("diarize_long", "bench_diarize_long.py", argv, args.force)
    record.update(model=args.model,
                  runs={f"{minutes} min": measure(args.model, make_recording(args.data, minutes))
                        for minutes in MINUTES})
    print(render_long(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
