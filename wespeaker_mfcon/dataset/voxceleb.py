"""Stage 0 library: VoxCeleb-layout trees and trial lists -> Kaldi data dirs.

A tree is <root>/<speaker>/<video>/<utt>.{wav,m4a}; the utterance id is the path
relative to <root> without its extension (as WeSpeaker does), the speaker is its
first component. VoxCeleb trial lines are "1 id/vid/utt.wav id/vid/utt.wav".
"""

import logging
import os
import shutil
import subprocess

import soundfile as sf

from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_table, write_table

AUDIO_EXTS = (".wav", ".flac", ".m4a")


def scan_tree(root):
    """Return sorted [(utt_id, path)] for every audio file 3 levels below root."""
    if not os.path.isdir(root):
        raise UserError(f"{root}: not a directory")
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTS:
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            parts = rel.split(os.sep)
            if len(parts) != 3:
                raise UserError(f"{path}: expected <root>/<speaker>/<video>/<utt>{ext}, "
                                f"found {len(parts) - 1} directory levels")
            utt = "/".join(parts[:2] + [stem])
            if utt in found:
                raise UserError(f"{path}: duplicate utterance id {utt!r} (also {found[utt]})")
            found[utt] = path
    if not found:
        raise UserError(f"{root}: no audio files ({', '.join(AUDIO_EXTS)}) found in the tree")
    return sorted(found.items())


def convert_m4a(utt_paths, wav_dir):
    """Convert .m4a entries to 16 kHz mono wav under wav_dir with ffmpeg."""
    todo = [(u, p) for u, p in utt_paths if p.lower().endswith(".m4a")]
    if not todo:
        return utt_paths
    if shutil.which("ffmpeg") is None:
        raise UserError(f"found {len(todo)} .m4a files (first: {todo[0][1]}) but ffmpeg is "
                        "not installed; install ffmpeg or convert them to wav")
    converted = {}
    for utt, src in todo:
        dst = os.path.join(wav_dir, utt + ".wav")
        if not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            tmp = dst + ".tmp.wav"
            proc = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", src,
                                   "-ac", "1", "-ar", "16000", tmp], capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"{src}: ffmpeg failed: {proc.stderr.strip()[:200]}")
            os.replace(tmp, dst)
        converted[utt] = dst
    return [(u, converted.get(u, p)) for u, p in utt_paths]


def audio_duration(path):
    """Duration in seconds, with a UserError naming the file if it is not usable audio."""
    try:
        info = sf.info(path)
    except Exception as e:  # soundfile raises several types for bad files
        raise UserError(f"{path}: unreadable audio ({e})") from None
    if info.frames <= 0:
        raise UserError(f"{path}: empty audio (0 samples)")
    missing = wav_bytes_missing(path)
    if missing > 0:
        raise UserError(f"{path}: truncated audio ({missing} bytes of the data chunk missing)")
    return info.frames / info.samplerate


def wav_bytes_missing(path):
    """For a RIFF/WAVE file, how many bytes its data chunk header promises beyond the file end."""
    if not path.lower().endswith(".wav"):
        return 0
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return 0
        while True:
            header = f.read(8)
            if len(header) < 8:
                return 0
            chunk_size = int.from_bytes(header[4:8], "little")
            if header[:4] == b"data":
                return max(0, f.tell() + chunk_size - size)
            f.seek(chunk_size + chunk_size % 2, os.SEEK_CUR)


def write_data_dir(out_dir, utt_paths):
    """Write wav.scp, utt2spk, spk2utt, utt2dur for [(utt, path)] into out_dir."""
    utt2spk = [(u, u.split("/")[0]) for u, _ in utt_paths]
    spk2utt = {}
    for utt, spk in utt2spk:
        spk2utt.setdefault(spk, []).append(utt)
    durations = [(u, f"{audio_duration(p):.3f}") for u, p in utt_paths]
    os.makedirs(out_dir, exist_ok=True)
    write_table(os.path.join(out_dir, "wav.scp"), [(u, os.path.abspath(p)) for u, p in utt_paths])
    write_table(os.path.join(out_dir, "utt2spk"), utt2spk)
    write_table(os.path.join(out_dir, "spk2utt"), sorted(spk2utt.items()))
    write_table(os.path.join(out_dir, "utt2dur"), durations)


def convert_trials(trials_path, utts, out_path):
    """VoxCeleb trial list -> Kaldi "enroll test target|nontarget"; every utt must exist."""
    known = set(utts)
    rows, missing = [], []
    for lineno, (label, fields) in enumerate(read_table(trials_path, min_fields=3, max_fields=3,
                                                        allow_duplicates=True), 1):
        if label not in ("0", "1"):
            raise UserError(f"{trials_path}: line {lineno}: label must be 0 or 1, got {label!r}")
        enroll, test = (os.path.splitext(f)[0] for f in fields)
        for utt in (enroll, test):
            if utt not in known:
                missing.append(f"line {lineno}: {utt}")
        rows.append((enroll, [test, "target" if label == "1" else "nontarget"]))
    if missing:
        raise UserError(f"{trials_path}: {len(missing)} trial utterances are not in the test "
                        f"set, first: {'; '.join(missing[:3])}")
    if not rows:
        raise UserError(f"{trials_path}: no trials")
    write_table(out_path, rows)
    logging.info("%s: %d trials -> %s", trials_path, len(rows), out_path)


def prepare_set(root, out_dir, trials=()):
    """Build one Kaldi data dir from a tree (plus its trial lists) into out_dir, atomically.

    Everything goes to out_dir.tmp first and is renamed at the end, so a failure leaves
    no out_dir that a re-run would take as complete.
    """
    tmp_dir = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    utt_paths = convert_m4a(scan_tree(root), os.path.join(os.path.dirname(out_dir), "wav_m4a"))
    try:
        write_data_dir(tmp_dir, utt_paths)
        for path in trials:
            name = os.path.splitext(os.path.basename(path))[0]
            convert_trials(path, [u for u, _ in utt_paths],
                           os.path.join(tmp_dir, "trials", name + ".kaldi"))
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp_dir, out_dir)
    logging.info("%s: %d utterances from %s", out_dir, len(utt_paths), root)
