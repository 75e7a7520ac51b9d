"""Diarization error rate (DER) and Jaccard error rate (JER) with pyannote.metrics.

    DER = (missed speech + false alarm + speaker confusion) / reference speech
    JER = mean over reference speakers of 1 - |ref ∩ hyp| / |ref ∪ hyp| under the optimal
          one-to-one speaker mapping (DIHARD II)

Overlapped speech is scored (skip_overlap=False). A collar of c seconds removes +-c around every
reference boundary (md-eval's `-c c`, the NIST convention: a "0.25 s collar"); pyannote's
`collar` is the whole width, 2c. Each file is scored from the first to the last turn of its
reference and hypothesis together (no UEM). Rates are over all files together (time-weighted), as md-eval and
pyannote accumulate them; per-file rates come with them.
"""

import logging

from wespeaker_mfcon.scoring.rttm import read_rttm

logger = logging.getLogger(__name__)
COLLARS = (0.25, 0.0)


def annotation(turns, uri):
    """A pyannote.core.Annotation of turns [(start s, end s, speaker)]."""
    from pyannote.core import Annotation, Segment
    ann = Annotation(uri=uri)
    for i, (start, end, speaker) in enumerate(turns):
        if end > start:
            ann[Segment(start, end), i] = speaker
    return ann


def _extent(ref, hyp):
    """The scored region of a file without a UEM: from the first to the last turn of the
    reference and the hypothesis (what pyannote assumes, said here so that it need not warn)."""
    from pyannote.core import Segment, Timeline
    both = ref.get_timeline().union(hyp.get_timeline())
    return Timeline([both.extent() if len(both) else Segment(0, 0)])


def _metrics(collar):
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
    return (DiarizationErrorRate(collar=2 * collar, skip_overlap=False),
            JaccardErrorRate(collar=2 * collar, skip_overlap=False))


def score_turns(reference, hypothesis, collars=COLLARS):
    """reference, hypothesis: {file id: [(start, end, speaker)]} -> {"collar_C": {"der",
    "miss", "false_alarm", "confusion" (fractions of the reference speech), "jer",
    "speech_s", "files": {file: {"der", "jer"}}}} for each collar C (seconds each side).
    A file missing from the hypothesis counts as all missed."""
    extra = sorted(set(hypothesis) - set(reference))
    if extra:
        logger.warning("%d hypothesis file(s) without a reference, not scored: %s",
                       len(extra), " ".join(extra[:5]))
    out = {}
    for collar in collars:
        der, jer = _metrics(collar)
        files = {}
        for uri in sorted(reference):
            ref = annotation(reference[uri], uri)
            hyp = annotation(hypothesis.get(uri, []), uri)
            uem = _extent(ref, hyp)
            files[uri] = dict(der=float(der(ref, hyp, uem=uem)),
                              jer=float(jer(ref, hyp, uem=uem)))
        acc = der.accumulated_
        total = max(acc["total"], 1e-12)
        out[f"collar_{collar:g}"] = dict(
            der=float(abs(der)), miss=acc["missed detection"] / total,
            false_alarm=acc["false alarm"] / total, confusion=acc["confusion"] / total,
            jer=float(abs(jer)), speech_s=float(acc["total"]), files=files)
    return out


def score_rttm(ref_rttm, hyp_rttm, collars=COLLARS):
    """score_turns of two RTTM files."""
    return score_turns(read_rttm(ref_rttm), read_rttm(hyp_rttm), collars)


def format_scores(scores):
    """A plain-text table of score_turns' result: one row per collar, rates in %."""
    lines = [f"{'collar':>8} {'DER':>7} {'miss':>7} {'FA':>7} {'conf':>7} {'JER':>7}"]
    for key, s in scores.items():
        lines.append(f"{key.split('_', 1)[1] + ' s':>8} " + " ".join(
            f"{100 * s[k]:7.2f}" for k in ("der", "miss", "false_alarm", "confusion", "jer")))
    return "\n".join(lines)
