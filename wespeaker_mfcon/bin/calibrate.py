"""Score calibration with quality measures, trained on trials of the training set or of a
held-out set (stage 7).

    python -m wespeaker_mfcon.bin.calibrate --exp_dir exp/E --train_data data/train \
        --test_data data/test --trials vox1_O [--score_norm_method asnorm] [--top_n 300] \
        [--num_trials 20000] [--seed 0] [--p_train 0.5] \
        [--cal_data data/dev --cal_embeddings exp/E/embeddings/dev/xvector.scp \
         [--cal_trials NAME]]

1. Draws --num_trials calibration trials from --train_data/utt2spk (ids spk/session/utt;
   targets across sessions, half of them if possible; seeded) and scores them as stage 4
   scores test trials: cosine after subtracting the cohort mean, and AS-norm / S-norm with
   each utterance's own speaker left out of its cohort (no leakage).
   With --cal_data DIR (held-out speakers, e.g. a dev set; --cal_embeddings its xvector.scp)
   the trials come from DIR/utt2spk instead, drawn the same way, or from
   DIR/trials/<--cal_trials>.kaldi, and are scored exactly as a test list
   (calibration_trials.score_eval_trials: training mean subtracted, AS-norm / S-norm against
   all the training speakers); their durations come from DIR/utt2dur (or utt2num_frames).
2. Fits, by prior-weighted logistic regression (wespeaker_mfcon/calibration.py), for the
   cosine and the normalized score: <system>_plain (score -> LLR) and <system>_qmf (score and
   the quality measures of --qmf_features); and a plain calibration of the RAW cosine (no
   mean subtraction, no norm), the score that Embedder.score / `wespeaker-mfcon compare`
   compute for two wavs.
3. Applies them to the stage-4 score files exp/E/scores/<name>.score and
   <name>.<method>.score, and reports each quality-feature set's Cllr (ablation).

Reads  exp/E/embeddings/{train,test}/xvector.scp, <train_data>/utt2spk,
       <train_data>/ and <test_data>/utt2dur (or utt2num_frames), exp/E/scores/<name>*.score;
       with --cal_data: --cal_embeddings, <cal_data>/utt2spk or trials/<cal_trials>.kaldi,
       <cal_data>/utt2dur (or utt2num_frames).
Writes exp/E/calibration/{cosine,<method>}_{plain,qmf}.json, ablation.json,
       train_trials.kaldi (cal_trials.kaldi with --cal_data); exp/E/calibration.json (raw
       cosine); every JSON records the trials' data under "calibration_data";
       exp/E/scores/<name>.<system>_<plain|qmf>.llr.score ("enroll test llr label");
       merges EER, minDCF, Cllr, min Cllr and actDCF per p_target of every calibrated system
       into exp/E/scores/results.json, and prints the ablation and the results table.
"""

import argparse
import json
import logging
import os

import numpy as np

from wespeaker_mfcon.scoring import calibration as cal
from wespeaker_mfcon.scoring import calibration_trials as ctrials
from wespeaker_mfcon.bin.compute_metrics import format_table, merge_results
from wespeaker_mfcon.utils.entrypoint import probability, run_main
from wespeaker_mfcon.scoring.embeddings import index_of, load_embeddings, load_utt2spk
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.scoring.cosine import speaker_cohort
from wespeaker_mfcon.scoring.score_norm import clamp_top_n
from wespeaker_mfcon.scoring.trials import (NORM_METHODS, read_scores, read_trials, trial_indices, trial_name, write_scores)

log = logging.getLogger("calibrate")


def _at_least(n):
    def check(v):
        k = int(v)
        if k < n:
            raise argparse.ArgumentTypeError(f"must be >= {n}, got {v}")
        return k
    return check


def get_parser():
    p = argparse.ArgumentParser(prog="calibrate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--train_data", required=True, help="data dir the calibration trials come "
                   "from (utt2spk, utt2dur); its embeddings: exp_dir/embeddings/train")
    p.add_argument("--test_data", required=True, help="data dir of the test set (utt2dur)")
    p.add_argument("--trials", nargs="+", required=True,
                   help="trial list names: exp_dir/scores/<name>.score and <name>.<method>.score")
    p.add_argument("--score_norm_method", choices=NORM_METHODS, default="asnorm")
    p.add_argument("--top_n", type=_at_least(2), default=300,
                   help="AS-norm top N, as in stage 4 (clamped to the cohort size)")
    p.add_argument("--num_trials", type=_at_least(2), default=20000)
    p.add_argument("--target_fraction", type=probability, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p_train", type=probability, default=0.5,
                   help="effective target prior of the logistic-regression objective")
    p.add_argument("--p_target", type=probability, nargs="+", default=[0.01, 0.05],
                   help="priors of minDCF and actual DCF")
    p.add_argument("--qmf_features", nargs="+", choices=ctrials.FEATURES,
                   default=list(ctrials.QMF_DEFAULT), help="features of the <system>_qmf models")
    p.add_argument("--l2", type=float, default=1e-4, help="L2 weight on standardized weights")
    g = p.add_argument_group("held-out calibration set (default: trials from --train_data)")
    g.add_argument("--cal_data", default=None, help="data dir of held-out speakers (a dev set) "
                   "to calibrate on: trials from its utt2spk (drawn as from --train_data) or "
                   "--cal_trials, durations from its utt2dur; scored as stage 4 scores tests")
    g.add_argument("--cal_embeddings", default=None,
                   help="xvector.scp of --cal_data (required with it)")
    g.add_argument("--cal_trials", default=None, help="NAME: take the calibration trials from "
                   "<cal_data>/trials/NAME.kaldi instead of drawing them")
    return p


def parse_args(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    if args.cal_data is None and (args.cal_embeddings or args.cal_trials):
        p.error("--cal_embeddings and --cal_trials need --cal_data")
    if args.cal_data is not None and not args.cal_embeddings:
        p.error("--cal_data needs --cal_embeddings (the xvector.scp of its utterances)")
    args.p_target = list(dict.fromkeys(args.p_target))
    if "score" not in args.qmf_features:
        raise UserError("--qmf_features must include 'score'")
    return args


def _cal_trials_path(args):
    return os.path.join(args.cal_data, "trials", trial_name(args.cal_trials) + ".kaldi")


def trials_source(args):
    """Where the calibration trials come from: the "calibration_data" of every JSON."""
    if args.cal_data is None:
        data, scp = args.train_data, os.path.join(args.exp_dir, "embeddings", "train",
                                                  "xvector.scp")
    else:
        data, scp = args.cal_data, args.cal_embeddings
    if args.cal_trials:
        trials = _cal_trials_path(args)
    else:
        trials = f"drawn from {os.path.join(data, 'utt2spk')} (seed {args.seed})"
    return {"data": data, "embeddings": scp, "trials": trials,
            "held_out": args.cal_data is not None}


def load_training(args):
    """Cohort embeddings with a speaker -> dict(keys (N,), raw (N, D), utt2spk, durations)."""
    scp = os.path.join(args.exp_dir, "embeddings", "train", "xvector.scp")
    keys, raw = load_embeddings(scp)
    utt2spk = load_utt2spk(os.path.join(args.train_data, "utt2spk"))
    missing = [k for k in keys if k not in utt2spk]
    if missing:
        raise UserError(f"{args.train_data}/utt2spk: {len(missing)} of {len(keys)} embeddings of "
                        f"{scp} have no speaker, e.g. {missing[0]!r}")
    return dict(keys=keys, raw=raw, utt2spk={k: utt2spk[k] for k in keys},
                durations=ctrials.read_durations(args.train_data))


def training_trials(args, train, top_n):
    """Calibration trials drawn from the training set and scored -> TrialSet."""
    enroll, test, labels = ctrials.make_training_trials(
        train["utt2spk"], args.num_trials, seed=args.seed, target_fraction=args.target_fraction,
        source=f"{args.train_data}/utt2spk")
    log.info("%d calibration trials from %s (%d target, %d nontarget)", len(labels),
             args.train_data, int(labels.sum()), int((1 - labels).sum()))
    return ctrials.score_training_trials(enroll=enroll, test=test, labels=labels, keys=train["keys"],
                                     raw=train["raw"], utt2spk=train["utt2spk"],
                                     durations=train["durations"], top_n=top_n,
                                     method=args.score_norm_method)


def _read_list(args, name):
    """(enroll, test, labels, {system: scores}) of the two stage-4 score files of a list."""
    method = args.score_norm_method
    out, first = {}, None
    for system, suffix in (("cosine", ".score"), (method, f".{method}.score")):
        path = os.path.join(args.exp_dir, "scores", name + suffix)
        enroll, test, scores, labels = read_scores(path)
        if first is None:
            first = (path, enroll, test, labels)
        elif (enroll, test) != (first[1], first[2]) or not np.array_equal(labels, first[3]):
            raise UserError(f"{path}: not the trials of {first[0]} in the same order (re-run "
                            f"stage 4)")
        out[system] = scores
    return first + (out,)


def _heldout_list(args, index):
    """(enroll, test, labels, source) of the held-out calibration trials; UserError naming
    --cal_embeddings if it lacks an utterance of them."""
    if args.cal_trials:
        path = _cal_trials_path(args)
        enroll, test, labels = read_trials(path)
        trial_indices(enroll, test, index, path, args.cal_embeddings)
        return enroll, test, labels, path
    path = os.path.join(args.cal_data, "utt2spk")
    utt2spk = load_utt2spk(path)
    missing = [k for k in utt2spk if k not in index]
    if missing:
        raise UserError(f"{args.cal_embeddings}: no embedding for {len(missing)} of "
                        f"{len(utt2spk)} utterances of {path}, e.g. {missing[0]!r}")
    enroll, test, labels = ctrials.make_training_trials(
        utt2spk, args.num_trials, seed=args.seed, target_fraction=args.target_fraction,
        source=path)
    return enroll, test, labels, path


def heldout_trials(args, train, cohort, top_n):
    """Calibration trials of --cal_data, scored as stage 4 scores a test list -> TrialSet.
    cohort: (mean (D,), speaker cohort (C, D)) of the training set (training_cohort)."""
    keys, raw = load_embeddings(args.cal_embeddings)
    if raw.shape[1] != train["raw"].shape[1]:
        raise UserError(f"{args.cal_embeddings}: dimension {raw.shape[1]} differs from the "
                        f"training embeddings ({train['raw'].shape[1]})")
    enroll, test, labels, source = _heldout_list(args, index_of(keys))
    log.info("%d calibration trials from %s (%d target, %d nontarget)", len(labels), source,
             int(labels.sum()), int((1 - labels).sum()))
    mean, spk_cohort = cohort
    return ctrials.score_eval_trials(
        enroll=enroll, test=test, labels=labels, keys=keys, raw=raw, cohort_mean=mean,
        cohort=spk_cohort, durations=ctrials.read_durations(args.cal_data), top_n=top_n,
        method=args.score_norm_method, dur_source=args.cal_data)


def training_cohort(train):
    """Cohort mean (D,) and AS-norm cohort (C, D) of the training set, as stage 4."""
    mean = train["raw"].mean(axis=0, dtype=np.float64)
    _, cohort = speaker_cohort(train["keys"], train["raw"], train["utt2spk"], mean)
    return mean, cohort


def eval_trials(args, cohort, top_n):
    """[(name, TrialSet)] of the test lists, with the quality measures of their utterances.
    cohort: (mean (D,), speaker cohort (C, D)) of the training set (training_cohort)."""
    scp = os.path.join(args.exp_dir, "embeddings", "test", "xvector.scp")
    keys, raw = load_embeddings(scp)
    index = index_of(keys)
    mean, spk_cohort = cohort
    durations = ctrials.read_durations(args.test_data)
    out = []
    for name in args.trials:
        path, enroll, test, labels, scores = _read_list(args, name)
        trial_indices(enroll, test, index, path, scp)  # UserError if an embedding is missing
        ts = ctrials.eval_trial_set(enroll=enroll, test=test, labels=labels, scores=scores,
                                keys=keys, raw=raw, cohort_mean=mean, cohort=spk_cohort,
                                durations=durations, top_n=top_n)
        out.append((name, ts))
    return out


def _fit(ts, names, system, args, extra=None):
    source = trials_source(args)
    meta = {"score": system, "trained_on": f"{len(ts.labels)} trials from {source['data']}",
            "calibration_data": source,
            "num_target": int(ts.labels.sum()), "num_nontarget": int((1 - ts.labels).sum()),
            **(extra or {})}
    c = cal.fit(ts.features(names, system), ts.labels, names, p_train=args.p_train,
                l2=args.l2, meta=meta)
    c.meta["train_cllr"] = round(cal.cllr(c.llr(ts.features(names, system)), ts.labels), 6)
    return c


def fit_all(args, train_ts, top_n):
    """{"<system>_plain"|"<system>_qmf": Calibration} and the raw-cosine Calibration."""
    qmf_extra = {"top_n": top_n, "score_norm_method": args.score_norm_method}
    cals = {}
    for system in ("cosine", args.score_norm_method):
        cals[f"{system}_plain"] = _fit(train_ts, ["score"], system, args)
        cals[f"{system}_qmf"] = _fit(train_ts, list(args.qmf_features), system, args, qmf_extra)
    return cals, _fit(train_ts, ["score"], "raw_cosine", args)


def ablation(args, train_ts, evals):
    """Cllr of every feature set of calibration.ABLATION -> rows of (system, set, metrics)."""
    rows = []
    for system in ("cosine", args.score_norm_method):
        for set_name, names in ctrials.ABLATION.items():
            c = _fit(train_ts, list(names), system, args)
            res = {"features": list(names), "train_cllr": c.meta["train_cllr"]}
            for name, ts in evals:
                r = cal.evaluate_llrs(c.llr(ts.features(names, system)), ts.labels,
                                      args.p_target)
                res[name] = {k: r[k] for k in ("cllr", "min_cllr", "eer",
                                               cal.act_dcf_key(args.p_target[0]))}
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


def apply_all(args, cals, evals):
    """Write the LLR score files; returns {list: {system: metrics}} and table rows."""
    new, rows = {}, []
    for name, ts in evals:
        for key, c in cals.items():
            llr = c.llr(ts.features(c.names, c.meta["score"]))
            out = os.path.join(args.exp_dir, "scores", f"{name}.{key}.llr.score")
            write_scores(out, ts.enroll, ts.test, llr, ts.labels)
            res = cal.evaluate_llrs(llr, ts.labels, args.p_target)
            new.setdefault(name, {})[key] = res
            rows.append((name, key, res))
    return new, rows


def write_outputs(args, cals, raw_cal, train_ts, ablation_rows):
    cal_dir = os.path.join(args.exp_dir, "calibration")
    for key, c in cals.items():
        c.save(os.path.join(cal_dir, f"{key}.json"))
    raw_cal.save(os.path.join(args.exp_dir, "calibration.json"))
    with atomic_write(os.path.join(cal_dir, "ablation.json")) as f:
        json.dump({"calibration_data": trials_source(args),
                   **{f"{s} {n}": r for s, n, r in ablation_rows}}, f, indent=2)
        f.write("\n")
    names = ("nontarget", "target")
    kaldi = "train_trials.kaldi" if args.cal_data is None else "cal_trials.kaldi"
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


def main(argv=None):
    args = parse_args(argv)
    train = load_training(args)
    n_spk = len(set(train["utt2spk"].values()))
    top_n = None if args.score_norm_method == "snorm" else clamp_top_n(args.top_n, n_spk, log)
    cohort = training_cohort(train)
    if args.cal_data is None:
        cal_ts = training_trials(args, train, top_n)
    else:
        cal_ts = heldout_trials(args, train, cohort, top_n)
    evals = eval_trials(args, cohort, top_n)
    warn_overlap(cal_ts, evals)
    cals, raw_cal = fit_all(args, cal_ts, top_n)
    rows = ablation(args, cal_ts, evals)
    new, table = apply_all(args, cals, evals)
    write_outputs(args, cals, raw_cal, cal_ts, rows)
    merge_results(os.path.join(args.exp_dir, "scores", "results.json"), new)
    what = "training" if args.cal_data is None else f"held-out ({args.cal_data})"
    print(f"feature ablation (fit on the {what} calibration trials; Cllr in bits, EER in %):")
    print(format_ablation(rows, [n for n, _ in evals], args.p_target[0]))
    print()
    print(format_table(table, args.p_target))
    log.info("calibrations -> %s/calibration/, raw cosine -> %s/calibration.json",
             args.exp_dir, args.exp_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
