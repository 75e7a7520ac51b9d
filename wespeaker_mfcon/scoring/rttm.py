"""NIST RTTM, the exchange format of diarization: one SPEAKER line per speaker turn.

    SPEAKER <file> 1 <start s> <duration s> <NA> <NA> <speaker> <NA> <NA>

Times are written in seconds with 3 decimals (md-eval, dscore and pyannote read them so). A
file with no speech has no line; read_rttm then knows it only if the caller names it.
"""

from collections import defaultdict

from wespeaker_mfcon.utils.errors import UserError


def rttm_lines(file_id, turns):
    """RTTM lines (list of str, no newline) for turns [(start s, end s, speaker), ...] of one
    file, in the given order; turns of zero or negative length are left out."""
    if not file_id or any(c.isspace() for c in file_id):
        raise UserError(f"RTTM file id {file_id!r}: must be non-empty without white space")
    lines = []
    for start, end, speaker in turns:
        start, dur = round(start, 3), round(end - start, 3)
        if dur > 0:
            lines.append(f"SPEAKER {file_id} 1 {start:.3f} {dur:.3f} <NA> <NA> {speaker} "
                         "<NA> <NA>")
    return lines


def read_rttm(path):
    """{file id: [(start s, end s, speaker), ...] in file order} from an RTTM file; lines of
    other types than SPEAKER are skipped. A malformed line raises UserError naming path:line."""
    turns = defaultdict(list)
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read RTTM ({e.strerror})") from None
    with f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0] != "SPEAKER":
                continue
            try:
                start, dur = float(fields[3]), float(fields[4])
                speaker = fields[7]
            except (IndexError, ValueError):
                raise UserError(f"{path}:{number}: not an RTTM SPEAKER line: "
                                f"{line.strip()!r}") from None
            if not (dur >= 0 and start >= 0):
                raise UserError(f"{path}:{number}: negative start or duration")
            turns[fields[1]].append((start, start + dur, speaker))
    return dict(turns)
