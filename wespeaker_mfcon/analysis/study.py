"""Train and score many variants x seeds x settings, resumably: the comparison scheduler.

    cd examples/voxceleb/v2_mfcon
    python -m wespeaker_mfcon.analysis.study conf/studies/lambda_speakers.yaml [--jobs 2]
        [--settings s40 s200] [--seeds 1 2] [--variants baseline mfcon_l3] [--stage 1|2]
        [--dry_run]

A study file (YAML) names its data dirs and its settings; each setting is a data dir and the
variants to train on it:

    out: exp/lambda_study               # OUT/<setting>/<variant>/seed<S>: one exp dir per run
    seeds: [1, 2]
    report: lambda_speakers             # optional: the table written after the summaries
    data:                               # data dirs the study makes (run.sh stages 0-1 on the
      data_ls40: --num_train_spk 40     #   mini corpus with these options) when missing
    settings:
      s40:
        title: 40 train speakers
        data: data_ls40                 # a data dir after stages 0-1
        train_opts: --num_epochs 36     # config overrides for every variant of the setting
        variants: [conf/compare/lambda_grid.yaml]   # name -> {config, overrides} files
        baseline: baseline              # the variant the others are compared with
        validation: data_dev            # optional: EER of every epoch on this data dir's test
                                        #   part (other speakers than train and test)
        models_from: other_setting      # optional: score that setting's models, train none
        seeds: [1, 2, 3]                # optional: the setting's own seeds

Stage 1 runs every (setting, variant, seed): the recipe's stages 2-4 (`bash run.sh`, train
options "--seed S <variant overrides> <setting train_opts>"), then analysis/block_eer.py and,
with `validation`, analysis/validation_curve.py. Each step is skipped when its output exists,
so a killed study started again goes on where it stopped (a killed training resumes from its
last checkpoint); a run dir trained with other options is an error, never silently reused.
Stage 2 writes OUT/<setting>/comparison.{md,json} (analysis/summarize_comparison.py) and the
study's report. `--jobs N` runs N runs at once, each with `threads` OpenMP threads.
"""

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional

from wespeaker_mfcon.analysis import summarize_comparison
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.config import read_yaml
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.scoring.trials import trial_lists

log = logging.getLogger("study")

SETTING_KEYS = {"title", "data", "train_opts", "variants", "baseline", "validation",
                "models_from", "seeds"}
STUDY_KEYS = {"out", "seeds", "data", "settings", "report", "nj", "top_n", "threads",
              "num_avg"}


@dataclass
class Setting:
    name: str
    title: str
    data: str
    variants: list                      # [(name, config, [override tokens])]
    baseline: str
    seeds: List[int]
    train_opts: List[str] = field(default_factory=list)
    validation: Optional[str] = None
    models_from: Optional[str] = None


@dataclass
class Study:
    path: str
    out: str
    settings: dict                      # name -> Setting, in file order
    data: dict = field(default_factory=dict)   # data dir -> mini corpus options
    report: Optional[str] = None
    nj: int = 1
    top_n: int = 100
    threads: int = 1
    num_avg: int = 3


@dataclass
class Run:
    setting: Setting
    variant: str
    config: str
    seed: int
    train_opts: List[str]
    exp_dir: str


# ----------------------------------------------------------------------------- the file

def load_study(path):
    raw = read_yaml(path)
    unknown = set(raw) - STUDY_KEYS
    if unknown:
        raise UserError(f"{path}: unknown keys {sorted(unknown)} ({', '.join(sorted(STUDY_KEYS))})")
    if not isinstance(raw.get("settings"), dict) or not raw["settings"]:
        raise UserError(f"{path}: 'settings' must map setting names to their specs")
    seeds = _seeds(raw.get("seeds", [1]), f"{path}: seeds")
    settings = {name: _setting(path, name, spec, seeds) for name, spec in raw["settings"].items()}
    for s in settings.values():
        if s.models_from and s.models_from not in settings:
            raise UserError(f"{path}: setting {s.name}: models_from {s.models_from!r} is not a "
                            "setting of this study")
    data = raw.get("data") or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(f"{path}: 'data' must map data dirs to mini corpus options")
    numbers = {k: raw[k] for k in ("nj", "top_n", "threads", "num_avg") if k in raw}
    for key, value in numbers.items():
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{path}: {key} must be an integer >= 1, got {value!r}")
    return Study(path=path, out=str(raw.get("out", "exp/study")), settings=settings,
                 data=data, report=raw.get("report"), **numbers)


def _seeds(value, where):
    if not isinstance(value, list) or not value or \
            not all(isinstance(s, int) and s >= 0 for s in value):
        raise UserError(f"{where}: expected a list of non-negative integers, got {value!r}")
    return value


def _setting(path, name, spec, seeds):
    where = f"{path}: setting {name}"
    if not isinstance(spec, dict):
        raise UserError(f"{where}: expected a mapping")
    unknown = set(spec) - SETTING_KEYS
    if unknown:
        raise UserError(f"{where}: unknown keys {sorted(unknown)} "
                        f"({', '.join(sorted(SETTING_KEYS))})")
    for key in ("data", "variants"):
        if not spec.get(key):
            raise UserError(f"{where}: missing '{key}'")
    files = spec["variants"] if isinstance(spec["variants"], list) else [spec["variants"]]
    variants = {}
    for f in files:                     # a name in several files is one variant (one run)
        for variant in summarize_comparison.read_variants(f)[0]:
            if variants.setdefault(variant[0], variant) != variant:
                raise UserError(f"{where}: variant {variant[0]} differs between its files ({f})")
    variants = list(variants.values())
    names = [v[0] for v in variants]
    baseline = spec.get("baseline") or ("baseline" if "baseline" in names else names[0])
    if baseline not in names:
        raise UserError(f"{where}: baseline {baseline!r} is not among its variants")
    train_opts = summarize_comparison.normalize_overrides(spec.get("train_opts") or "", where)
    return Setting(name=name, title=spec.get("title", name), data=spec["data"],
                   variants=variants, baseline=baseline,
                   seeds=_seeds(spec.get("seeds", seeds), f"{where}: seeds"),
                   train_opts=train_opts,
                   validation=spec.get("validation"), models_from=spec.get("models_from"))


def plan(study, settings=None, seeds=None, variants=None):
    """The runs of the chosen settings, variants and seeds, in study order."""
    chosen = settings or list(study.settings)
    for name in chosen:
        if name not in study.settings:
            raise UserError(f"{study.path}: no setting {name!r} ({', '.join(study.settings)})")
    runs = []
    for name in chosen:
        s = study.settings[name]
        for variant, config, tokens in s.variants:
            if variants and variant not in variants:
                continue
            for seed in seeds or s.seeds:
                runs.append(Run(setting=s, variant=variant, config=config, seed=seed,
                                train_opts=[f"--seed={seed}", *tokens, *s.train_opts],
                                exp_dir=os.path.join(study.out, name, variant, f"seed{seed}")))
    return runs


# ----------------------------------------------------------------------------- stage 1

class RunFailed(Exception):
    pass


def prepare_data(study, data):
    """Stages 0-1 of the recipe for a data dir of the study's `data` list, unless its
    features exist; any other data dir must have them already."""
    if all(os.path.isfile(os.path.join(data, x, "feats.scp")) for x in ("train", "test")):
        return
    if data not in study.data:
        raise UserError(f"{data}: no feats.scp; run stages 0-1 for it first, or list it under "
                        f"'data' in {study.path}")
    log.info("making %s (run.sh stages 0-1, mini corpus options '%s')", data, study.data[data])
    _call(["bash", "run.sh", "--stage", "0", "--stop_stage", "1", "--data", data,
           "--nj", str(study.nj), "--mini_opts", study.data[data]],
          f"{data}.prep.log", study.threads, f"data prep of {data}")


def run_record(run, models_from=None):
    """What a run dir was made with (exp_dir/study_run.json): a re-run must ask the same."""
    record = {"config": run.config, "train_opts": run.train_opts}
    if models_from:
        record["models_from"] = models_from
    return record


def check_record(run, record):
    path = os.path.join(run.exp_dir, "study_run.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old != record:
            raise RunFailed(f"{run.exp_dir} was made with {json.dumps(old)}, now asked for "
                            f"{json.dumps(record)}; remove it or use another 'out'")
        return
    os.makedirs(run.exp_dir, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(record, f)


def steps(study, run):
    """[(description, output that marks it done, argv)] of one run."""
    exp, data = run.exp_dir, run.setting.data
    trials = trial_lists(data)[0][1]
    py = [sys.executable, "-m"]
    out = [("train + score", os.path.join(exp, "scores", "results.json"),
            ["bash", "run.sh", "--stage", "2", "--stop_stage", "4", "--config", run.config,
             "--exp_dir", exp, "--data", data, "--nj", str(study.nj),
             "--num_avg", str(study.num_avg), "--top_n", str(study.top_n),
             "--train_opts", " ".join(run.train_opts)]),
           ("block EER", os.path.join(exp, "block_eer.json"),
            [*py, "wespeaker_mfcon.analysis.block_eer", "--exp_dir", exp,
             "--feats_scp", os.path.join(data, "test", "feats.scp"), "--trials", trials,
             "--out", os.path.join(exp, "block_eer.json")])]
    val = run.setting.validation
    if val:
        out.append(("validation curve", os.path.join(exp, "validation.json"),
                    [*py, "wespeaker_mfcon.analysis.validation_curve", "--exp_dir", exp,
                     "--feats_scp", os.path.join(val, "test", "feats.scp"),
                     "--trials", trial_lists(val)[0][1]]))
    return out


def execute(study, run):
    """Every step of the run that is not done yet; returns the steps it ran."""
    source = None
    if run.setting.models_from:
        source = os.path.join(study.out, run.setting.models_from, run.variant, f"seed{run.seed}")
    check_record(run, run_record(run, source))
    if source:
        _link_models(source, run)
    ran = []
    for what, done, argv in steps(study, run):
        if os.path.isfile(done):
            continue
        _call(argv, os.path.join(run.exp_dir, "study.log"), study.threads,
              f"{_name(run)}: {what}")
        ran.append(what)
    return ran


def _link_models(source, run):
    """Hard-link (else copy) the source run's epoch checkpoints, so that stage 2 finds the
    training done and goes on to averaging and scoring."""
    record = os.path.join(source, "study_run.json")
    if not os.path.isfile(os.path.join(source, "scores", "results.json")):
        raise RunFailed(f"{_name(run)}: models_from {source} is not finished")
    with open(record, encoding="utf-8") as f:
        trained = json.load(f)
    if trained != run_record(run):
        raise RunFailed(f"{_name(run)}: {source} was trained with {json.dumps(trained)}, "
                        f"not {json.dumps(run_record(run))}")
    dst = os.path.join(run.exp_dir, "models")
    if os.path.isdir(dst):
        return
    os.makedirs(dst + ".tmp", exist_ok=True)
    for name in os.listdir(os.path.join(source, "models")):
        if name.startswith("model_") and name.endswith(".pt"):
            src, tmp = os.path.join(source, "models", name), os.path.join(dst + ".tmp", name)
            if not os.path.exists(tmp):
                try:
                    os.link(src, tmp)
                except OSError:
                    import shutil
                    shutil.copy2(src, tmp)
    os.replace(dst + ".tmp", dst)


def _call(argv, log_path, threads, what):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(argv)}\n")
        f.flush()
        rc = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL)
    if rc != 0:
        raise RunFailed(f"{what} failed (exit {rc}); its output: {log_path}")


def _name(run):
    return f"{run.setting.name}/{run.variant}/seed{run.seed}"


def run_all(study, runs, jobs):
    """Stage 1 over runs, `jobs` at a time; failures are collected, the others go on."""
    for name in dict.fromkeys(r.setting.name for r in runs):
        s = study.settings[name]
        for data in (s.data, s.validation):
            if data:
                prepare_data(study, data)
    total, failures = len(runs), []

    def one(i_run):
        i, run = i_run
        start = time.time()
        try:
            ran = execute(study, run)
        except RunFailed as e:
            failures.append(str(e))
            log.error("[%d/%d] %s", i, total, e)
            return
        what = ", ".join(ran) if ran else "done already"
        log.info("[%d/%d] %s: %s (%.0f s)", i, total, _name(run), what, time.time() - start)

    # models_from runs wait for their sources: they come after them in the list
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        ordered = sorted(enumerate(runs, 1), key=lambda x: x[1].setting.models_from is not None)
        list(pool.map(one, ordered))
    if failures:
        raise UserError(f"{len(failures)} of {total} runs failed; the first: {failures[0]}")


# ----------------------------------------------------------------------------- stage 2

def summarize(study, settings=None):
    """OUT/<setting>/comparison.{md,json} of every finished run; then the study's report."""
    comparisons = {}
    for name in settings or list(study.settings):
        runs = [r for r in plan(study, [name])
                if os.path.isfile(os.path.join(r.exp_dir, "scores", "results.json"))]
        if not runs:
            log.warning("setting %s: no finished runs, skipped", name)
            continue
        specs = [f"{r.variant}/seed{r.seed}={r.exp_dir}" for r in runs]
        base = study.settings[name].baseline
        if base not in {r.variant for r in runs}:
            log.warning("setting %s: its baseline %s has no finished run, skipped", name, base)
            continue
        out_dir = os.path.join(study.out, name)
        summarize_comparison.write_comparison(summarize_comparison.load_runs(specs), base,
                                              out_dir)
        comparisons[name] = os.path.join(out_dir, "comparison.json")
    if not comparisons:
        raise UserError(f"{study.path}: no finished runs in any setting")
    if study.report:
        reports = _reports()
        if study.report not in reports:
            raise UserError(f"{study.path}: unknown report {study.report!r} "
                            f"({', '.join(reports)})")
        reports[study.report](study, comparisons)
    return comparisons


def _reports():
    """report name -> write(study, {setting: comparison.json}): the study's own table."""
    from wespeaker_mfcon.analysis import lambda_study, weighting_table
    return {"weighting": weighting_table.write_study_report,
            "lambda_speakers": lambda_study.write_study_report}


# ----------------------------------------------------------------------------- main

def get_parser():
    p = argparse.ArgumentParser(prog="python -m wespeaker_mfcon.analysis.study",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", help="study YAML (conf/studies/*.yaml)")
    p.add_argument("--stage", type=int, default=1, choices=[1, 2],
                   help="1: train and score, then summarize (default); 2: summarize only")
    p.add_argument("--settings", nargs="+", help="only these settings")
    p.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    p.add_argument("--variants", nargs="+", help="only these variants")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default %(default)s)")
    p.add_argument("--dry_run", action="store_true", help="list the runs and their state")
    return p


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = get_parser().parse_args(argv)
    if not os.path.isfile("run.sh"):
        raise UserError(f"no run.sh in {os.getcwd()}: run a study from the recipe dir")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    study = load_study(args.study)
    runs = plan(study, args.settings, args.seeds, args.variants)
    if args.dry_run:
        for run in runs:
            state = "done" if os.path.isfile(os.path.join(run.exp_dir, "scores",
                                                          "results.json")) else "to run"
            print(f"{_name(run)}: {state}: {run.config} {' '.join(run.train_opts)}")
        return 0
    if args.stage == 1:
        run_all(study, runs, args.jobs)
    summarize(study, args.settings)
    return 0


if __name__ == "__main__":
    run_main(main)
