"""The augmentation lists (noise.scp, rir.scp) of local MUSAN / RIRS_NOISES copies, or a
generated stand-in set (the mini corpus): write_aug_lists.

``noise.scp`` lines are ``<type>-<name> <abs path>`` with type noise, music or speech (speech
is used for babble); ``rir.scp`` lines are ``<name> <abs path>``. Nothing is downloaded: the
roots must already hold the corpora. Lists are written atomically.

MUSAN root: the ``musan`` directory itself or a directory containing it; wavs are taken from
``{noise,music,speech}/**/*.wav``. RIR root: the ``RIRS_NOISES`` directory or one containing
it; ``simulated_rirs/**/*.wav`` and/or ``real_rirs_isotropic_noises/*.wav`` (the isotropic
noise recordings there are skipped), chosen with ``rir_sets``. A RIR root without that layout
is scanned for any ``*.wav``.
"""

import logging
import os

from wespeaker_mfcon.dataset.voxceleb import check_root_path, check_table_path, shown
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import write_table

logger = logging.getLogger(__name__)

MUSAN_TYPES = ("noise", "music", "speech")
RIR_SETS = ("simulated", "real")
_RIR_SET_DIRS = {"simulated": "simulated_rirs", "real": "real_rirs_isotropic_noises"}


def _find_wavs(root):
    """Sorted absolute paths of *.wav (any case) under root, following the tree recursively.

    Every path goes into a Kaldi list, so a name a table cannot hold (whitespace, control
    characters, undecodable bytes), a broken link or a name that is only ".wav" is refused.
    """
    check_root_path(root, what="corpus", why="the lists hold absolute paths")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(".wav"):
                found.append(_check_wav(root, os.path.join(dirpath, name)))
    return found


def _check_wav(root, path):
    check_table_path(path, os.path.relpath(path, root))
    if not os.path.exists(path):
        raise UserError(f"{shown(path)}: broken symbolic link (to {shown(os.readlink(path))}); "
                        "fix or remove it")
    if not os.path.basename(path)[:-len(".wav")].strip("."):
        raise UserError(f"{shown(path)}: file name is only an extension; rename it")
    return os.path.abspath(path)


def _key(rel):
    """Key from a relative path (already checked for whitespace): no extension, '/' -> '-'."""
    return os.path.splitext(rel)[0].replace(os.sep, "-").replace("/", "-")


def _subdir(root, name, children):
    """`root` if it already has one of `children`, else root/name if that has; else None."""
    for cand in (root, os.path.join(root, name)):
        if any(os.path.isdir(os.path.join(cand, c)) for c in children):
            return cand
    return None


def scan_musan(musan_root):
    """[(key, path)] for MUSAN noise/music/speech wavs; keys start with '<type>-'."""
    if not os.path.isdir(musan_root):
        raise UserError(f"--musan_root {musan_root}: no such directory")
    root = _subdir(musan_root, "musan", MUSAN_TYPES)
    if root is None:
        raise UserError(f"--musan_root {musan_root}: expected musan/{{noise,music,speech}}/ "
                        f"subdirectories (MUSAN layout)")
    rows, seen = [], set()
    for typ in MUSAN_TYPES:
        tdir = os.path.join(root, typ)
        if not os.path.isdir(tdir):
            logger.warning("MUSAN: no %s/ directory under %s", typ, root)
            continue
        wavs = _find_wavs(tdir)
        if not wavs:
            logger.warning("MUSAN: no wavs under %s", tdir)
        for path in wavs:
            rel = os.path.relpath(path, tdir)
            base = _key(os.path.basename(rel))
            # MUSAN names already carry the type (noise-free-sound-0000); keep them short
            key = base if base.startswith(typ + "-") else f"{typ}-{base}"
            if key in seen:
                key = f"{typ}-{_key(rel)}"
            if key in seen:
                raise UserError(f"{shown(path)}: MUSAN: two files map to the key {key!r}")
            seen.add(key)
            rows.append((key, path))
    if not rows:
        raise UserError(f"--musan_root {musan_root}: no .wav files found under "
                        f"{root}/{{noise,music,speech}}")
    return rows


def scan_rirs(rir_root, sets=RIR_SETS):
    """[(key, path)] for RIR wavs under a RIRS_NOISES tree (or any directory of wavs)."""
    if not os.path.isdir(rir_root):
        raise UserError(f"--rir_root {rir_root}: no such directory")
    root = _subdir(rir_root, "RIRS_NOISES", tuple(_RIR_SET_DIRS.values()))
    wavs = []
    if root is None:
        logger.warning("%s has no simulated_rirs/ or real_rirs_isotropic_noises/: "
                       "taking every wav under it as a RIR", rir_root)
        root = rir_root
        wavs = _find_wavs(root)
    else:
        for s in sets:
            sdir = os.path.join(root, _RIR_SET_DIRS[s])
            if not os.path.isdir(sdir):
                logger.warning("RIRS_NOISES: no %s/ under %s", _RIR_SET_DIRS[s], root)
                continue
            found = _find_wavs(sdir)
            if s == "real":     # that directory also holds isotropic noise recordings
                found = [p for p in found if "noise" not in os.path.basename(p).lower()]
            wavs += found
    if not wavs:
        raise UserError(f"--rir_root {rir_root}: no RIR .wav files found "
                        f"(sets: {', '.join(sets)})")
    rows, seen = [], {}
    for path in wavs:
        key = _key(os.path.relpath(path, root))
        if key in seen:
            raise UserError(f"{shown(path)}: RIR key {key!r} is also the key of "
                            f"{shown(seen[key])}; keep only one of the two files")
        seen[key] = path
        rows.append((key, path))
    return rows


def write_aug_lists(out_dir, musan_root="", rir_root="", rir_sets=RIR_SETS):
    """out_dir/noise.scp from musan_root and/or out_dir/rir.scp from rir_root (both scanned
    before either is written). Returns the paths of the lists written. (The generated stand-in
    of the mini corpus: synth/noise.py write_synthetic_lists.)"""
    if not musan_root and not rir_root:
        raise UserError("nothing to do: give --musan_root and/or --rir_root, or --synthetic N")
    # scan everything first so a bad root writes nothing
    noise_rows = scan_musan(musan_root) if musan_root else None
    rir_rows = scan_rirs(rir_root, rir_sets) if rir_root else None
    written = []
    if noise_rows is not None:
        written.append(os.path.join(out_dir, "noise.scp"))
        write_table(written[-1], noise_rows)
        counts = {t: sum(k.startswith(t + "-") for k, _ in noise_rows) for t in MUSAN_TYPES}
        logger.info("noise.scp: %d files %s", len(noise_rows), counts)
    if rir_rows is not None:
        written.append(os.path.join(out_dir, "rir.scp"))
        write_table(written[-1], rir_rows)
        logger.info("rir.scp: %d files", len(rir_rows))
    return written
