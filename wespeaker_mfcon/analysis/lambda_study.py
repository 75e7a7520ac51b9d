"""The lambda study: how MFCon's gain and its best weight scale with the number of speakers.

    bash local/run_study.sh conf/studies/lambda_speakers.yaml     # the runs, then this report

Per point (a setting of the study; `<name>_2x` trains the baseline of `<name>` twice as long):
  every variant      cosine and AS-norm EER, mean ± std over seeds (comparison.json)
  best lambda        the constant (mfcon_l<lambda>) with the lowest mean cosine EER; its spread:
                     the lowest and highest of each seed's own best constant
  gain               relative EER change of the best constant against the baseline, per seed
                     (same seed) and its mean ± std, for cosine and AS-norm
  diagnostics        the last epoch of diagnostics.jsonl (training/diagnostics.py), mean over
                     seeds: the applied and raw gradient ratio, per block, SupCon relative to
                     chance, training accuracy, lambda; for the baseline, training accuracy
  convergence        the baseline's validation EER (validation.json) at its last epoch, its
                     change over the last third of the epochs, and the same trained 2x as long
Writes OUT/lambda_speakers.json, .md and .png (gain and best lambda against speakers).
"""

import json
import os
import re

import numpy as np

from wespeaker_mfcon.analysis.tables import markdown_table, plus_minus
from wespeaker_mfcon.utils.file_utils import atomic_write

CONSTANT = re.compile(r"^mfcon_l(\d+(\.\d+)?)$")
SYSTEMS = ("cosine", "asnorm")


def write_study_report(study, comparisons):
    """The study's report (analysis/study.py, report: lambda_speakers)."""
    data = collect(study, comparisons)
    base = os.path.join(study.out, "lambda_speakers")
    with atomic_write(base + ".json") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    with atomic_write(base + ".md") as f:
        f.write(render(data))
    plot(data, base + ".png")
    return data


def collect(study, comparisons):
    """{"points": [...], "command": ...} of every setting with a comparison."""
    points = []
    for name, path in comparisons.items():
        if name.endswith("_2x"):
            continue
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
        setting = study.settings[name]
        control = comparisons.get(name + "_2x")
        points.append(point(setting, summary, study, control))
    points.sort(key=lambda p: p["speakers"])
    return {"points": points,
            "command": f"bash local/run_study.sh {study.path}"}


def point(setting, summary, study, control_path):
    variants = summary["variants"]
    constants = {float(m.group(1)): v for v in variants
                 if (m := CONSTANT.match(v))}
    out = {"setting": setting.name, "title": setting.title,
           "speakers": _count_lines(os.path.join(setting.data, "train", "spk2utt")),
           "seeds": variants[summary["baseline"]]["seeds"],
           "variants": {v: {s: _eer(variants, v, s) for s in SYSTEMS} for v in variants}}
    out["cohort"] = out["speakers"]          # AS-norm's cohort: one mean per training speaker
    if constants:
        out.update(best_constant(variants, summary["baseline"], constants))
    out["diagnostics"] = {v: last_epoch(study, setting, v, out["seeds"]) for v in variants}
    out["convergence"] = convergence(study, setting, summary["baseline"], out["seeds"],
                                     control_path)
    return out


def _count_lines(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _eer(variants, variant, system):
    """{mean, std, values} of the first trial list's EER, or None."""
    results = variants[variant]["results"]
    stat = results.get(next(iter(results)), {}).get(system, {}).get("eer")
    return None if stat is None else {k: stat[k] for k in ("mean", "std", "values")}


def best_constant(variants, baseline, constants):
    """The best constant by mean cosine EER, the seeds' own best, and the gains."""
    def values(v, system):
        return np.array(_eer(variants, v, system)["values"])

    lams = sorted(constants)
    means = [values(constants[lam], "cosine").mean() for lam in lams]
    best = lams[int(np.argmin(means))]
    per_seed = np.stack([values(constants[lam], "cosine") for lam in lams])   # (lambdas, seeds)
    seed_best = [lams[i] for i in per_seed.argmin(axis=0)]
    gains = {}
    for system in SYSTEMS:
        rel = 100.0 * (values(constants[best], system) / values(baseline, system) - 1.0)
        gains[system] = {"mean": float(rel.mean()), "values": rel.tolist(),
                         "std": float(rel.std(ddof=1)) if len(rel) > 1 else None}
    return {"lambdas": lams, "best_lambda": best, "seed_best_lambda": seed_best,
            "at_edge": best in (lams[0], lams[-1]), "gain_pct": gains}


def _rows(path):
    """The rows of a run's diagnostics.jsonl, one per epoch (the last line of an epoch wins)."""
    if not os.path.isfile(path):
        return []
    rows = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rows[row["epoch"]] = row
    return [rows[e] for e in sorted(rows)]


def last_epoch(study, setting, variant, seeds):
    """Mean over seeds of the last epoch's diagnostics (None where a run has none)."""
    lasts = []
    for seed in seeds:
        rows = _rows(os.path.join(study.out, setting.name, variant, f"seed{seed}",
                                  "diagnostics.jsonl"))
        if rows:
            lasts.append(rows[-1])
    if not lasts:
        return None
    keys = [k for k in lasts[0] if all(k in r for r in lasts) and k not in ("epoch", "step")]
    return {k: float(np.mean([r[k] for r in lasts])) for k in keys}


def _validation(study, setting_name, variant, seed):
    path = os.path.join(study.out, setting_name, variant, f"seed{seed}", "validation.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [r["eer"] for r in json.load(f)["epochs"]]


def convergence(study, setting, baseline, seeds, control_path):
    """The baseline's validation EER: last epoch, change over the last third, and at 2x."""
    curves = [c for c in (_validation(study, setting.name, baseline, s) for s in seeds) if c]
    if not curves:
        return None
    third = max(1, len(curves[0]) // 3)
    out = {"epochs": len(curves[0]),
           "last": float(np.mean([c[-1] for c in curves])),
           "last_third_change": float(np.mean([c[-1] - c[-1 - third] for c in curves]))}
    if control_path:
        long = [c for c in (_validation(study, setting.name + "_2x", baseline, s)
                            for s in seeds) if c]
        if long:
            out["last_2x"] = float(np.mean([c[-1] for c in long]))
        with open(control_path, encoding="utf-8") as f:
            ctrl = json.load(f)
        out["test_2x"] = {s: _eer(ctrl["variants"], ctrl["baseline"], s) for s in SYSTEMS}
    return out


# ----------------------------------------------------------------------------- rendering

def render(data):
    """The docs tables: per point, EER of every variant; then gain and best lambda."""
    parts = []
    for p in data["points"]:
        rows = []
        for v, res in p["variants"].items():
            rows.append([v] + [plus_minus(*_ms(res[s])) for s in SYSTEMS])
        parts.append(f"**{p['title']}** ({p['speakers']} speakers; AS-norm cohort "
                     f"{p['cohort']} speaker means; seeds {', '.join(p['seeds'])})\n\n"
                     + markdown_table(["variant", "cosine EER (%)", "AS-norm EER (%)"], rows))
    rows = []
    for p in data["points"]:
        if "best_lambda" not in p:
            continue
        g = p["gain_pct"]
        rows.append([p["speakers"], f"{p['best_lambda']:g}" + (" (edge)" if p["at_edge"] else ""),
                     " / ".join(f"{x:g}" for x in p["seed_best_lambda"]),
                     plus_minus(g["cosine"]["mean"], g["cosine"]["std"], ".1f"),
                     plus_minus(g["asnorm"]["mean"], g["asnorm"]["std"], ".1f")])
    parts.append(markdown_table(["speakers", "best lambda", "each seed's best",
                                 "gain, cosine (%)", "gain, AS-norm (%)"], rows))
    return "\n".join(parts)


def _ms(stat):
    return (None, None) if stat is None else (stat["mean"], stat["std"])


def plot(data, path):
    """Gain (best constant vs baseline) and best lambda against speakers, with error bars."""
    from wespeaker_mfcon.analysis.plots import plot_panels

    pts = [p for p in data["points"] if "best_lambda" in p]
    if not pts:
        return None
    x = [p["speakers"] for p in pts]
    gain = {s: ([p["gain_pct"][s]["mean"] for p in pts], [p["gain_pct"][s]["std"] for p in pts])
            for s in SYSTEMS}
    lam = [p["best_lambda"] for p in pts]
    lam_err = [[b - min(p["seed_best_lambda"]) for b, p in zip(lam, pts)],
               [max(p["seed_best_lambda"]) - b for b, p in zip(lam, pts)]]
    panels = [("EER change of the best constant vs the baseline (%)",
               {f"{s}": (x, *gain[s]) for s in SYSTEMS}),
              ("best constant lambda (bars: each seed's best)", {"best lambda": (x, lam, lam_err)})]
    return plot_panels(panels, path, xlabel="training speakers", logx=True)
