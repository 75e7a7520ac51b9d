"""Compare variants trained with several seeds: mean ± std, relative change, block EER.

    python -m wespeaker_mfcon.analysis.summarize_comparison \
        --runs baseline/seed1=exp/compare/baseline/seed1 mfcon/seed1=exp/compare/mfcon/seed1 ... \
        --baseline baseline --out_dir exp/compare

A run is NAME=EXP_DIR with NAME = VARIANT/SEED (a NAME without '/' is a variant with one
unnamed seed). Each run's EXP_DIR/scores/results.json (stage 4) is required;
EXP_DIR/block_eer.json (analysis/block_eer.py) is optional.

Writes OUT_DIR/comparison.json and OUT_DIR/comparison.md. Per variant, trial list, system
(cosine, asnorm, ...) and metric (eer in %, min_dcf_*): mean and std over seeds (ddof=1; null
with one seed), n, and versus the baseline variant: diff = mean - mean_base,
rel_change_pct = 100 * diff / mean_base, exceeds_spread = |diff| > std + std_base (null when
either side has a single seed). With block_eer.json files: OUT_DIR/block_eer.png (EER against
block index, one line per variant, error bars = std over seeds) and a per-block table.

A variant file (conf/compare/*.yaml, read by analysis/study.py) maps names to {config: PATH,
overrides: "--key value ..."}; the variant named "baseline", else the first one, is the
baseline. Config paths are relative to the recipe dir (checked to exist); overrides are
normalized to "--key=value" tokens.
"""

import argparse
import json
import logging
import math
import os
import re

import numpy as np

from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.config import load_train_config, parse_overrides, read_yaml
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.analysis.plots import plot_block_curves

log = logging.getLogger("summarize_comparison")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SYSTEM_ORDER = ("cosine", "asnorm", "snorm")


def get_parser():
    p = argparse.ArgumentParser(prog="summarize_comparison.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", metavar="VARIANT/SEED=EXP_DIR",
                   help="runs to compare")
    p.add_argument("--baseline", default=None,
                   help="baseline variant (default: 'baseline' if present, else the first)")
    p.add_argument("--out_dir", help="where comparison.{md,json} and block_eer.png go")
    p.add_argument("--no_plot", dest="plot", action="store_false",
                   help="do not write block_eer.png")
    return p


# ----------------------------------------------------------------------------- variants

def normalize_overrides(text, where):
    """'--a.b 3 --c=x' -> ['--a.b=3', '--c=x'] (split on whitespace, as run.sh does)."""
    tokens = text.split()
    out, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise UserError(f"{where}: unexpected {tok!r} in overrides (expected --key value)")
        if "=" in tok:
            out.append(tok)
            i += 1
        else:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise UserError(f"{where}: override {tok} needs a value")
            out.append(f"{tok}={tokens[i + 1]}")
            i += 2
    return out


def read_variants(path, check_configs=True):
    """Variant file -> (list of (name, config, [override tokens]), baseline name)."""
    data = read_yaml(path)
    if not data:
        raise UserError(f"{path}: expected a mapping name -> {{config: ..., overrides: ...}}")
    variants = []
    for name, spec in data.items():
        where = f"{path}: variant {name!r}"
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise UserError(f"{where}: names may hold only letters, digits and _ . + - "
                            "(they become directory names)")
        if isinstance(spec, str):
            spec = {"config": spec}
        if not isinstance(spec, dict):
            raise UserError(f"{where}: expected {{config: ..., overrides: ...}}")
        unknown = set(spec) - {"config", "overrides"}
        if unknown:
            raise UserError(f"{where}: unknown keys {sorted(unknown)} (config, overrides)")
        config = spec.get("config")
        if not isinstance(config, str) or not config:
            raise UserError(f"{where}: missing 'config'")
        overrides = spec.get("overrides") or ""
        if isinstance(overrides, list):
            overrides = " ".join(str(o) for o in overrides)
        if not isinstance(overrides, str):
            raise UserError(f"{where}: 'overrides' must be a string like \"--key value\"")
        if any(c in overrides for c in "|\"'`$\\;&"):
            raise UserError(f"{where}: overrides may not contain quotes or shell characters "
                            "(they are split on whitespace, values cannot hold spaces)")
        tokens = normalize_overrides(overrides, where)
        if check_configs:
            if not os.path.isfile(config):
                raise UserError(f"{where}: config {config} not found (paths are relative to the "
                                f"recipe dir, here {os.getcwd()})")
            try:
                load_train_config(config, parse_overrides(tokens))
            except UserError as e:
                raise UserError(f"{where}: {e}") from None
        variants.append((name, config, tokens))
    names = [v[0] for v in variants]
    baseline = "baseline" if "baseline" in names else names[0]
    return variants, baseline


# ----------------------------------------------------------------------------- runs

def parse_run(spec):
    name, eq, exp_dir = spec.partition("=")
    if not eq or not name or not exp_dir:
        raise UserError(f"--runs: expected VARIANT/SEED=EXP_DIR, got {spec!r}")
    variant, slash, seed = name.rpartition("/")
    if not slash:
        variant, seed = name, ""
    if not variant:
        raise UserError(f"--runs: empty variant name in {spec!r}")
    return variant, seed, exp_dir


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as e:
        raise UserError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def load_runs(specs):
    """-> {variant: [{"seed", "exp_dir", "results", "blocks"}...]} in first-seen order."""
    runs, seen = {}, set()
    for spec in specs:
        variant, seed, exp_dir = parse_run(spec)
        if (variant, seed) in seen:
            raise UserError(f"--runs: {variant}/{seed} given twice")
        seen.add((variant, seed))
        res_path = os.path.join(exp_dir, "scores", "results.json")
        if not os.path.isfile(res_path):
            raise UserError(f"{res_path}: no such file (run stage 4 for {variant}/{seed})")
        results = _read_json(res_path)
        blocks = None
        blk_path = os.path.join(exp_dir, "block_eer.json")
        if os.path.isfile(blk_path):
            blocks = _read_json(blk_path)
            if not isinstance(blocks.get("blocks"), list):
                raise UserError(f"{blk_path}: no 'blocks' list")
        else:
            log.warning("%s: missing; %s/%s has no per-block EER", blk_path, variant, seed)
        runs.setdefault(variant, []).append(
            {"seed": seed, "exp_dir": exp_dir, "results": results, "blocks": blocks})
    return runs


# ----------------------------------------------------------------------------- statistics

def mean_std(values):
    """(mean, std with ddof=1 or None for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size >= 2 else None
    return mean, std


def summarize_values(values):
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "n": len(values), "values": [float(v) for v in values]}


def compare(stat, base):
    """Add diff / rel_change_pct / exceeds_spread of `stat` against `base` (in place)."""
    diff = stat["mean"] - base["mean"]
    stat["diff"] = diff
    stat["rel_change_pct"] = 100.0 * diff / base["mean"] if base["mean"] != 0 else None
    if stat["std"] is None or base["std"] is None:
        stat["exceeds_spread"] = None
    else:
        stat["exceeds_spread"] = bool(abs(diff) > stat["std"] + base["std"])
    return stat


def _metric_keys(metrics):
    return [k for k in metrics if k == "eer" or k.startswith("min_dcf_")]


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def aggregate_results(runs):
    """{variant: {trials: {system: {metric: stats}}}}."""
    out = {}
    for variant, seeds in runs.items():
        collected = {}
        for run in seeds:
            for trials, systems in run["results"].items():
                if not isinstance(systems, dict):
                    continue
                for system, metrics in systems.items():
                    if not isinstance(metrics, dict):
                        continue
                    for key in _metric_keys(metrics):
                        if _is_number(metrics[key]):
                            (collected.setdefault(trials, {}).setdefault(system, {})
                             .setdefault(key, []).append(metrics[key]))
        out[variant] = {t: {s: {k: summarize_values(v) for k, v in ms.items()}
                            for s, ms in ss.items()} for t, ss in collected.items()}
    return out


def aggregate_blocks(runs):
    """{variant: {"blocks": [{"block", eer stats...}], "embedding": stats or None,
    "trials": [names]}} for variants with at least one block_eer.json."""
    out = {}
    for variant, seeds in runs.items():
        per_block, emb, trial_names = {}, [], []
        for run in seeds:
            data = run["blocks"]
            if data is None:
                continue
            trial_names.append(data.get("trials"))
            for b in data["blocks"]:
                if isinstance(b, dict) and _is_number(b.get("eer")) and "block" in b:
                    per_block.setdefault(int(b["block"]), []).append(float(b["eer"]))
            e = data.get("embedding") or {}
            if _is_number(e.get("eer")):
                emb.append(float(e["eer"]))
        if not per_block:
            continue
        out[variant] = {
            "blocks": [{"block": k, **summarize_values(v)} for k, v in sorted(per_block.items())],
            "embedding": summarize_values(emb) if emb else None,
            "trials": sorted(set(t for t in trial_names if t)),
        }
    return out


def build_summary(runs, baseline):
    results = aggregate_results(runs)
    base = results[baseline]
    for variant, lists in results.items():
        for trials, systems in lists.items():
            for system, metrics in systems.items():
                for key, stat in metrics.items():
                    ref = base.get(trials, {}).get(system, {}).get(key)
                    if ref is not None:
                        compare(stat, ref)
    blocks = aggregate_blocks(runs)
    trial_sets = {tuple(v["trials"]) for v in blocks.values()}
    if len(trial_sets) > 1:
        log.warning("block_eer.json files use different trial lists: %s", sorted(trial_sets))
    return {
        "baseline": baseline,
        "runs": {v: {r["seed"]: r["exp_dir"] for r in seeds} for v, seeds in runs.items()},
        "variants": {v: {"seeds": [r["seed"] for r in seeds], "results": results[v],
                         "block_eer": blocks.get(v)} for v, seeds in runs.items()},
    }


# ----------------------------------------------------------------------------- report

def plus_minus(stat, fmt):
    if stat is None:
        return "–"
    if stat["std"] is None:
        return format(stat["mean"], fmt)
    return f"{format(stat['mean'], fmt)} ± {format(stat['std'], fmt)}"


def _flag(v):
    return {True: "yes", False: "no", None: "–"}[v]


def _sorted_systems(systems):
    return sorted(systems, key=lambda s: (SYSTEM_ORDER.index(s) if s in SYSTEM_ORDER
                                          else len(SYSTEM_ORDER), s))


def format_markdown(summary):
    baseline = summary["baseline"]
    variants = summary["variants"]
    lines = ["# MFCon comparison", "",
             f"Baseline: `{baseline}`. Mean ± std over seeds (ddof=1); EER in %. "
             "Δ EER = relative change of the mean EER vs the baseline; "
             "gap > spread: |mean − mean_base| > std + std_base (– with a single seed).", ""]
    lines += ["| variant | seeds | runs |", "|---|---|---|"]
    for v, info in summary["runs"].items():
        lines.append(f"| {v} | {len(info)} | " + ", ".join(
            f"{s or '-'}: `{d}`" for s, d in info.items()) + " |")
    lines.append("")
    trial_lists = list(dict.fromkeys(t for v in variants.values() for t in v["results"]))
    for trials in trial_lists:
        dcf_keys = sorted({k for v in variants.values()
                           for s in v["results"].get(trials, {}).values()
                           for k in s if k.startswith("min_dcf_")},
                          key=lambda k: float(k[len("min_dcf_"):]))
        systems = _sorted_systems({s for v in variants.values()
                                   for s in v["results"].get(trials, {})})
        lines += [f"## {trials}", ""]
        head = ["variant", "system", "n", "EER (%)", "Δ EER (%)", "gap > spread"]
        head += [f"minDCF {k[len('min_dcf_'):]}" for k in dcf_keys]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for system in systems:
            for v, info in variants.items():
                ms = info["results"].get(trials, {}).get(system)
                if not ms or "eer" not in ms:
                    continue
                eer = ms["eer"]
                rel = eer.get("rel_change_pct")
                if v == baseline:
                    rel_s, flag = "(baseline)", ""
                else:
                    rel_s = "–" if rel is None else f"{rel:+.2f}"
                    flag = _flag(eer.get("exceeds_spread"))
                row = [v, system, str(eer["n"]), plus_minus(eer, ".3f"), rel_s, flag]
                row += [plus_minus(ms.get(k), ".4f") for k in dcf_keys]
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    blocks = {v: info["block_eer"] for v, info in variants.items() if info["block_eer"]}
    if blocks:
        names = sorted({t for b in blocks.values() for t in b["trials"]})
        ks = sorted({b["block"] for v in blocks.values() for b in v["blocks"]})
        lines += ["## EER (%) per block", "",
                  f"Cosine on [mean, std]-pooled block outputs (test-set mean subtracted), "
                  f"trials: {', '.join(names) or '?'}. Blocks numbered from 1.", ""]
        head = ["variant", "n"] + [f"block {k}" for k in ks] + ["embedding"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v, b in blocks.items():
            by_k = {x["block"]: x for x in b["blocks"]}
            n = max(x["n"] for x in b["blocks"])
            row = [v, str(n)] + [plus_minus(by_k.get(k), ".2f") for k in ks]
            row.append(plus_minus(b["embedding"], ".2f"))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def render_docs_table(summary):
    """The docs' table of a comparison.json: per variant, cosine and normalized EER (mean ± std
    over seeds) with the relative change against the baseline and whether the gap exceeds
    the spread, and minDCF 0.01; the first trial list."""
    variants = summary["variants"]
    trials = next(iter(variants[summary["baseline"]]["results"]))
    systems = _sorted_systems({s for v in variants.values()
                               for s in v["results"].get(trials, {})})
    head = ["variant", "seeds"]
    for system in systems:
        head += [f"{system} EER (%)", "Δ (gap > spread)"]
    head.append(f"minDCF 0.01 ({systems[0]})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v, info in variants.items():
        res = info["results"].get(trials, {})
        row = [v, str(len(summary["runs"][v]))]
        for system in systems:
            eer = res.get(system, {}).get("eer")
            row.append(plus_minus(eer, ".2f"))
            if v == summary["baseline"] or not eer or eer.get("rel_change_pct") is None:
                row.append("–")
            else:
                row.append(f"{eer['rel_change_pct']:+.1f}% ({_flag(eer.get('exceeds_spread'))})")
        row.append(plus_minus(res.get(systems[0], {}).get("min_dcf_0.01"), ".3f"))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def block_series(summary, variants=None):
    """plot_block_curves series (mean ± std per block, embedding) of the given variants (all
    by default) that have block EERs."""
    series = []
    for v in variants or list(summary["variants"]):
        b = summary["variants"][v]["block_eer"]
        if not b:
            continue
        emb = b["embedding"]
        series.append({"label": f"{v} (n={max(x['n'] for x in b['blocks'])})",
                       "blocks": [x["block"] for x in b["blocks"]],
                       "eer": [x["mean"] for x in b["blocks"]],
                       "std": [x["std"] for x in b["blocks"]],
                       "embedding": emb["mean"] if emb else None,
                       "embedding_std": emb["std"] if emb else None})
    return series


def plot_blocks(summary, path):
    series = block_series(summary)
    if not series:
        return None
    return plot_block_curves(series, path, title="EER per block (mean ± std over seeds)")


# ----------------------------------------------------------------------------- main

def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.runs or not args.out_dir:
        parser.error("--runs and --out_dir are required")
    runs = load_runs(args.runs)
    baseline = args.baseline or ("baseline" if "baseline" in runs else next(iter(runs)))
    if baseline not in runs:
        raise UserError(f"--baseline {baseline!r} is not among the run variants "
                        f"({', '.join(runs)})")
    print(write_comparison(runs, baseline, args.out_dir, args.plot))
    log.info("comparison -> %s", os.path.join(args.out_dir, "comparison.md"))
    return 0


def write_comparison(runs, baseline, out_dir, plot=True):
    """OUT_DIR/comparison.{json,md} (and block_eer.png) of load_runs' runs; returns the text."""
    runs = {baseline: runs[baseline], **{v: r for v, r in runs.items() if v != baseline}}
    summary = build_summary(runs, baseline)
    os.makedirs(out_dir, exist_ok=True)
    with atomic_write(os.path.join(out_dir, "comparison.json")) as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    text = format_markdown(summary)
    if plot and plot_blocks(summary, os.path.join(out_dir, "block_eer.png")):
        text += "\n![EER per block](block_eer.png)\n"
    with atomic_write(os.path.join(out_dir, "comparison.md")) as f:
        f.write(text)
    return text


if __name__ == "__main__":
    run_main(main)
