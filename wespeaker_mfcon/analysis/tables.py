"""Markdown tables for the docs, rendered from result JSON (analysis/report.py fills the pages).

renderers() maps a report name to a function (data: dict) -> markdown. A renderer lives
beside the code that writes its JSON and is registered here by name.
"""


def markdown_table(header, rows):
    """A GitHub/MkDocs markdown table: header (list of str), rows (lists of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plus_minus(mean, std, fmt=".2f"):
    """'12.34 ± 0.56' (or '12.34' without a spread; '–' for a missing value)."""
    if mean is None:
        return "–"
    if std is None:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ± {std:{fmt}}"


def measured_on(data):
    """'Measured on HOST. Command: `...`.' from a result JSON's "host" and "command" keys."""
    parts = []
    host = data.get("host")
    if host:
        parts.append(f"Measured on {host}.")
    command = data.get("command")
    if command:
        parts.append(f"Command: `{command}`.")
    return " ".join(parts)


def renderers():
    """{report name: render(data) -> markdown}; each renderer sits beside the code that writes
    its JSON (imported here, on use)."""
    from wespeaker_mfcon.analysis import summarize_comparison
    from benchmarks import bench_shard_http, checkpoint_cost, gpu_check   # a checkout's
    return {
        "comparison": summarize_comparison.render_docs_table,
        "shard_http": bench_shard_http.render,
        "checkpoint_cost": checkpoint_cost.render,
        "gpu_check": gpu_check.render,
    }
