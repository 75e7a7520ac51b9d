"""The lambda study: how MFCon's gain and its best weight scale with the number of speakers.

    bash local/run_study.sh conf/studies/lambda_speakers.yaml     # the runs, then this report

Per point (a setting of the study; `<name>_2x` trains the baseline of `<name>` twice as long):
  every variant      cosine and AS-norm EER, mean ± std over seeds (comparison.json)
  best lambda        the constant (mfcon_l<lambda>) with the lowest mean cosine EER; its spread:
                     the lowest and highest of each seed's own best constant
  gain               relative EER change of the best constant against the baseline, per seed
                     (same seed) and its mean ± std, for cosine and AS-norm
  adaptive           every MFCon variant that is not a constant (mfcon_grad_ratio): its gain
                     against the baseline, per seed, and its lambda's trajectory
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
HELDOUT = "heldout"          # settings named heldout*: the rule against the baseline
GOAL_PCT = -10.0             # the held-out goal: every seed better, mean gain at least 10%
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
    points, heldout = [], []
    for name, path in comparisons.items():
        if name.endswith("_2x"):
            continue
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
        setting = study.settings[name]
        if name.startswith(HELDOUT):
            heldout.append(heldout_check(setting, summary))
        else:
            points.append(point(setting, summary, comparisons.get(name + "_2x")))
    points.sort(key=lambda p: p["speakers"])
    return {"points": points, "heldout": heldout,
            "command": f"bash local/run_study.sh {study.path}"}


def point(setting, summary, control_path):
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
    out["adaptive_gain_pct"] = {
        v: relative_gains(_by_seed(variants, summary["baseline"], "cosine"),
                          _by_seed(variants, v, "cosine"))
        for v in variants if v != summary["baseline"] and v not in constants.values()}
    out["diagnostics"] = {v: last_epoch(_run_dirs(summary, v)) for v in variants}
    out["trajectory"] = {v: trajectory(_run_dirs(summary, v)) for v in variants}
    out["convergence"] = convergence(summary, control_path)
    return out


def heldout_check(setting, summary):
    """The rule's variant (the one that is not the baseline) against the baseline, per seed."""
    variants, baseline = summary["variants"], summary["baseline"]
    rule = next(v for v in variants if v != baseline)
    gains = {s: relative_gains(_by_seed(variants, baseline, s), _by_seed(variants, rule, s))
             for s in SYSTEMS}
    every_seed_better = all(g < 0 for g in gains["cosine"]["values"])
    return {"setting": setting.name, "title": setting.title, "rule": rule,
            "speakers": _count_lines(os.path.join(setting.data, "train", "spk2utt")),
            "variants": {v: {s: _eer(variants, v, s) for s in SYSTEMS}
                         for v in (baseline, rule)},
            "gain_pct": gains, "every_seed_better": every_seed_better,
            "goal_met": every_seed_better and gains["cosine"]["mean"] <= GOAL_PCT}


def _count_lines(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _eer(variants, variant, system):
    """{mean, std, values} of the first trial list's EER, or None."""
    results = variants[variant]["results"]
    stat = results.get(next(iter(results)), {}).get(system, {}).get("eer")
    return None if stat is None else {k: stat[k] for k in ("mean", "std", "values")}


def _by_seed(variants, variant, system):
    """{seed: EER} of a variant (seeds as the comparison lists them)."""
    stat = _eer(variants, variant, system)
    return dict(zip(variants[variant]["seeds"], stat["values"]))


def relative_gains(base, run):
    """Per seed that both have: 100 (run / base - 1); with the mean and std (ddof 1)."""
    seeds = [s for s in base if s in run]
    rel = np.array([100.0 * (run[s] / base[s] - 1.0) for s in seeds])
    return {"mean": float(rel.mean()), "values": rel.tolist(), "seeds": seeds,
            "std": float(rel.std(ddof=1)) if len(rel) > 1 else None}


def best_constant(variants, baseline, constants):
    """The best constant by mean cosine EER over the seeds every constant has (a variant with
    an extra seed is not favoured by it), each seed's own best, and the best constant's gains
    against the baseline of the same seed."""
    lams = sorted(constants)
    cosine = {lam: _by_seed(variants, constants[lam], "cosine") for lam in lams}
    common = [s for s in cosine[lams[0]] if all(s in cosine[lam] for lam in lams)]
    # compared on the seeds all constants have (each constant's own seeds if none is shared)
    best = min(lams, key=lambda lam: np.mean([cosine[lam][s] for s in common]
                                             or list(cosine[lam].values())))
    seed_best = [min(lams, key=lambda lam: cosine[lam][s]) for s in common]
    gains = {system: relative_gains(_by_seed(variants, baseline, system),
                                    _by_seed(variants, constants[best], system))
             for system in SYSTEMS}
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


def _run_dirs(summary, variant):
    """The exp dirs of a variant's runs, as the comparison lists them (one per seed)."""
    return list(summary["runs"][variant].values())


def last_epoch(run_dirs):
    """Mean over runs of the last epoch's diagnostics (None where no run has any)."""
    lasts = [rows[-1] for rows in (_rows(os.path.join(d, "diagnostics.jsonl"))
                                   for d in run_dirs) if rows]
    if not lasts:
        return None
    keys = [k for k in lasts[0] if all(k in r for r in lasts) and k not in ("epoch", "step")]
    return {k: float(np.mean([r[k] for r in lasts])) for k in keys}


def trajectory(run_dirs):
    """Mean over runs of: the applied and raw gradient ratio of the first measured epoch
    (the start, before the classifier fits), the median applied ratio over the epochs whose
    training accuracy is below 0.99 (while the classifier still learns), and the number of
    those epochs; lambda likewise (start, median while learning, last epoch: it moves for an
    adaptive weighting); None where no run has diagnostics."""
    per_run = []
    for d in run_dirs:
        rows = [r for r in _rows(os.path.join(d, "diagnostics.jsonl")) if "ratio" in r]
        if not rows:
            continue
        learning = [r for r in rows if r.get("train_acc", 0.0) < 0.99] or rows[:1]
        per_run.append({"ratio_start": rows[0]["ratio"], "raw_start": rows[0]["raw_ratio"],
                        "ratio_learning": float(np.median([r["ratio"] for r in learning])),
                        "learning_epochs": len(learning),
                        "lambda_start": rows[0]["lambda"],
                        "lambda_learning": float(np.median([r["lambda"] for r in learning])),
                        "lambda_last": rows[-1]["lambda"]})
    if not per_run:
        return None
    return {k: float(np.mean([r[k] for r in per_run])) for k in per_run[0]}


def _validation_curves(run_dirs):
    curves = []
    for d in run_dirs:
        path = os.path.join(d, "validation.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                curves.append([r["eer"] for r in json.load(f)["epochs"]])
    return curves


def convergence(summary, control_path):
    """The baseline's validation EER: last epoch, change over the last third, and at 2x."""
    curves = _validation_curves(_run_dirs(summary, summary["baseline"]))
    if not curves:
        return None
    third = max(1, len(curves[0]) // 3)
    out = {"epochs": len(curves[0]),
           "last": float(np.mean([c[-1] for c in curves])),
           "last_third_change": float(np.mean([c[-1] - c[-1 - third] for c in curves]))}
    if control_path:
        with open(control_path, encoding="utf-8") as f:
            ctrl = json.load(f)
        long = _validation_curves(_run_dirs(ctrl, ctrl["baseline"]))
        if long:
            out["last_2x"] = float(np.mean([c[-1] for c in long]))
        out["test_2x"] = {s: _eer(ctrl["variants"], ctrl["baseline"], s) for s in SYSTEMS}
    return out


# ----------------------------------------------------------------------------- rendering

def render(data):
    """The docs tables: per point, EER of every variant; then gain and best lambda."""
    parts = []
    for p in data["points"]:
        rows = []
        for v, res in p["variants"].items():
            rows.append([v, _n_seeds(res)] + [plus_minus(*_ms(res[s])) for s in SYSTEMS])
        parts.append(f"**{p['title']}** ({p['speakers']} speakers; AS-norm cohort "
                     f"{p['cohort']} speaker means)\n\n"
                     + markdown_table(["variant", "seeds", "cosine EER (%)", "AS-norm EER (%)"],
                                      rows))
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


def render_headline(data):
    """The README's table: per point, the baseline against MFCon at the point's best constant
    lambda; then the held-out corpus, the baseline against the rule."""
    rows = []
    for p in data["points"]:
        if "best_lambda" not in p:
            continue
        base, best = p["variants"]["baseline"], p["variants"][f"mfcon_l{p['best_lambda']:g}"]
        rows.append([p["speakers"], f"{p['best_lambda']:g}",
                     f"{_n_seeds(base)} / {_n_seeds(best)}",
                     plus_minus(*_ms(base["cosine"])), plus_minus(*_ms(best["cosine"])),
                     f"{p['gain_pct']['cosine']['mean']:+.1f}%",
                     f"{p['gain_pct']['asnorm']['mean']:+.1f}%"])
    for h in data.get("heldout", []):
        base, rule = (h["variants"][v] for v in h["variants"])
        rows.append([f"{h['speakers']}, held out", f"rule ({h['rule']})",
                     f"{_n_seeds(base)} / {_n_seeds(rule)}",
                     plus_minus(*_ms(base["cosine"])), plus_minus(*_ms(rule["cosine"])),
                     f"{h['gain_pct']['cosine']['mean']:+.1f}%",
                     f"{h['gain_pct']['asnorm']['mean']:+.1f}%"])
    return markdown_table(["training speakers", "lambda", "seeds", "baseline EER (%)",
                           "MFCon EER (%)", "EER change, cosine", "EER change, AS-norm"], rows)


def render_diagnostics(data):
    """Per point and variant: the gradient ratio at the start and while the classifier
    learns, and the last epoch's SupCon relative to chance and training accuracy."""
    rows = []
    for p in data["points"]:
        for v, traj in p.get("trajectory", {}).items():
            last = p["diagnostics"].get(v) or {}
            if traj is None:
                continue
            supcon = [x for k, x in last.items() if k.startswith("supcon_rel_chance_")]
            best = " (best)" if v == f"mfcon_l{p.get('best_lambda', -1):g}" else ""
            rows.append([p["speakers"], v + best, f"{traj['raw_start']:.3f}",
                         f"{traj['ratio_start']:.2f}", f"{traj['ratio_learning']:.2f}",
                         f"{traj['learning_epochs']:.0f}",
                         f"{np.mean(supcon):.3f}" if supcon else "–",
                         f"{last.get('train_acc', float('nan')):.3f}"])
    return markdown_table(["speakers", "variant", "raw ratio, start", "applied ratio, start",
                           "applied ratio while learning", "epochs learning (acc < 0.99)",
                           "SupCon / chance, last epoch", "train acc, last epoch"], rows)


def render_adaptive(data):
    """Per point, every adaptive MFCon variant against the baseline and the best constant:
    EER, gain, and its lambda at the start, while the classifier learns and at the end."""
    rows = []
    for p in data["points"]:
        best = p["variants"].get(f"mfcon_l{p.get('best_lambda', -1):g}")
        for v, gain in p.get("adaptive_gain_pct", {}).items():
            traj = p["trajectory"].get(v) or {}
            lam = [traj.get(k) for k in ("lambda_start", "lambda_learning", "lambda_last")]
            rows.append([p["speakers"], v, _n_seeds(p["variants"][v]),
                         plus_minus(*_ms(p["variants"][v]["cosine"])),
                         plus_minus(gain["mean"], gain["std"], ".1f"),
                         f"{plus_minus(*_ms(best['cosine']))} (lambda {p['best_lambda']:g})"
                         if best else "–",
                         " / ".join(f"{x:.2g}" for x in lam) if None not in lam else "–",
                         f"{traj['ratio_learning']:.2f}" if traj else "–"])
    return markdown_table(["speakers", "variant", "seeds", "cosine EER (%)",
                           "gain vs baseline (%)", "best constant's EER (%)",
                           "lambda: start / while learning / last epoch",
                           "applied ratio while learning"], rows)


def render_convergence(data):
    """Per point: the baseline's validation EER at the last epoch and its change over the last
    third of the epochs, and the test EER of the baseline trained as long and twice as long."""
    rows = []
    for p in data["points"]:
        c = p.get("convergence")
        if not c:
            continue
        base = next(iter(p["variants"]))
        test_2x = (c.get("test_2x") or {}).get("cosine")
        rows.append([p["speakers"], c["epochs"], f"{c['last']:.2f}",
                     f"{c['last_third_change']:+.2f}",
                     f"{c['last_2x']:.2f}" if "last_2x" in c else "–",
                     plus_minus(*_ms(p["variants"][base]["cosine"])),
                     plus_minus(*_ms(test_2x)) if test_2x else "–"])
    return markdown_table(["speakers", "epochs", "validation EER, last epoch",
                           "change over the last third", "validation EER, 2x epochs",
                           "test cosine EER", "test cosine EER, 2x epochs"], rows)


def render_heldout(data):
    """The rule against the baseline on the held-out corpus: EER per seed and the gains."""
    parts = []
    for h in data.get("heldout", []):
        base, rule = list(h["variants"])
        rows = []
        for v in (base, rule):
            res = h["variants"][v]
            rows.append([v] + [" / ".join(f"{x:.2f}" for x in res[s]["values"])
                               for s in SYSTEMS] + [plus_minus(*_ms(res[s])) for s in SYSTEMS])
        g = h["gain_pct"]
        rows.append(["gain (%)"] + [" / ".join(f"{x:+.1f}" for x in g[s]["values"])
                                    for s in SYSTEMS]
                    + [plus_minus(g[s]["mean"], g[s]["std"], ".1f") for s in SYSTEMS])
        verdict = ("met" if h["goal_met"] else "not met") + \
            f" (every seed better: {'yes' if h['every_seed_better'] else 'no'})"
        parts.append(f"**{h['title']}** ({h['speakers']} training speakers; seeds "
                     f"{', '.join(g['cosine']['seeds'])}; the goal, every seed better and a mean "
                     f"cosine EER change of {GOAL_PCT:g}% or below: {verdict})\n\n"
                     + markdown_table(["variant", "cosine EER per seed", "AS-norm EER per seed",
                                       "cosine mean", "AS-norm mean"], rows))
    return "\n".join(parts)


def _n_seeds(result):
    return str(len(result["cosine"]["values"])) if result.get("cosine") else "0"


def _ms(stat):
    return (None, None) if stat is None else (stat["mean"], stat["std"])


def plot(data, path):
    """Gain (best constant vs baseline) and best lambda against speakers, with error bars (the
    spread of the per-seed gains; the seeds' own best lambdas); the adaptive variants' gains
    and the held-out corpus's rule as separate series."""
    from wespeaker_mfcon.analysis.plots import plot_panels

    pts = [p for p in data["points"] if "best_lambda" in p]
    if not pts:
        return None
    x = [p["speakers"] for p in pts]
    gain = {f"best constant, {s}": (x, [p["gain_pct"][s]["mean"] for p in pts],
                                    [p["gain_pct"][s]["std"] for p in pts]) for s in SYSTEMS}
    grid = [p for p in pts if len(p["lambdas"]) >= 3]     # a best needs a grid to be one
    lam = [p["best_lambda"] for p in grid]
    lam_err = [[b - min(p["seed_best_lambda"]) for b, p in zip(lam, grid)],
               [max(p["seed_best_lambda"]) - b for b, p in zip(lam, grid)]]
    lambdas = {"best constant": ([p["speakers"] for p in grid], lam, lam_err)}
    adaptive = [(p["speakers"], v, g) for p in pts
                for v, g in p.get("adaptive_gain_pct", {}).items()]
    for v in dict.fromkeys(v for _, v, _ in adaptive):
        rows = [(n, g) for n, w, g in adaptive if w == v]
        gain[f"{v}, cosine"] = ([n for n, _ in rows], [g["mean"] for _, g in rows],
                                [g["std"] for _, g in rows])
    for h in data.get("heldout", []):
        g = h["gain_pct"]["cosine"]
        gain[f"held out, rule ({h['rule']}), cosine"] = ([h["speakers"]], [g["mean"]], [g["std"]])
    panels = [("EER change vs the baseline (%)", gain),
              ("best constant lambda (bars: each seed's best)", lambdas, {"logy": True})]
    return plot_panels(panels, path, xlabel="training speakers", logx=True)
