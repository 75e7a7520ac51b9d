"""EER / minDCF of score files, results.json and a DET plot (stage 4).

    python -m wespeaker_mfcon.bin.compute_metrics \
        --score_files exp/E/scores/a.score exp/E/scores/a.asnorm.score \
        --out_dir exp/E/scores [--p_target 0.01 0.05]

Per score file: <out_dir>/<name>.result (EER in %, minDCF per p_target). Then
<out_dir>/results.json, merged atomically into any existing one:
    {"<trial list>": {"cosine": {"eer": <EER in %>, "min_dcf_0.01": ..., "min_dcf_0.05": ...,
                                 "eer_threshold": ..., "num_trials": ...,
                                 "num_target": ..., "num_nontarget": ...},
                      "asnorm": {...}}}
The system is taken from the file name: a.score -> cosine, a.asnorm.score -> asnorm,
a.snorm.score -> snorm. <out_dir>/det.png holds one DET curve per score file.
A results table is printed to stdout. Stage 7 (bin/calibrate.py) merges calibrated systems
(cosine_plain, asnorm_qmf, ...) into the same results.json, with "cllr", "min_cllr" (bits)
and "act_dcf_<p>" beside EER and minDCF; the table shows those columns where present.
"""

import argparse
import json
import logging
import os
from contextlib import contextmanager

from wespeaker_mfcon.utils.entrypoint import probability, run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.scoring.metrics import act_dcf_key, dcf_key, evaluate
from wespeaker_mfcon.scoring.trials import parse_score_name, read_scores, trial_name

log = logging.getLogger("compute_metrics")


def get_parser():
    p = argparse.ArgumentParser(prog="compute_metrics.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--score_files", nargs="+")
    p.add_argument("--out_dir", help="where .result, results.json, det.png go")
    p.add_argument("--show", metavar="RESULTS_JSON",
                   help="only print the table of an existing results.json")
    p.add_argument("--p_target", type=probability, nargs="+", default=[0.01, 0.05])
    p.add_argument("--c_miss", type=float, default=1.0)
    p.add_argument("--c_fa", type=float, default=1.0)
    p.add_argument("--no_det", dest="det", action="store_false",
                   help="do not write <out_dir>/det.png")
    return p


def format_result(trials, system, res, p_targets, path):
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


def show(path, p_targets):
    """Print the results table of a results.json written by an earlier run."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read results ({e})") from None
    rows = [(trials, system, res) for trials, systems in sorted(results.items())
            for system, res in systems.items()]
    print(format_table(rows, p_targets))


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    p_targets = list(dict.fromkeys(args.p_target))
    if args.show:
        show(args.show, p_targets)
        return 0
    if not args.score_files or not args.out_dir:
        parser.error("--score_files and --out_dir are required (or --show)")
    rows, curves, new = [], [], {}
    seen = {}
    for path in args.score_files:
        trials, system = parse_score_name(path)
        if (trials, system) in seen:
            raise UserError(f"{path} and {seen[(trials, system)]} are both {trials}/{system}")
        seen[(trials, system)] = path
        _, _, scores, labels = read_scores(path)
        try:
            res = evaluate(scores, labels, p_targets, args.c_miss, args.c_fa)
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        with atomic_write(os.path.join(args.out_dir, trial_name(path) + ".result")) as f:
            f.write(format_result(trials, system, res, p_targets, path))
        new.setdefault(trials, {})[system] = res
        rows.append((trials, system, res))
        curves.append((f"{trials} / {system}", scores, labels))
    merge_results(os.path.join(args.out_dir, "results.json"), new)
    if args.det:
        from wespeaker_mfcon.scoring.plots import plot_det
        det = plot_det(curves, os.path.join(args.out_dir, "det.png"))
        log.info("DET curve -> %s", det)
    print(format_table(rows, p_targets))
    return 0


if __name__ == "__main__":
    run_main(main)
