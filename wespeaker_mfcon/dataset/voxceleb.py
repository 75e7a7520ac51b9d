"""Stage 0 library: VoxCeleb-layout trees and trial lists -> Kaldi data dirs.

A tree is <root>/<speaker>/<video>/<utt>.{wav,flac,m4a}; the utterance id is the path
relative to <root> without its extension (as WeSpeaker does), the speaker is its first
component. VoxCeleb trial lines are "1 id/vid/utt.wav id/vid/utt.wav".

Kaldi tables are "key value" lines split on whitespace, so a name that holds whitespace (any
kind: space, tab, newline, no-break space...), a control character or undecodable bytes cannot
go into one: stage 0 refuses such a tree with one error naming the path, before writing anything.
Every tree and trial list is checked, and every file measured, before any data dir is written.

At VoxCeleb2 scale (1.1 M files) the audio pass runs in `nj` processes with a progress bar, and
its result is in sorted utterance order whatever nj is. In it, each .m4a is converted with
ffmpeg (from PATH, else the binary of the imageio-ffmpeg package) to 16 kHz mono
<data>/wav_m4a/<set>/<utt>.wav through atomic_path, so a wav there is complete: a killed run
started again reuses every wav already there (the log counts converted and reused files) and
converts only the rest; a temporary left by the kill is never taken for a converted file. Then
every file's header is read for utt2dur.

One unreadable file among a million (undecodable, empty, truncated, ffmpeg failure) is never
passed over silently. on_bad_audio='error' (the default): the whole set is still read, then
stage 0 stops with one error naming the first bad file and the count, every bad file listed in
<data>/<set>.bad_audio.txt ("utt path reason"), and no data dir written. 'skip': the data dir is
written without them, they are listed in <data>/<set>/bad_audio.txt and a warning gives the
count; a file named by a trial list cannot be skipped (the evaluation list stays complete).
"""

import collections
import contextlib
import functools
import glob
import logging
import os
import shutil
import subprocess
import unicodedata

from wespeaker_mfcon.config.schema import SAMPLE_RATE
from wespeaker_mfcon.utils.audio import audio_info
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, write_table
from wespeaker_mfcon.utils.parallel import parallel_map

AUDIO_EXTS = (".wav", ".flac", ".m4a")
LAYOUT = "<root>/<speaker>/<video>/<utt>.wav"
_CHAR_NAMES = {" ": "a space", "\t": "a tab", "\n": "a newline", "\r": "a carriage return"}


# ---------------------------------------------------------------- names Kaldi tables can hold

def shown(path):
    """`path` for an error line: as it is, or repr() when printing it raw would break the line
    or hide characters (line breaks, control and format characters, undecodable bytes)."""
    for ch in path:
        if ch != "\t" and (unicodedata.category(ch) in ("Cc", "Cf", "Cs")
                           or len(f"a{ch}b".splitlines()) > 1):
            return repr(path)
    return path


def _describe(ch):
    return _CHAR_NAMES.get(ch) or f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".rstrip()


def table_name_problem(text):
    """Why `text` cannot go into a whitespace-split UTF-8 Kaldi table, or '' if it can."""
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":  # os.listdir's surrogate escape for bytes that are not UTF-8
            return "is not valid UTF-8 (undecodable bytes), which Kaldi tables cannot hold"
        if ch.isspace():  # exactly what str.split() splits on
            return f"holds whitespace ({_describe(ch)}), which Kaldi tables cannot hold"
        if category in ("Cc", "Cf"):
            return f"holds the invisible control character {_describe(ch)}, " \
                   "which Kaldi tables must not hold"
    return ""


def check_table_path(path, text=None, fix="rename it"):
    """UserError naming `path` when `text` (default: the path itself) cannot go into a table."""
    problem = table_name_problem(path if text is None else text)
    if problem:
        what = "path" if text is None else "name"
        raise UserError(f"{shown(path)}: {what} {problem}; {fix}")
    return path


def check_root_path(root, what="tree", why="wav.scp holds absolute paths"):
    """The absolute root goes into table values, so it must hold no whitespace either."""
    abs_root = os.path.abspath(root)
    check_table_path(abs_root, fix=f"move or link the {what} to a path without it ({why})")
    return abs_root


# ---------------------------------------------------------------- the tree

def _list_dir(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        raise UserError(f"{shown(path)}: cannot read directory ({e.strerror})") from None


def audio_stem(name):
    """('00001', '.wav') for an audio file name (extension in any case), None otherwise."""
    for ext in AUDIO_EXTS:
        if name.lower().endswith(ext):
            return name[:-len(ext)], ext
    return None


def _check_entry(path, name, depth):
    """True for a tree entry to descend into (speaker, video dir) or keep (utterance file).

    depth: 1 speaker, 2 video, 3 utterance. Raises for a broken link, audio at the wrong
    depth and a name that a Kaldi table cannot hold; other files (README, .DS_Store) are skipped.
    """
    if os.path.islink(path) and not os.path.exists(path):
        raise UserError(f"{shown(path)}: broken symbolic link (to {shown(os.readlink(path))}); "
                        "fix or remove it")
    is_dir, is_audio = os.path.isdir(path), audio_stem(name) is not None
    if depth < 3 and not is_dir:
        if is_audio:
            raise UserError(f"{shown(path)}: audio file at the wrong depth: expected {LAYOUT}, "
                            f"found {depth - 1} directory levels below the root")
        return False
    if depth == 3 and is_dir:
        _refuse_deeper_audio(path)
        return False
    if depth == 3 and not is_audio:
        return False
    check_table_path(path, name)
    if depth == 3 and not audio_stem(name)[0].strip("."):
        raise UserError(f"{shown(path)}: file name is only an extension, so its utterance id "
                        "would be empty; rename it")
    if depth == 3 and not os.path.isfile(path):
        raise UserError(f"{shown(path)}: not a regular file")
    return True


def _refuse_deeper_audio(path):
    for dirpath, _, files in os.walk(path):
        for name in sorted(files):
            if audio_stem(name) is not None:
                deep = os.path.join(dirpath, name)
                levels = len(os.path.relpath(deep, os.path.dirname(path)).split(os.sep)) + 1
                raise UserError(f"{shown(deep)}: audio file at the wrong depth: expected "
                                f"{LAYOUT}, found {levels} directory levels below the root")


def _scan_dir(path, depth, found):
    """Add the utterances under `path` (speaker dir: depth 1, video dir: 2) to found."""
    before = len(found)
    for name in _list_dir(path):
        entry = os.path.join(path, name)
        if not _check_entry(entry, name, depth + 1):
            continue
        if depth == 2:
            _add_utterance(entry, name, found)
        else:
            _scan_dir(entry, depth + 1, found)
    if len(found) == before:
        kind = "speaker" if depth == 1 else "video"
        raise UserError(f"{shown(path)}: {kind} directory holds no audio files "
                        f"({', '.join(AUDIO_EXTS)}); remove it or restore its files")


def _add_utterance(path, name, found):
    utt = "/".join(path.split(os.sep)[-3:-1] + [audio_stem(name)[0]])
    if utt in found:
        raise UserError(f"{shown(path)}: duplicate utterance id {utt!r} (also {shown(found[utt])})"
                        "; keep only one of the two files")
    found[utt] = path


def _refuse_near_duplicates(utt_paths):
    """Ids equal up to letter case or Unicode form are one file on case-insensitive file
    systems (and the .m4a conversion cache), and easy to confuse anywhere."""
    seen = {}
    for utt, path in utt_paths:
        folded = unicodedata.normalize("NFC", utt).casefold()
        if folded in seen:
            other, other_path = seen[folded]
            raise UserError(f"{shown(path)}: utterance id {utt!r} differs from {other!r} "
                            f"({shown(other_path)}) only in letter case or Unicode form; "
                            "rename one")
        seen[folded] = (utt, path)


def scan_tree(root):
    """Return sorted [(utt_id, path)] for every audio file 3 levels below root.

    UserError (naming the path) for a layout or a name that a Kaldi table cannot hold.
    """
    if not os.path.isdir(root):
        raise UserError(f"{shown(root)}: not a directory")
    check_root_path(root)
    found = {}
    for name in _list_dir(root):
        speaker_dir = os.path.join(root, name)
        if _check_entry(speaker_dir, name, 1):
            _scan_dir(speaker_dir, 1, found)
    if not found:
        raise UserError(f"{shown(root)}: no audio files ({', '.join(AUDIO_EXTS)}) found in "
                        "the tree")
    utt_paths = sorted(found.items())
    _refuse_near_duplicates(utt_paths)
    return utt_paths


# ---------------------------------------------------------------- audio: conversion, durations

BAD_AUDIO_MODES = ("error", "skip")


def find_ffmpeg():
    """ffmpeg on PATH, else the binary the imageio-ffmpeg package ships; None if neither."""
    path = shutil.which("ffmpeg")
    if path:
        return path
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return None


def _remove_leftovers(dst):
    """Delete temporaries of dst that a killed run left (atomic_path names them .tmp_<name>.*);
    they are never taken for a converted file, this only frees their space."""
    head, base = os.path.split(dst)
    for tmp in glob.glob(os.path.join(glob.escape(head), glob.escape(f".tmp_{base}.") + "*")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _ffmpeg_to_wav(ffmpeg, src, dst):
    """src -> mono 16-bit wav at SAMPLE_RATE (the training default; load_wav resamples to
    another run's rate) at dst, through atomic_path: dst exists only complete."""
    _remove_leftovers(dst)
    with atomic_path(dst) as tmp:
        proc = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", src, "-vn",
                               "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", tmp],
                              capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            error = " ".join(proc.stderr.split())[:200] or f"exit status {proc.returncode}"
            raise UserError(f"{shown(src)}: ffmpeg failed: {error}")


def _m4a_wav(src, dst, ffmpeg):
    """(duration, 'reused' | 'converted') of the wav at dst converted from src.

    A wav at dst newer than src was written whole by an earlier run (atomically), so it is
    reused; one older than src, or whose header does not check out (not written by this
    stage), is converted again.
    """
    if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
        with contextlib.suppress(UserError):
            return audio_duration(dst), "reused"
    _ffmpeg_to_wav(ffmpeg, src, dst)
    try:
        return audio_duration(dst), "converted"
    except UserError as e:
        raise UserError(f"{shown(src)}: converted to {e}") from None


def _measure_one(item, ffmpeg=None):
    """One file, in a worker: (utt, path, duration, how, '') with how 'read', 'converted' or
    'reused', or (utt, source, None, 'bad', one-line reason naming the source)."""
    utt, src, dst = item
    try:
        if dst is None:
            return utt, src, audio_duration(src), "read", ""
        duration, how = _m4a_wav(src, dst, ffmpeg)
        return utt, dst, duration, how, ""
    except UserError as e:
        return utt, src, None, "bad", str(e)
    except OSError as e:  # vanished or unreadable since the scan, ffmpeg not runnable
        return utt, src, None, "bad", f"{shown(src)}: {e.strerror or e}"


def measure_audio(utt_paths, wav_dir, nj=1, desc="audio"):
    """[(utt, path, duration, how, problem)] in utt_paths order (see _measure_one), in nj
    processes: .m4a converted to wav_dir/<utt>.wav (reused when there), every header read."""
    todo = [p for _, p in utt_paths if p.lower().endswith(".m4a")]
    ffmpeg = None
    if todo:
        ffmpeg = find_ffmpeg()
        if ffmpeg is None:
            raise UserError(f"{shown(todo[0])}: .m4a file ({len(todo)} in all) but ffmpeg is not "
                            "installed; put ffmpeg on PATH, pip install imageio-ffmpeg, or "
                            "convert them to wav")
        check_root_path(wav_dir, what="data dir")  # the converted wavs go into wav.scp
    items = [(u, p, os.path.join(wav_dir, u + ".wav") if p.lower().endswith(".m4a") else None)
             for u, p in utt_paths]
    results = parallel_map(functools.partial(_measure_one, ffmpeg=ffmpeg), items, nj, desc,
                           unit="file")
    counts = collections.Counter(how for _, _, _, how, _ in results)
    if todo:
        done = counts["converted"] + counts["reused"]
        logging.info(f"{wav_dir}: {len(todo)} .m4a files: {counts['converted']} converted, "
                     f"{counts['reused']} reused from an earlier run, {len(todo) - done} bad")
    return results


def audio_duration(path):
    """Duration in seconds, with a UserError naming the file if it is not usable audio."""
    try:
        frames, sample_rate, _ = audio_info(path)
    except UserError as e:
        raise UserError(str(e).replace(path, shown(path), 1)) from None
    return frames / sample_rate


def split_bad_audio(results, out_dir, on_bad_audio="error"):
    """(good [(utt, path, duration)], bad rows [(utt, [source, reason])]) of measure_audio's
    results. 'error': any bad file stops here, listed in <out_dir>.bad_audio.txt; 'skip': the
    caller writes them to <out_dir>/bad_audio.txt. Either way a warning or an error says so."""
    good = [(u, p, d) for u, p, d, how, _ in results if how != "bad"]
    bad = [(u, p, why) for u, p, _, how, why in results if how == "bad"]
    rows = [(u, [p, why[len(shown(p)) + 2:] if why.startswith(f"{shown(p)}: ") else why])
            for u, p, why in bad]
    list_path = out_dir + ".bad_audio.txt"
    if bad and on_bad_audio == "error":
        write_table(list_path, rows)
        raise UserError(f"{bad[0][2]} (bad audio files: {len(bad)} of {len(results)}, all "
                        f"listed in {shown(list_path)}; fix or remove them, or skip them with "
                        "--on_bad_audio skip)")
    with contextlib.suppress(FileNotFoundError):
        os.remove(list_path)  # from an earlier failed run
    if len(bad) == len(results):
        raise UserError(f"{bad[0][2]} (and every other one of the {len(results)} audio files "
                        "is bad too; nothing to prepare)")
    if bad:
        listed = os.path.join(out_dir, "bad_audio.txt")
        logging.warning(f"{out_dir}: skipped {len(bad)} of {len(results)} audio files that are "
                        f"bad (--on_bad_audio skip), listed in {listed}; first: {bad[0][2]}")
    return good, rows


def refuse_trials_on_bad(trial_tables, bad_rows):
    """A skipped file must not be named by a trial list: evaluation lists stay complete."""
    bad = dict(bad_rows)
    for name, rows in trial_tables.items():
        for enroll, (test, _) in rows:
            for utt in (enroll, test):
                if utt in bad:
                    src, why = bad[utt]
                    raise UserError(f"{shown(src)}: {why}; it cannot be skipped because "
                                    f"{name} names {utt!r}: fix or replace the file, or "
                                    "remove its trials")


# ---------------------------------------------------------------- tables

def data_dir_tables(measured):
    """{file name: rows} of wav.scp, utt2spk, spk2utt, utt2dur for [(utt, path, duration)]."""
    wav_scp = [(u, check_root_path(p, what="file")) for u, p, _ in measured]
    utt2spk = [(u, u.split("/")[0]) for u, _, _ in measured]
    spk2utt = {}
    for utt, spk in utt2spk:
        spk2utt.setdefault(spk, []).append(utt)
    durations = [(u, f"{d:.3f}") for u, _, d in measured]
    return {"wav.scp": wav_scp, "utt2spk": utt2spk, "spk2utt": sorted(spk2utt.items()),
            "utt2dur": durations}


def read_vox_trials(path):
    """[(lineno, label, enroll, test)] of a VoxCeleb trial list; errors name file:line."""
    if not os.path.isfile(path):
        reason = "not a file" if os.path.exists(path) else "no such file"
        raise UserError(f"{shown(path)}: {reason}")
    rows = []
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, 1):
            where = f"{shown(path)}:{lineno}"
            fields = line.split()
            if not fields:
                continue
            problem = next((p for p in map(table_name_problem, fields) if p), "")
            if problem:
                raise UserError(f"{where}: a field {problem}: {shown(line.strip()[:80])}")
            if len(fields) != 3:
                hint = " (a path with whitespace?)" if len(fields) > 3 else ""
                raise UserError(f"{where}: expected 3 fields '<0|1> <id/vid/utt.wav> "
                                f"<id/vid/utt.wav>', got {len(fields)}{hint}: "
                                f"{line.strip()[:80]!r}")
            if fields[0] not in ("0", "1"):
                raise UserError(f"{where}: label must be 0 or 1, got {fields[0]!r} (VoxCeleb "
                                "format: '1 id/vid/utt.wav id/vid/utt.wav')")
            rows.append((lineno, fields[0], fields[1], fields[2]))
    if not rows:
        raise UserError(f"{shown(path)}: no trials")
    return rows


def convert_trials(trials_path, utts, root="the test tree"):
    """VoxCeleb trial list -> Kaldi rows (enroll, [test, target|nontarget]); all utts known."""
    known = set(utts)
    rows, missing = [], []
    for lineno, label, *paths in read_vox_trials(trials_path):
        enroll, test = (os.path.splitext(p)[0] for p in paths)
        missing += [(lineno, utt) for utt in (enroll, test) if utt not in known]
        rows.append((enroll, [test, "target" if label == "1" else "nontarget"]))
    if missing:
        lineno, utt = missing[0]
        raise UserError(f"{shown(trials_path)}:{lineno}: {utt!r} is not in {shown(root)} "
                        f"({len(missing)} trial utterances missing in all, lines "
                        f"{', '.join(str(n) for n, _ in missing[:5])}"
                        f"{', ...' if len(missing) > 5 else ''})")
    return rows


def trial_table_names(trials):
    """trials/<list name>.kaldi for each list; the names go into shell lists (stage 4)."""
    names = {}
    for path in trials:
        base = os.path.basename(path)
        name = os.path.splitext(base)[0]
        check_table_path(path, base, fix="rename it (its name goes into trials/NAME.kaldi)")
        if not name or name in names:
            other = f" as {shown(names[name])} does" if name in names else ""
            raise UserError(f"{shown(path)}: trial list would be written to "
                            f"trials/{name}.kaldi{other}; give the lists distinct names")
        names[name] = path
    return {os.path.join("trials", name + ".kaldi"): path for name, path in names.items()}


# ---------------------------------------------------------------- data dirs

def scan_set(root, out_dir, trials=()):
    """Check one set without reading audio: ([(utt, path)], {trials/NAME.kaldi: rows})."""
    check_root_path(out_dir, what="data dir", why="stage 1 writes feats.scp paths under it")
    table_names = trial_table_names(trials)
    utt_paths = scan_tree(root)
    utts = [u for u, _ in utt_paths]
    return utt_paths, {out: convert_trials(path, utts, root) for out, path in table_names.items()}


def measure_set(utt_paths, trial_tables, out_dir, nj=1, on_bad_audio="error"):
    """{file in the data dir: rows}, converting .m4a (cached under <data>/wav_m4a/<set>) and
    reading every file's duration in nj processes. Writes no data dir; bad audio is handled
    as split_bad_audio says (skip: listed in the data dir's bad_audio.txt)."""
    out_dir = os.path.normpath(os.path.abspath(out_dir))
    wav_dir = os.path.join(os.path.dirname(out_dir), "wav_m4a", os.path.basename(out_dir))
    results = measure_audio(utt_paths, wav_dir, nj=nj,
                            desc=f"{os.path.basename(out_dir)}: audio")
    good, bad_rows = split_bad_audio(results, out_dir, on_bad_audio)
    refuse_trials_on_bad(trial_tables, bad_rows)
    tables = {**data_dir_tables(good), **trial_tables}
    if bad_rows:
        tables["bad_audio.txt"] = bad_rows
    return tables


def write_set(tables, out_dir):
    """Write {file: rows} as out_dir through atomic_path: it appears complete or not at all."""
    with atomic_path(out_dir) as tmp_dir:
        for name, rows in tables.items():
            write_table(os.path.join(tmp_dir, name), rows)
    trials = sorted(name for name in tables if name.startswith("trials"))
    logging.info("%s: %d utterances%s", out_dir, len(tables["wav.scp"]),
                 f", trial lists {', '.join(trials)}" if trials else "")


def prepare_sets(sets, nj=1, on_bad_audio="error"):
    """[(root, out_dir, trials)]: every tree and trial list is checked, then every file
    measured (nj processes), before any data dir is written. on_bad_audio: 'error' | 'skip'."""
    if on_bad_audio not in BAD_AUDIO_MODES:
        raise UserError(f"on_bad_audio must be one of {', '.join(BAD_AUDIO_MODES)}, "
                        f"got {on_bad_audio!r}")
    scanned = [(scan_set(root, out_dir, trials), out_dir) for root, out_dir, trials in sets]
    measured = [(measure_set(*scan, out_dir, nj=nj, on_bad_audio=on_bad_audio), out_dir)
                for scan, out_dir in scanned]
    for tables, out_dir in measured:
        write_set(tables, out_dir)
