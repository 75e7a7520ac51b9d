"""Shards over the network: shard.list entries that are http(s):// URLs or pipe: commands.

Each is opened with WebDataset's own URL handling (webdataset.gopen): a pipe: command runs as
written; an http(s) URL is read through curl in a pipe:, as webdataset reads one (its
gopen_curl), with a stall timeout added (curl --speed-limit/--speed-time), so that a server
that stops sending is an error rather than a hang.

When a read fails, the exit status of curl or the command tells a transport failure (a refused
or dropped connection, an HTTP error, a timeout: worth trying again) from bad bytes (a corrupt
tar: not). dataset/shards.read_shard retries the first with a backoff.
"""

import shlex
import subprocess

from webdataset.gopen import gopen

REMOTE_PREFIXES = ("http://", "https://", "pipe:")
CURL = ("curl --fail --silent --location --connect-timeout 15 "
        "--speed-limit 1 --speed-time 60")
CURL_ERRORS = {6: "could not resolve the host", 7: "could not connect to the server",
               18: "the transfer ended early", 22: "the server answered with an HTTP error",
               28: "timed out", 52: "the server sent nothing", 56: "the connection broke"}
OK_STATUS = (0, 141)            # 141: the reader closed the pipe early (SIGPIPE)


class TransportError(Exception):
    """A shard's bytes stopped coming (the message says why): worth trying again."""


def is_remote(entry):
    """Is this shard.list entry a URL or a pipe: command (not a local path)?"""
    return entry.startswith(REMOTE_PREFIXES)


def open_stream(entry):
    """A readable binary stream of the tar at entry: a local path, an http(s) URL or a
    pipe: command."""
    if entry.startswith(("http://", "https://")):
        entry = f"pipe:{CURL} {shlex.quote(entry)}"
    return gopen(entry)


def transport_failure(stream, entry):
    """After a read of stream (from open_stream) stopped, why its transport failed, or None
    if it did not (a local file, or a command that ended well or is still sending)."""
    proc = getattr(stream, "proc", None)
    if proc is None:
        return None
    try:
        status = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None
    if status in OK_STATUS:
        return None
    if entry.startswith("pipe:"):
        return f"the command exited with status {status}"
    return f"curl: {CURL_ERRORS.get(status, 'failed')} (exit status {status})"


def close_stream(stream):
    """Close a stream from open_stream; a command still sending is stopped, not waited for."""
    proc = getattr(stream, "proc", None)
    if proc is not None and proc.poll() is None:
        proc.kill()
    getattr(stream, "stream", stream).close()
    if proc is not None:
        proc.wait()
