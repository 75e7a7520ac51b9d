"""Docs tables of the diarization benchmarks (analysis/report.py renders them into
docs/diarization.md): accuracy from benchmarks/eval_diarization.py, long input from
benchmarks/bench_diarize_long.py."""

from wespeaker_mfcon.analysis.tables import markdown_table, measured_on


def _pct(x):
    return f"{100 * x:.2f}"


def _under_load(data):
    """The benchmark's note when it ran on a busy machine, else ''."""
    return f"{data['under_load']}\n\n" if data.get("under_load") else ""


def render_accuracy(data):
    """DER / JER table, one row per system (eval_diarization.py's JSON)."""
    rows = []
    for name, s in data["systems"].items():
        c, n = s["collar_0.25"], s["collar_0"]
        rows.append([name, _pct(c["der"]), _pct(c["miss"]), _pct(c["false_alarm"]),
                     _pct(c["confusion"]), _pct(c["jer"]), _pct(n["der"]), _pct(n["jer"]),
                     f"{100 * s['count_exact']:.0f}%", f"{s['count_mae']:.2f}",
                     f"{s['count_bias']:+.2f}"])
    header = ["system", "DER", "miss", "FA", "conf.", "JER", "DER (no collar)",
              "JER (no collar)", "count right", "count error", "count bias"]
    return (_under_load(data) + markdown_table(header, rows)
            + f"\n{data['recordings']} recordings, {data['audio_hours']:.2f} h; rates in %, "
            "overlap scored, DER/JER with a +-0.25 s collar unless said; count error: mean "
            "absolute, count bias: mean of found - true speakers. Model: "
            f"`{data['model']}`. {measured_on(data)} Load average {data['load_after']}.\n")


def render_speed(data):
    """Real-time factors per step (eval_diarization.py's JSON)."""
    rows = [[step, f"{rtf:.4f}", f"{1 / rtf:.0f}x" if rtf > 0 else "–"]
            for step, rtf in data["rtf"].items()]
    return (_under_load(data)
            + markdown_table(["step", "CPU s per audio s", "faster than real time"], rows)
            + f"\nOne thread (torch, ONNX Runtime, BLAS), CPU time over {data['audio_hours']:.2f} h "
            f"of audio. {measured_on(data)} Load average {data['load_after']}.\n")


def render_long(data):
    """Peak memory and speed at 10 and 60 minutes (bench_diarize_long.py's JSON)."""
    rows = [[name, f"{r['audio_s'] / 60:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r['rtf']:.4f}",
             _pct(r["scores"]["collar_0.25"]["der"]), _pct(r["scores"]["collar_0.25"]["miss"]),
             _pct(r["scores"]["collar_0.25"]["jer"]), "{1} of {0}".format(*r["speakers"])]
            for name, r in data["runs"].items()]
    header = ["recording", "minutes", "peak RSS (MB)", "CPU s per audio s", "DER", "miss",
              "JER", "speakers found"]
    return (_under_load(data) + markdown_table(header, rows)
            + f"\nEach in a fresh process on one thread; peak RSS includes Python, torch and the "
            f"model. Model: `{data['model']}`. {measured_on(data)} Load average "
            f"{data['load_after']}.\n")
