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
    from wespeaker_mfcon.analysis import (diarization, distributed_tables,
                                          identification_eval, lambda_study, paper_gradients,
                                          speaker_db_scale, speed_tables, summarize_comparison)
    return {
        "checkpoint_cost": distributed_tables.render_checkpoint_cost,
        "comparison": summarize_comparison.render_docs_table,
        "diarization": diarization.render_accuracy,
        "diarization_speed": diarization.render_speed,
        "diarization_long": diarization.render_long,
        "gpu_check": distributed_tables.render_gpu_check,
        "identification": identification_eval.render,
        "lambda_adaptive": lambda_study.render_adaptive,
        "lambda_convergence": lambda_study.render_convergence,
        "lambda_diagnostics": lambda_study.render_diagnostics,
        "lambda_headline": lambda_study.render_headline,
        "lambda_heldout": lambda_study.render_heldout,
        "lambda_speakers": lambda_study.render,
        "paper_gradients": paper_gradients.render,
        "probe_step0": paper_gradients.render_step0,
        "shard_http": distributed_tables.render_shard_http,
        "speaker_db_latency": speaker_db_scale.render_latency,
        "speaker_db_recall": speaker_db_scale.render_recall,
        "speed_asnorm": speed_tables.render_asnorm,
        "speed_batched_extract": speed_tables.render_batched_extract,
        "speed_extract": speed_tables.render_extract,
        "speed_loader": speed_tables.render_loader,
        "speed_onnx_profile": speed_tables.render_onnx_profile,
        "speed_quantize": speed_tables.render_quantize,
        "speed_scale": speed_tables.render_scale,
        "speed_train_step": speed_tables.render_train_step,
        "speed_weighting": speed_tables.render_weighting,
    }
