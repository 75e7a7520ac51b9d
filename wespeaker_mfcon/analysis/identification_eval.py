"""Identification accuracy of a model on a Kaldi data dir: enroll one session per speaker,
identify with the others (benchmarks/eval_identification.py; report `identification`).

Sessions are the middle part of the utterance ids (<speaker>/<session>/<utt>, VoxCeleb's video).
Each speaker is enrolled from all utterances of its first session (sorted); every utterance of
its other sessions is a query, through apps/identification.Identifier (exact search):

* closed set: all speakers enrolled; top-1 and top-5 accuracy.
* open set: the speakers split in two halves (alternately in sorted order); with one half
  enrolled, the queries of that half are known speakers and those of the other half unknown
  ones; then the halves swap. Each answer (the best candidate whose LLR passes the Bayes
  threshold at p_target, or none of them) is counted as: known: correct, wrong speaker or
  missed (none of them); unknown: false alarm (someone) or rejected (none of them). Needs the
  experiment's calibration.
"""

import os

from wespeaker_mfcon.analysis.tables import markdown_table, measured_on
from wespeaker_mfcon.apps.embedder import load_model
from wespeaker_mfcon.apps.identification import Identifier, embed_wavs
from wespeaker_mfcon.apps.speaker_db import MEMORY
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp

OUTCOMES = ("correct", "wrong_speaker", "missed", "false_alarm", "rejected")


def session_plan(utt2spk):
    """{speaker: (enrollment utts, query utts)}: its first session enrolls, the others ask."""
    sessions = {}
    for utt, spk in sorted(utt2spk.items()):
        parts = utt.split("/")
        if len(parts) < 3:
            raise UserError(f"utterance id {utt!r}: expected <speaker>/<session>/<utt>")
        sessions.setdefault(spk, {}).setdefault(parts[-2], []).append(utt)
    plan = {}
    for spk, by_session in sessions.items():
        first, *rest = sorted(by_session)
        plan[spk] = (by_session[first], [u for s in rest for u in by_session[s]])
    if not any(queries for _, queries in plan.values()):
        raise UserError("no speaker has a second session to identify with")
    return plan


def _identifier(embedder, speakers, plan, embs):
    """An in-memory database with these speakers enrolled from their first session."""
    ident = Identifier(embedder, MEMORY, create=True, search="exact")
    ident.db.enroll_many([(s, [embs[u] for u in plan[s][0]], plan[s][0]) for s in speakers])
    return ident


def closed_set(embedder, plan, embs):
    """{top1, top5, queries}: all speakers enrolled."""
    hits1 = hits5 = total = 0
    with _identifier(embedder, sorted(plan), plan, embs) as ident:
        for spk, (_, queries) in plan.items():
            for utt in queries:
                names = [c.name for c in ident.identify_embedding(embs[utt], 5).candidates]
                hits1 += names[0] == spk
                hits5 += spk in names
                total += 1
    return {"top1": round(hits1 / total, 4), "top5": round(hits5 / total, 4), "queries": total}


def open_set(embedder, plan, embs, p_targets):
    """{p_target: {outcome: fraction}} over both halves (known outcomes as fractions of the
    known queries, unknown ones of the unknown queries), plus the query counts."""
    speakers = sorted(plan)
    halves = (speakers[0::2], speakers[1::2])
    counts = {p: dict.fromkeys(OUTCOMES, 0) for p in p_targets}
    known = unknown = 0
    for enrolled in halves:
        with _identifier(embedder, enrolled, plan, embs) as ident:
            for spk in speakers:
                for utt in plan[spk][1]:
                    is_known = spk in enrolled
                    known, unknown = known + is_known, unknown + (not is_known)
                    for p in p_targets:
                        answer = ident.identify_embedding(embs[utt], 1, p).answer
                        counts[p][_outcome(spk, answer, is_known)] += 1
    rates = {str(p): {o: round(n / (known if o in OUTCOMES[:3] else unknown), 4)
                      for o, n in c.items()} for p, c in counts.items()}
    return {"known_queries": known, "unknown_queries": unknown, "by_p_target": rates}


def _outcome(spk, answer, is_known):
    if not is_known:
        return "rejected" if answer is None else "false_alarm"
    return "missed" if answer is None else ("correct" if answer == spk else "wrong_speaker")


def evaluate(model, data, p_targets=(0.01, 0.1, 0.5), device="cpu"):
    """The identification figures (a JSON-able dict) of a model on data dir `data`."""
    embedder = load_model(model, device)
    wavs = read_scp(os.path.join(data, "wav.scp"))
    plan = session_plan(read_scp(os.path.join(data, "utt2spk")))
    utts = [u for enroll, queries in plan.values() for u in enroll + queries]
    missing = [u for u in utts if u not in wavs]
    if missing:
        raise UserError(f"{data}/wav.scp: no path for {missing[0]} ({len(missing)} missing)")
    embs = dict(zip(utts, embed_wavs(embedder, [wavs[u] for u in utts])))
    result = {"model": model, "data": data, "speakers": len(plan),
              "enrollments_per_speaker": round(sum(len(e) for e, _ in plan.values()) /
                                               len(plan), 2),
              "closed_set": closed_set(embedder, plan, embs)}
    calibration = embedder.calibration
    result["calibration"] = None if calibration is None else calibration.meta.get("trained_on")
    if calibration is not None:
        result["open_set"] = open_set(embedder, plan, embs, p_targets)
    return result


def render(data):
    """Markdown: closed-set accuracy, then the open-set outcomes per p_target."""
    closed = data["closed_set"]
    text = (f"{data['speakers']} speakers, each enrolled from one session "
            f"({data['enrollments_per_speaker']:g} utterances); {closed['queries']} queries from "
            f"their other sessions. Closed set: top-1 **{closed['top1']:.1%}**, top-5 "
            f"{closed['top5']:.1%}.\n\n")
    if "open_set" not in data:
        return text + "No calibration: no open-set decisions.\n\n" + measured_on(data) + "\n"
    opened = data["open_set"]
    rows = [[p] + [f"{r[o]:.1%}" for o in OUTCOMES] for p, r in opened["by_p_target"].items()]
    header = ["p_target", "known: correct", "known: wrong speaker", "known: missed",
              "unknown: false alarm", "unknown: rejected"]
    return (text + markdown_table(header, rows) +
            f"\nOpen set: half the speakers enrolled, {opened['known_queries']} queries of "
            f"enrolled and {opened['unknown_queries']} of unknown speakers (both halves in "
            f"turn); calibration: {data['calibration']}. {measured_on(data)}\n")
