"""The MFCon weighting study across settings: every scheme against the baseline and the oracle.

    python -m wespeaker_mfcon.analysis.weighting_table \
        --setting "40 spk, small=exp/weighting_study/t80/comparison.json" \
        --setting "200 spk, small=exp/weighting_study/s200/comparison.json" \
        --schemes grad_ratio loss_ratio uncertainty [--out exp/weighting_study/table.md] \
        [--plot exp/weighting_study/block_eer.png]

Each setting is the comparison.json of analysis/summarize_comparison.py over its runs. In it:
- the baseline is the variant that file names as its baseline;
- a constant lambda is a variant whose name ends in _l<lambda> (mfcon_l3.0, aug_mfcon_l10;
  "mfcon", lambda 0.01 in mfcon_lambda.yaml, is not one);
- a scheme S is the variant whose name ends in _S (mfcon_grad_ratio, aug_mfcon_grad_ratio).
The oracle of a setting is its constant lambda with the lowest mean cosine EER.

Per setting and variant the table gives cosine EER, AS-norm EER and minDCF 0.01 (mean ± std
over seeds), the mean EER of every block, and the change against the baseline (relative) and
against the oracle (points), each with "gap > spread": |diff| > std + std_ref.

A scheme passes (the issue's rule for making it a default) when in every setting it is within
the spread of the oracle or better, and below the baseline by more than the spread (cosine EER);
it fails when it misses in one setting, and is undecided while a setting lacks it or an oracle.
"""

import argparse
import json
import re

from wespeaker_mfcon.analysis.summarize_comparison import _flag, block_series, compare, plus_minus
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.analysis.plots import plot_block_panels

CONSTANT = re.compile(r"(^|_)l(\d+(\.\d+)?)$")


def load_setting(spec):
    """'NAME=PATH' -> (name, comparison summary)."""
    if "=" not in spec:
        raise UserError(f"--setting {spec}: expected NAME=comparison.json")
    name, path = spec.rsplit("=", 1)
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    if summary.get("baseline") not in summary.get("variants", {}):
        raise UserError(f"{path}: not a comparison.json (no baseline variant)")
    return name, summary


def metric(summary, variant, system, key):
    """The {mean, std, n} of one metric on the (first) trial list, or None when it is missing."""
    results = summary["variants"][variant]["results"]
    return results.get(next(iter(results), None), {}).get(system, {}).get(key)


def find_variants(summary, schemes):
    """(baseline, {lambda: variant}, {scheme: variant or None}, oracle or None) of one setting.
    The oracle is the constant-lambda variant with the lowest mean cosine EER."""
    names = list(summary["variants"])
    constants = {float(m.group(2)): v for v in names if (m := CONSTANT.search(v))}
    found = {s: next((v for v in names if v.endswith("_" + s) or v == s), None)
             for s in schemes}
    eers = [(eer["mean"], v) for v in constants.values()
            if (eer := metric(summary, v, "cosine", "eer")) is not None]
    oracle = min(eers)[1] if eers else None
    return summary["baseline"], constants, found, oracle


def versus(summary, variant, ref, system):
    """compare() of variant's EER against ref's: diff, rel_change_pct, exceeds_spread."""
    if ref is None:
        return None
    stat, base = metric(summary, variant, system, "eer"), metric(summary, ref, system, "eer")
    if stat is None or base is None:
        return None
    return compare(dict(stat), base)


def scheme_passes(summary, variant, baseline, oracle):
    """True / False under the rule above; None when the scheme or the oracle was not run."""
    if variant is None or oracle is None:
        return None
    vs_base = versus(summary, variant, baseline, "cosine")
    vs_oracle = versus(summary, variant, oracle, "cosine")
    if vs_base is None or vs_oracle is None or vs_base["exceeds_spread"] is None:
        return None
    beats_base = vs_base["diff"] < 0 and vs_base["exceeds_spread"]
    near_oracle = vs_oracle["diff"] <= 0 or not vs_oracle["exceeds_spread"]
    return bool(beats_base and near_oracle)


def _change(stat, relative):
    if stat is None:
        return "–"
    value = f"{stat['rel_change_pct']:+.1f}%" if relative else f"{stat['diff']:+.2f}"
    return f"{value} ({_flag(stat['exceeds_spread'])})"


def _blocks(summary, variant):
    blocks = summary["variants"][variant].get("block_eer")
    if not blocks:
        return "–"
    text = " / ".join(f"{b['mean']:.1f}" for b in blocks["blocks"])
    emb = blocks.get("embedding")
    return text + (f" (emb. {emb['mean']:.1f})" if emb else "")


def setting_rows(summary, schemes):
    """Table rows (lists of cells) of one setting: baseline, constants by lambda, schemes."""
    baseline, constants, found, oracle = find_variants(summary, schemes)
    order = [baseline] + [constants[k] for k in sorted(constants)]
    order += [v for v in found.values() if v is not None and v not in order]
    rows = []
    for v in order:
        label = v + (" (oracle)" if v == oracle else "")
        cells = [label, str(len(summary["variants"][v]["seeds"]))]
        for system in ("cosine", "asnorm"):
            cells += [plus_minus(metric(summary, v, system, "eer"), ".2f"),
                      "–" if v == baseline else _change(versus(summary, v, baseline, system), True),
                      "–" if v == oracle else _change(versus(summary, v, oracle, system), False)]
        cells += [plus_minus(metric(summary, v, "cosine", "min_dcf_0.01"), ".3f"),
                  _blocks(summary, v)]
        rows.append(cells)
    return rows


def format_report(settings, schemes):
    head = ("| variant | seeds | cosine EER | Δ vs baseline | vs oracle | AS-norm EER | "
            "Δ vs baseline | vs oracle | minDCF 0.01 | block EERs (1 / 2 / ...) |")
    lines = ["EER in %, mean ± std over seeds. Δ vs baseline: relative change of the mean; "
             "vs oracle: difference of the means in points; (yes) when the gap exceeds the "
             "sum of the two stds.", ""]
    for name, summary in settings:
        lines += [f"### {name}", "", head, "|" + "---|" * 10]
        lines += ["| " + " | ".join(r) + " |" for r in setting_rows(summary, schemes)]
        lines.append("")
    lines += ["### Verdict (cosine EER: beats the baseline beyond the spread and is within the "
              "spread of the oracle or better, in every setting)", "",
              "| scheme | " + " | ".join(n for n, _ in settings) + " | passes |",
              "|" + "---|" * (len(settings) + 2)]
    roles = [find_variants(summary, schemes) for _, summary in settings]
    verdicts = {}
    for scheme in schemes:
        cells = [scheme_passes(summary, found[scheme], baseline, oracle)
                 for (_, summary), (baseline, _, found, oracle) in zip(settings, roles)]
        verdicts[scheme] = False if False in cells else None if None in cells else True
        text = {True: "yes", False: "no", None: "not run"}
        lines.append(f"| {scheme} | " + " | ".join(text[c] for c in cells)
                     + f" | {text[verdicts[scheme]].replace('not run', 'undecided')} |")
    return "\n".join(lines) + "\n", verdicts


def plot_settings(settings, schemes, path):
    """Block EER curves, one panel per setting: baseline, oracle and the schemes run there."""
    panels = []
    for name, summary in settings:
        baseline, _, found, oracle = find_variants(summary, schemes)
        shown = [baseline, oracle] + list(found.values())
        panels.append((name, block_series(summary, [v for v in shown if v is not None])))
    return plot_block_panels(panels, path)


def write_study_report(study, comparisons):
    """The report of a weighting study (analysis/study.py, report: weighting): OUT/table.md,
    OUT/table.md.json (verdicts) and OUT/block_eer.png over the settings that have runs."""
    import os

    settings = [load_setting(f"{study.settings[name].title}={path}")
                for name, path in comparisons.items()]
    write_report(settings, ["grad_ratio", "loss_ratio", "uncertainty"],
                 os.path.join(study.out, "table.md"), os.path.join(study.out, "block_eer.png"))


def write_report(settings, schemes, out=None, plot=None):
    """The markdown report (returned) and, when given, its files: OUT, OUT.json, the PNG."""
    report, verdicts = format_report(settings, schemes)
    if out:
        with atomic_write(out) as f:
            f.write(report)
        with atomic_write(out + ".json") as f:
            json.dump({"verdicts": verdicts, "settings": [n for n, _ in settings]}, f, indent=1)
    if plot:
        plot_settings(settings, schemes, plot)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", action="append", required=True, metavar="NAME=comparison.json")
    p.add_argument("--schemes", nargs="+", default=["grad_ratio", "loss_ratio", "uncertainty"])
    p.add_argument("--out", help="also write the report (markdown) and OUT.json (verdicts)")
    p.add_argument("--plot", help="PNG of the block EERs, one panel per setting")
    args = p.parse_args(argv)
    settings = [load_setting(s) for s in args.setting]
    print(write_report(settings, args.schemes, args.out, args.plot), end="")


if __name__ == "__main__":
    run_main(main)
