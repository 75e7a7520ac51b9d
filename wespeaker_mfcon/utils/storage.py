"""Storage faults as one line a person can act on, and free-space checks before big writes.

A write can fail because the disk is full (ENOSPC), the quota is used up (EDQUOT), the file
system is read-only (EROFS), the output directory vanished (ENOENT, ESTALE) or may not be
written (EACCES). Python reports these as OSErrors with an errno, but torch.save and the ONNX
exporter turn them into RuntimeErrors without one ("[enforce fail at inline_container.cc:672]
. unexpected pos ...", "basic_ios::clear: iostream error"). So a failed write is diagnosed by
the directory itself, before its partial file is removed: does it still exist, and can a
probe file be written there. utils/file_utils.atomic_path calls diagnose() on every failure.
"""

import errno
import os
import shutil
import tempfile

REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "the directory vanished",
    errno.ESTALE: "the directory vanished (stale file handle)",
}

PROBE_BYTES = 1 << 16


def size_text(nbytes):
    """1000 -> '1000 bytes'; 1536 -> '1.5 KiB'; 3.2e9 -> '3.0 GiB'."""
    value, units = float(nbytes), ["bytes", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.0f} bytes" if units[0] == "bytes" else f"{value:.1f} {units[0]}"


def free_bytes(dirname):
    """Bytes an unprivileged writer may still use under dirname; None if it does not exist."""
    try:
        return shutil.disk_usage(dirname).free
    except OSError:
        return None


def diagnose(dirname, error=None):
    """Why writes into dirname fail ("no space left on the device", ...), or None when nothing
    stops them (then `error` was not a storage fault). Call it while a failed write's partial
    file is still there: that file may be what fills the disk."""
    code = _errno_of(error)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):     # about writing, whatever file
        return REASONS[code]
    if not os.path.isdir(dirname):
        return REASONS[errno.ENOENT]
    return _probe(dirname)


def allocated_bytes(path):
    """Disk space a file takes (0 if there is no such file)."""
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def describe(path, reason, needed=None, freed=0):
    """The one line for a write of `path` that failed for `reason` (from diagnose); `freed`:
    bytes of its partial file, removed but maybe still held open by the failed writer."""
    dirname = os.path.dirname(os.path.abspath(path))
    space = ""
    free = free_bytes(dirname)
    free = free + freed if free is not None else None
    if needed is not None and free is not None:
        space = f" (the write needs about {size_text(needed)}; {size_text(free)} free there)"
    elif free is not None and reason == REASONS[errno.ENOSPC]:
        space = f" ({size_text(free)} free there)"
    where = f"{dirname}: " if reason.startswith("the directory") else ""
    return (f"{path}: not written: {where}{reason}{space}; nothing already written was "
            "changed: fix it and run the same command again")


def _errno_of(error):
    """The errno of error or of an OSError it was raised from, else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error.errno
        error = error.__cause__ or error.__context__
    return None


def _probe(dirname):
    """Write, sync and remove a small file in dirname: the reason that fails, or None."""
    try:
        fd, probe = tempfile.mkstemp(dir=dirname, prefix=".probe_")
    except OSError as e:
        return REASONS.get(e.errno)
    try:
        with open(fd, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return REASONS.get(e.errno)
    finally:
        os.remove(probe)
    return None
