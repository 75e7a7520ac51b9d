"""WeSpeaker-style table of the post-training steps, mean ± std over seeds.

    python -m wespeaker_mfcon.analysis.steps_table --system MFCon=exp/steps/mfcon \
        --system baseline=exp/steps/baseline --seeds 1 2 3 [--trials trials] [--out T.md]

A system PREFIX has one run per seed: PREFIX/seedS (stages 2-4 and 7) and PREFIX/seedS_lm (its
large-margin fine-tuning, stage 6, then stages 3-4 and 7). The rows read their
scores/results.json:

    base        PREFIX/seedS      cosine      (Cllr: cosine_plain, the score calibrated alone)
    + AS-norm   PREFIX/seedS      asnorm      (Cllr: asnorm_plain)
    + LM        PREFIX/seedS_lm   asnorm      (Cllr: asnorm_plain)
    + QMF       PREFIX/seedS_lm   asnorm_qmf  (score + quality measures)

Cllr needs LLRs, so the rows before QMF give the Cllr of the plain (score-only) calibration of
stage 7: what the step does to calibration on its own. EER in %, minDCF at p_target 0.01.
"""

import argparse
import json
import os

from wespeaker_mfcon.analysis.summarize_comparison import plus_minus, summarize_values
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write

# row -> (run suffix, system for EER/minDCF, system for Cllr)
STEPS = (("base", "", "cosine", "cosine_plain"),
         ("+ AS-norm", "", "asnorm", "asnorm_plain"),
         ("+ LM", "_lm", "asnorm", "asnorm_plain"),
         ("+ QMF", "_lm", "asnorm_qmf", "asnorm_qmf"))
METRICS = (("EER (%)", "eer", ".2f"), ("minDCF0.01", "min_dcf_0.01", ".3f"),
           ("Cllr", "cllr", ".3f"), ("min Cllr", "min_cllr", ".3f"))


def read_results(run_dir, trials):
    path = os.path.join(run_dir, "scores", "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    if trials is None and len(results) == 1:
        trials = next(iter(results))
    if trials not in results:
        raise UserError(f"{path}: no trial list {trials!r} (has {sorted(results)}); "
                        "give --trials")
    return results[trials]


def metric_of(results, system, key, where):
    if system not in results or key not in results[system]:
        raise UserError(f"{where}: no {key} for {system} (run stage 7 on it)")
    return results[system][key]


def step_rows(prefix, seeds, trials):
    """[(step, {metric key: summary over seeds})] of one system."""
    rows = []
    for step, suffix, system, cal_system in STEPS:
        values = {key: [] for _, key, _ in METRICS}
        for seed in seeds:
            run = f"{prefix}/seed{seed}{suffix}"
            results = read_results(run, trials)
            for _, key, _ in METRICS:
                source = system if key in ("eer", "min_dcf_0.01") else cal_system
                values[key].append(metric_of(results, source, key, run))
        rows.append((step, {key: summarize_values(v) for key, v in values.items()}))
    return rows


def format_table(systems, seeds):
    head = "| system | step | " + " | ".join(name for name, _, _ in METRICS) + " |"
    lines = [f"{len(seeds)} seeds ({' '.join(map(str, seeds))}), mean ± std", "", head,
             "|" + "---|" * (len(METRICS) + 2)]
    for name, rows in systems:
        for step, stats in rows:
            cells = [plus_minus(stats[key], fmt) for _, key, fmt in METRICS]
            lines.append(f"| {name} | {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", action="append", required=True, metavar="NAME=PREFIX")
    p.add_argument("--seeds", nargs="+", required=True)
    p.add_argument("--trials", default=None, help="trial list name (default: the only one)")
    p.add_argument("--out", help="also write the table (markdown) and OUT.json here")
    args = p.parse_args(argv)
    systems = []
    for spec in args.system:
        if "=" not in spec:
            raise UserError(f"--system {spec}: expected NAME=PREFIX")
        name, prefix = spec.split("=", 1)
        systems.append((name, step_rows(prefix, args.seeds, args.trials)))
    table = format_table(systems, args.seeds)
    print(table, end="")
    if args.out:
        with atomic_write(args.out) as f:
            f.write(table)
        with atomic_write(args.out + ".json") as f:
            json.dump({name: dict(rows) for name, rows in systems}, f, indent=1)


if __name__ == "__main__":
    run_main(main)
