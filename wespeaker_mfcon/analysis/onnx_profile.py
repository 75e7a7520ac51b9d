"""Where ONNX Runtime spends its time on an embedding model: kernel time per operator type.

A session as the Embedder makes it (CPUExecutionProvider, intra-op threads N, inter-op 1,
default graph optimizations) with ORT's profiler on; one warm-up run (not counted), then `runs`
runs on the given fbank. The kernel times of the profiled runs ("*_kernel_time" events, i.e.
the nodes ORT actually runs after its fusions, such as MatMulIntegerToFloat) are summed per
operator type and divided by the runs. Float MatMuls are split into those with a constant
weight (linear layers) and activation x activation ones (attention).
"""

import collections
import json
import os
import tempfile

from wespeaker_mfcon.analysis.tables import markdown_table


def op_profile(path, feats, threads=1, runs=5):
    """{op type: (ms per run, nodes)} of the kernels ORT runs for the model at `path` on
    feats (1, T, F) float32."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort_profile_") as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            session.run(["embs"], {"feats": feats})
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    # the first run (one-off allocations) is the warm-up: count only nodes after it ended
    first = min((ev for ev in events if ev.get("name") == "model_run"), key=lambda ev: ev["ts"])
    weight_matmuls = _weight_matmuls(path)
    total, nodes = collections.Counter(), collections.defaultdict(set)
    for ev in events:
        if (ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time")
                and ev["ts"] > first["ts"] + first["dur"]):
            op = ev["args"]["op_name"]
            if op == "MatMul":
                weights = ev["name"][:-len("_kernel_time")] in weight_matmuls
                op = "MatMul (weights)" if weights else "MatMul (activations)"
            total[op] += ev["dur"]
            nodes[op].add(ev["name"])
    return {op: (us / 1000.0 / runs, len(nodes[op])) for op, us in total.items()}


def _weight_matmuls(path):
    """Names of the MatMul nodes whose B is an initializer (a layer's weight)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return {n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights}


def profile_table(names, profiles, top=20):
    """Markdown: op type, then per model ms / share / nodes, the `top` op types by time (the
    rest summed in one row) and a total row. profiles: op_profile results (JSON lists too)."""
    totals = [sum(ms for ms, _ in p.values()) for p in profiles]
    ops = sorted({op for p in profiles for op in p},
                 key=lambda op: -max(p.get(op, (0, 0))[0] for p in profiles))
    header = ["op type"] + [f"{n} {col}" for n in names for col in ("ms", "%", "nodes")]
    rows = []
    for op in ops[:top]:
        row = [op]
        for p, tot in zip(profiles, totals):
            ms, count = p.get(op, (0.0, 0))
            row += [f"{ms:.1f}", f"{100 * ms / tot:.1f}", count] if count else ["-", "-", "-"]
        rows.append(row)
    rest = [sum(ms for op, (ms, _) in p.items() if op not in ops[:top]) for p in profiles]
    rows.append(["(other ops)"] + [c for r in rest for c in (f"{r:.1f}", "", "")])
    rows.append(["**total**"] + [c for t in totals for c in (f"**{t:.1f}**", "100", "")])
    return markdown_table(header, rows)
