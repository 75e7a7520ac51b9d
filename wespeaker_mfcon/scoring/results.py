"""Stage 4's last step: EER / minDCF of score files, the results.json of an experiment, its
results table and DET plot.

compute_metrics writes, per score file, <out_dir>/<name>.result (EER in %, minDCF per
p_target), and merges into <out_dir>/results.json, atomically and under a lock (concurrent
runs may share it):
    {"<trial list>": {"cosine": {"eer": <EER in %>, "min_dcf_0.01": ..., "min_dcf_0.05": ...,
                                 "eer_threshold": ..., "num_trials": ...,
                                 "num_target": ..., "num_nontarget": ...},
                      "asnorm": {...}}}
The system is taken from the file name: a.score -> cosine, a.asnorm.score -> asnorm,
a.snorm.score -> snorm. <out_dir>/det.png holds one DET curve per score file. Stage 7
(scoring/calibrate.py) merges calibrated systems (cosine_plain, asnorm_qmf, ...) into the same
results.json, with "cllr", "min_cllr" (bits) and "act_dcf_<p>" beside EER and minDCF;
format_table shows those columns where present.
"""

import json
import logging
import os
from contextlib import contextmanager

from wespeaker_mfcon.scoring.metrics import act_dcf_key, dcf_key, evaluate
from wespeaker_mfcon.scoring.trials import parse_score_name, read_scores, trial_name
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write

log = logging.getLogger(__name__)


def format_result(trials, system, res, p_targets, path):
    """The text of a .result file: EER and minDCF of one score file."""
    lines = [f"score file: {path}",
             f"trials: {trials}  system: {system}  ({res['num_trials']} trials: "
             f"{res['num_target']} target, {res['num_nontarget']} nontarget)",
             f"EER = {res['eer']:.3f} %  (threshold {res['eer_threshold']:.4f})"]
    for p in p_targets:
        lines.append(f"minDCF (p_target={p:g}) = {res[dcf_key(p)]:.4f}")
    return "\n".join(lines) + "\n"


def _cell(res, key, width, fmt=".4f"):
    value = res.get(key)
    return f"  {'-' if value is None else format(value, fmt):>{width}}"


def format_table(rows, p_targets):
    """rows: list of (trials, system, res). Returns the table text. The columns Cllr,
    minCllr and actDCF<p> appear when some row has them (calibrated systems, stage 7)."""
    w = max([len("trials")] + [len(r[0]) for r in rows])
    ws = max([len("system")] + [len(r[1]) for r in rows])
    cols = [(dcf_key(p), "minDCF" + format(p, "g")) for p in p_targets]
    if any("cllr" in r[2] for r in rows):
        cols += [("cllr", "Cllr"), ("min_cllr", "minCllr")]
        cols += [(act_dcf_key(p), "actDCF" + format(p, "g")) for p in p_targets]
    widths = [max(8, len(title) + 1) for _, title in cols]
    head = f"{'trials':<{w}}  {'system':<{ws}}  {'EER(%)':>7}" + "".join(
        f"  {title:>{wd}}" for (_, title), wd in zip(cols, widths))
    out = [head, "-" * len(head)]
    for trials, system, res in rows:
        out.append(f"{trials:<{w}}  {system:<{ws}}  {res['eer']:>7.3f}" + "".join(
            _cell(res, key, wd) for (key, _), wd in zip(cols, widths)))
    return "\n".join(out)


@contextmanager
def _locked(path):
    """Serialize read-modify-write of results.json between concurrent runs (POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    dirname = os.path.dirname(os.path.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    fd = os.open(dirname, os.O_RDONLY)  # lock the folder: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def merge_results(path, new):
    """Merge {trials: {system: metrics}} into the JSON file at `path`, atomically."""
    with _locked(path):
        results = {}
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    results = json.load(f)
            except (OSError, ValueError) as e:
                raise UserError(f"{path}: cannot read existing results ({e}); remove it") from None
            if not isinstance(results, dict):
                raise UserError(f"{path}: expected a JSON object; remove it")
        for trials, systems in new.items():
            results.setdefault(trials, {}).update(systems)
        with atomic_write(path) as f:
            json.dump(results, f, indent=2, sort_keys=True)
            f.write("\n")
    return results


def show(path, p_targets=(0.01, 0.05)):
    """Print the results table of a results.json written by an earlier run."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read results ({e})") from None
    rows = [(trials, system, res) for trials, systems in sorted(results.items())
            for system, res in systems.items()]
    print(format_table(rows, list(dict.fromkeys(p_targets))))


def _evaluate_file(path, p_targets, c_miss, c_fa):
    """(metrics, scores, labels) of one score file."""
    _, _, scores, labels = read_scores(path)
    try:
        res = evaluate(scores, labels, p_targets, c_miss, c_fa)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    return res, scores, labels


def compute_metrics(score_files, out_dir, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0,
                    det=True):
    """EER and minDCF of every score file into out_dir (.result files, results.json merged,
    det.png unless not det); prints the results table. Returns {trials: {system: metrics}}."""
    p_targets = list(dict.fromkeys(p_targets))
    rows, curves, new, seen = [], [], {}, {}
    for path in score_files:
        trials, system = parse_score_name(path)
        if (trials, system) in seen:
            raise UserError(f"{path} and {seen[(trials, system)]} are both {trials}/{system}")
        seen[(trials, system)] = path
        res, scores, labels = _evaluate_file(path, p_targets, c_miss, c_fa)
        with atomic_write(os.path.join(out_dir, trial_name(path) + ".result")) as f:
            f.write(format_result(trials, system, res, p_targets, path))
        new.setdefault(trials, {})[system] = res
        rows.append((trials, system, res))
        curves.append((f"{trials} / {system}", scores, labels))
    merge_results(os.path.join(out_dir, "results.json"), new)
    if det:
        from wespeaker_mfcon.scoring.plots import plot_det
        log.info("DET curve -> %s", plot_det(curves, os.path.join(out_dir, "det.png")))
    print(format_table(rows, p_targets))
    return new
