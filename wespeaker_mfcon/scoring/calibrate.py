"""Stage 7: score calibration with quality measures, trained on trials of the training set
or of a held-out set; calibrate(CalibrationOptions(...)) runs it.

1. Draws num_trials calibration trials from DATA/train/utt2spk (ids spk/session/utt;
   targets across sessions, target_fraction of them if possible; seeded) and scores them as
   stage 4 scores test trials: cosine after subtracting the cohort mean, and AS-norm / S-norm
   with each utterance's own speaker left out of its cohort (no leakage).
   With cal_data DIR (held-out speakers, e.g. a dev set; cal_embeddings its xvector.scp) the
   trials come from DIR/utt2spk instead, drawn the same way, or from
   DIR/trials/<cal_trials>.kaldi, and are scored exactly as a test list
   (calibration_trials.score_eval_trials: training mean subtracted, AS-norm / S-norm against
   all the training speakers); their durations come from DIR/utt2dur (or utt2num_frames).
2. Fits, by prior-weighted logistic regression (scoring/calibration.py), for the cosine and
   the normalized score: <system>_plain (score -> LLR) and <system>_qmf (score and the quality
   measures of qmf_features); and a plain calibration of the RAW cosine (no mean subtraction,
   no norm), the score that Embedder.score / `wespeaker-mfcon compare` compute for two wavs.
3. Applies them to the stage-4 score files exp/E/scores/<name>.score and
   <name>.<method>.score of the trial lists (default: every list of DATA/test/trials), and
   reports each quality-feature set's Cllr (ablation).

Reads  exp/E/embeddings/{train,test}/xvector.scp, DATA/train/utt2spk,
       DATA/train/ and DATA/test/utt2dur (or utt2num_frames), exp/E/scores/<name>*.score;
       with cal_data: cal_embeddings, <cal_data>/utt2spk or trials/<cal_trials>.kaldi,
       <cal_data>/utt2dur (or utt2num_frames).
Writes exp/E/calibration/{cosine,<method>}_{plain,qmf}.json, ablation.json,
       train_trials.kaldi (cal_trials.kaldi with cal_data); exp/E/calibration.json (raw
       cosine); every JSON records the trials' data under "calibration_data";
       exp/E/scores/<name>.<system>_<plain|qmf>.llr.score ("enroll test llr label");
       merges EER, minDCF, Cllr, min Cllr and actDCF per p_target of every calibrated system
       into exp/E/scores/results.json, and prints the ablation and the results table.
"""

import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from wespeaker_mfcon.scoring import calibration as cal
from wespeaker_mfcon.scoring import calibration_trials as ctrials
from wespeaker_mfcon.scoring.cosine import speaker_cohort
from wespeaker_mfcon.scoring.embeddings import index_of, load_embeddings, load_utt2spk
from wespeaker_mfcon.scoring.results import format_table, merge_results
from wespeaker_mfcon.scoring.score_norm import clamp_top_n
from wespeaker_mfcon.scoring.trials import (NORM_METHODS, read_scores, read_trials, score_path,
                                            trial_indices, trial_name, trial_names,
                                            write_scores)
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write

log = logging.getLogger(__name__)


@dataclass
class CalibrationOptions:
    """What stage 7 calibrates, on what, and how.

    exp_dir: the experiment (embeddings/, scores/ of stages 3-4); data: the data dir of
    stage 0 (train/ and test/); trials: names of its trial lists (default: all);
    score_norm_method, top_n: as in stage 4; num_trials, target_fraction, seed: the drawn
    calibration trials; p_train: the effective target prior of the logistic regression;
    p_target: the priors of minDCF and actual DCF; qmf_features: the <system>_qmf models'
    (calibration_trials.FEATURES, with "score"); l2: the weight on standardized weights;
    cal_data, cal_embeddings, cal_trials: a held-out set to calibrate on (see the module)."""
    exp_dir: str
    data: str
    trials: list = None
    score_norm_method: str = "asnorm"
    top_n: int = 300
    num_trials: int = 20000
    target_fraction: float = 0.5
    seed: int = 0
    p_train: float = 0.5
    p_target: list = field(default_factory=lambda: [0.01, 0.05])
    qmf_features: list = field(default_factory=lambda: list(ctrials.QMF_DEFAULT))
    l2: float = 1e-4
    cal_data: str = None
    cal_embeddings: str = None
    cal_trials: str = None

    def __post_init__(self):
        if self.score_norm_method not in NORM_METHODS:
            raise UserError(f"score_norm_method must be one of {NORM_METHODS}, got "
                            f"{self.score_norm_method!r}")
        if "score" not in self.qmf_features:
            raise UserError("--qmf_features must include 'score'")
        if self.cal_data is None and (self.cal_embeddings or self.cal_trials):
            raise UserError("--cal_embeddings and --cal_trials need --cal_data")
        if self.cal_data is not None and not self.cal_embeddings:
            raise UserError("--cal_data needs --cal_embeddings (the xvector.scp of its "
                            "utterances)")
        self.p_target = list(dict.fromkeys(self.p_target))

    @property
    def train_data(self):
        return os.path.join(self.data, "train")

    @property
    def test_data(self):
        return os.path.join(self.data, "test")


def _cal_trials_path(opts):
    return os.path.join(opts.cal_data, "trials", trial_name(opts.cal_trials) + ".kaldi")


def trials_source(opts):
    """Where the calibration trials come from: the "calibration_data" of every JSON."""
    if opts.cal_data is None:
        data, scp = opts.train_data, os.path.join(opts.exp_dir, "embeddings", "train",
                                                  "xvector.scp")
    else:
        data, scp = opts.cal_data, opts.cal_embeddings
    if opts.cal_trials:
        trials = _cal_trials_path(opts)
    else:
        trials = f"drawn from {os.path.join(data, 'utt2spk')} (seed {opts.seed})"
    return {"data": data, "embeddings": scp, "trials": trials,
            "held_out": opts.cal_data is not None}


def load_training(opts):
    """Cohort embeddings with a speaker -> dict(keys (N,), raw (N, D), utt2spk, durations)."""
    scp = os.path.join(opts.exp_dir, "embeddings", "train", "xvector.scp")
    keys, raw = load_embeddings(scp)
    utt2spk = load_utt2spk(os.path.join(opts.train_data, "utt2spk"))
    missing = [k for k in keys if k not in utt2spk]
    if missing:
        raise UserError(f"{opts.train_data}/utt2spk: {len(missing)} of {len(keys)} embeddings "
                        f"of {scp} have no speaker, e.g. {missing[0]!r}")
    return dict(keys=keys, raw=raw, utt2spk={k: utt2spk[k] for k in keys},
                durations=ctrials.read_durations(opts.train_data))


def training_trials(opts, train, top_n):
    """Calibration trials drawn from the training set and scored -> TrialSet."""
    enroll, test, labels = ctrials.make_training_trials(
        train["utt2spk"], opts.num_trials, seed=opts.seed, target_fraction=opts.target_fraction,
        source=f"{opts.train_data}/utt2spk")
    log.info("%d calibration trials from %s (%d target, %d nontarget)", len(labels),
             opts.train_data, int(labels.sum()), int((1 - labels).sum()))
    return ctrials.score_training_trials(
        enroll=enroll, test=test, labels=labels, keys=train["keys"], raw=train["raw"],
        utt2spk=train["utt2spk"], durations=train["durations"], top_n=top_n,
        method=opts.score_norm_method)


def _read_list(opts, name):
    """(path, enroll, test, labels, {system: scores}) of the two stage-4 score files of a
    list."""
    out, first = {}, None
    for system in ("cosine", opts.score_norm_method):
        path = score_path(os.path.join(opts.exp_dir, "scores"), name, system)
        if not os.path.isfile(path):
            raise UserError(f"missing {path}: no such file; run stage 4 for the trial list "
                            f"{name} first")
        enroll, test, scores, labels = read_scores(path)
        if first is None:
            first = (path, enroll, test, labels)
        elif (enroll, test) != (first[1], first[2]) or not np.array_equal(labels, first[3]):
            raise UserError(f"{path}: not the trials of {first[0]} in the same order (re-run "
                            f"stage 4)")
        out[system] = scores
    return first + (out,)


def stage4_lists(opts):
    """[(name, (path, enroll, test, labels, {system: scores}))] of the trial lists' stage-4
    score files; read before anything else, so that a list stage 4 did not score fails first."""
    return [(name, _read_list(opts, name)) for name in trial_names(opts.data, opts.trials)]


def _heldout_list(opts, index):
    """(enroll, test, labels, source) of the held-out calibration trials; UserError naming
    --cal_embeddings if it lacks an utterance of them."""
    if opts.cal_trials:
        path = _cal_trials_path(opts)
        enroll, test, labels = read_trials(path)
        trial_indices(enroll, test, index, path, opts.cal_embeddings)
        return enroll, test, labels, path
    path = os.path.join(opts.cal_data, "utt2spk")
    utt2spk = load_utt2spk(path)
    missing = [k for k in utt2spk if k not in index]
    if missing:
        raise UserError(f"{opts.cal_embeddings}: no embedding for {len(missing)} of "
                        f"{len(utt2spk)} utterances of {path}, e.g. {missing[0]!r}")
    enroll, test, labels = ctrials.make_training_trials(
        utt2spk, opts.num_trials, seed=opts.seed, target_fraction=opts.target_fraction,
        source=path)
    return enroll, test, labels, path


def heldout_trials(opts, train, cohort, top_n):
    """Calibration trials of --cal_data, scored as stage 4 scores a test list -> TrialSet.
    cohort: (mean (D,), speaker cohort (C, D)) of the training set (training_cohort)."""
    keys, raw = load_embeddings(opts.cal_embeddings)
    if raw.shape[1] != train["raw"].shape[1]:
        raise UserError(f"{opts.cal_embeddings}: dimension {raw.shape[1]} differs from the "
                        f"training embeddings ({train['raw'].shape[1]})")
    enroll, test, labels, source = _heldout_list(opts, index_of(keys))
    log.info("%d calibration trials from %s (%d target, %d nontarget)", len(labels), source,
             int(labels.sum()), int((1 - labels).sum()))
    mean, spk_cohort = cohort
    return ctrials.score_eval_trials(
        enroll=enroll, test=test, labels=labels, keys=keys, raw=raw, cohort_mean=mean,
        cohort=spk_cohort, durations=ctrials.read_durations(opts.cal_data), top_n=top_n,
        method=opts.score_norm_method, dur_source=opts.cal_data)


def training_cohort(train):
    """Cohort mean (D,) and AS-norm cohort (C, D) of the training set, as stage 4."""
    mean = train["raw"].mean(axis=0, dtype=np.float64)
    _, cohort = speaker_cohort(train["keys"], train["raw"], train["utt2spk"], mean)
    return mean, cohort


def eval_trials(opts, lists, cohort, top_n):
    """[(name, TrialSet)] of the test lists (stage4_lists), with the quality measures of their
    utterances. cohort: (mean (D,), speaker cohort (C, D)) of the training set
    (training_cohort)."""
    scp = os.path.join(opts.exp_dir, "embeddings", "test", "xvector.scp")
    keys, raw = load_embeddings(scp)
    index = index_of(keys)
    mean, spk_cohort = cohort
    durations = ctrials.read_durations(opts.test_data)
    out = []
    for name, (path, enroll, test, labels, scores) in lists:
        trial_indices(enroll, test, index, path, scp)  # UserError if an embedding is missing
        ts = ctrials.eval_trial_set(enroll=enroll, test=test, labels=labels, scores=scores,
                                    keys=keys, raw=raw, cohort_mean=mean, cohort=spk_cohort,
                                    durations=durations, top_n=top_n)
        out.append((name, ts))
    return out


def _fit(ts, names, system, opts, extra=None):
    source = trials_source(opts)
    meta = {"score": system, "trained_on": f"{len(ts.labels)} trials from {source['data']}",
            "calibration_data": source,
            "num_target": int(ts.labels.sum()), "num_nontarget": int((1 - ts.labels).sum()),
            **(extra or {})}
    c = cal.fit(ts.features(names, system), ts.labels, names, p_train=opts.p_train,
                l2=opts.l2, meta=meta)
    c.meta["train_cllr"] = round(cal.cllr(c.llr(ts.features(names, system)), ts.labels), 6)
    return c


def fit_all(opts, train_ts, top_n):
    """{"<system>_plain"|"<system>_qmf": Calibration} and the raw-cosine Calibration."""
    qmf_extra = {"top_n": top_n, "score_norm_method": opts.score_norm_method}
    cals = {}
    for system in ("cosine", opts.score_norm_method):
        cals[f"{system}_plain"] = _fit(train_ts, ["score"], system, opts)
        cals[f"{system}_qmf"] = _fit(train_ts, list(opts.qmf_features), system, opts, qmf_extra)
    return cals, _fit(train_ts, ["score"], "raw_cosine", opts)


def ablation(opts, train_ts, evals):
    """Cllr of every feature set of calibration.ABLATION -> rows of (system, set, metrics)."""
    rows = []
    for system in ("cosine", opts.score_norm_method):
        for set_name, names in ctrials.ABLATION.items():
            c = _fit(train_ts, list(names), system, opts)
            res = {"features": list(names), "train_cllr": c.meta["train_cllr"]}
            for name, ts in evals:
                r = cal.evaluate_llrs(c.llr(ts.features(names, system)), ts.labels,
                                      opts.p_target)
                res[name] = {k: r[k] for k in ("cllr", "min_cllr", "eer",
                                               cal.act_dcf_key(opts.p_target[0]))}
            rows.append((system, set_name, res))
    return rows


def format_ablation(rows, names, p):
    """Text table of ablation rows: train Cllr, and per test list Cllr, min Cllr, EER, actDCF."""
    head = f"{'system':<8} {'features':<14} {'train Cllr':>10}"
    for n in names:
        head += f"  {n + ' Cllr':>12} {'minCllr':>8} {'EER(%)':>7} {'actDCF' + format(p, 'g'):>11}"
    lines = [head, "-" * len(head)]
    for system, set_name, res in rows:
        line = f"{system:<8} {set_name:<14} {res['train_cllr']:>10.4f}"
        for n in names:
            r = res[n]
            line += (f"  {r['cllr']:>12.4f} {r['min_cllr']:>8.4f} {r['eer']:>7.3f} "
                     f"{r[cal.act_dcf_key(p)]:>11.4f}")
        lines.append(line)
    return "\n".join(lines)


def apply_all(opts, cals, evals):
    """Write the LLR score files; returns {list: {system: metrics}} and table rows."""
    new, rows = {}, []
    for name, ts in evals:
        for key, c in cals.items():
            llr = c.llr(ts.features(c.names, c.meta["score"]))
            out = score_path(os.path.join(opts.exp_dir, "scores"), name, f"{key}.llr")
            write_scores(out, ts.enroll, ts.test, llr, ts.labels)
            res = cal.evaluate_llrs(llr, ts.labels, opts.p_target)
            new.setdefault(name, {})[key] = res
            rows.append((name, key, res))
    return new, rows


def write_outputs(opts, cals, raw_cal, train_ts, ablation_rows):
    """The calibration JSONs, the ablation and the calibration trials (see the module)."""
    cal_dir = os.path.join(opts.exp_dir, "calibration")
    for key, c in cals.items():
        c.save(os.path.join(cal_dir, f"{key}.json"))
    raw_cal.save(os.path.join(opts.exp_dir, "calibration.json"))
    with atomic_write(os.path.join(cal_dir, "ablation.json")) as f:
        json.dump({"calibration_data": trials_source(opts),
                   **{f"{s} {n}": r for s, n, r in ablation_rows}}, f, indent=2)
        f.write("\n")
    names = ("nontarget", "target")
    kaldi = "train_trials.kaldi" if opts.cal_data is None else "cal_trials.kaldi"
    with atomic_write(os.path.join(cal_dir, kaldi)) as f:
        f.writelines(f"{e} {t} {names[int(lab)]}\n"
                     for e, t, lab in zip(train_ts.enroll, train_ts.test, train_ts.labels))


def warn_overlap(cal_ts, evals):
    """Warn when the calibration trials share utterances with a test list."""
    cal_utts = set(cal_ts.enroll) | set(cal_ts.test)
    for name, ts in evals:
        shared = cal_utts & (set(ts.enroll) | set(ts.test))
        if shared:
            log.warning("the calibration trials share %d utterances with the test list %s "
                        "(e.g. %r): its Cllr is measured on the data it was calibrated on",
                        len(shared), name, min(shared))


def calibrate(opts):
    """Stage 7 (see the module) for CalibrationOptions opts."""
    lists = stage4_lists(opts)
    train = load_training(opts)
    n_spk = len(set(train["utt2spk"].values()))
    top_n = None if opts.score_norm_method == "snorm" else clamp_top_n(opts.top_n, n_spk, log)
    cohort = training_cohort(train)
    if opts.cal_data is None:
        cal_ts = training_trials(opts, train, top_n)
    else:
        cal_ts = heldout_trials(opts, train, cohort, top_n)
    evals = eval_trials(opts, lists, cohort, top_n)
    warn_overlap(cal_ts, evals)
    cals, raw_cal = fit_all(opts, cal_ts, top_n)
    rows = ablation(opts, cal_ts, evals)
    new, table = apply_all(opts, cals, evals)
    write_outputs(opts, cals, raw_cal, cal_ts, rows)
    merge_results(os.path.join(opts.exp_dir, "scores", "results.json"), new)
    what = "training" if opts.cal_data is None else f"held-out ({opts.cal_data})"
    print(f"feature ablation (fit on the {what} calibration trials; Cllr in bits, EER in %):")
    print(format_ablation(rows, [n for n, _ in evals], opts.p_target[0]))
    print()
    print(format_table(table, opts.p_target))
    log.info("calibrations -> %s/calibration/, raw cosine -> %s/calibration.json",
             opts.exp_dir, opts.exp_dir)
