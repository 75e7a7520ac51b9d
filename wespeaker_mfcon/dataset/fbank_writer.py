"""Stage 1: log-mel fbank (the project's front end) of every utterance of a wav.scp, written
as a kaldiio ark/scp and an utt2num_frames (write_fbank; tools/make_fbank.sh runs it in
parallel jobs through bin/compute_fbank.py).

Features are float32 (T, num_mel_bins) matrices, no dither, no CMN (CMN is applied when the
features are used), computed with FBANK_DEFAULTS (sherpa-onnx's front end: mel 20 Hz ..
Nyquist - 400 Hz, snip_edges=False), so they equal fbank(load_wav(path) * 32768.0) and what
sherpa-onnx computes from the same wav. Outputs are first written under temporary names and
renamed at the end, the scp last, so a job that fails leaves no scp that looks complete.
Bad input (missing or unreadable audio, too short, non-finite features) is a UserError naming
the wav.scp line and the file.
"""

import logging
import os
import sys

import kaldiio
import numpy as np
import torch
from tqdm import tqdm

from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS, fbank, num_frames, pad_edges
from wespeaker_mfcon.utils.audio import load_wav
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, read_scp, write_table

logger = logging.getLogger(__name__)


def _line_numbers(path):
    """key -> line number in a Kaldi table (first occurrence), for error messages."""
    lines = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split(maxsplit=1)
            if fields:
                lines.setdefault(fields[0], lineno)
    return lines


def read_wav_scp(path):
    """wav.scp -> list of (utt, wav_path, lineno); every path checked to exist up front."""
    table = read_scp(path)
    if not table:
        raise UserError(f"{path}: no utterances")
    linenos = _line_numbers(path)
    entries = []
    for utt, wav in table.items():
        where = f"{path}:{linenos[utt]}: utterance {utt!r}"
        if wav.endswith("|"):
            raise UserError(f"{where}: piped commands are not supported: {wav!r}")
        if not os.path.isfile(wav):
            raise UserError(f"{where}: no such audio file: {wav}")
        entries.append((utt, wav, linenos[utt]))
    return entries


def _pieces(num, length, shift, max_frames):
    """Sample ranges of consecutive frame blocks: [(start, end, frames), ...] covering the
    snip_edges=True frames of `num` samples (overlapping by length - shift samples)."""
    total = max(0, (num - length) // shift + 1)  # snip_edges=True
    out = []
    for f0 in range(0, total, max_frames):
        nf = min(max_frames, total - f0)
        out.append((f0 * shift, (f0 + nf - 1) * shift + length, nf))
    return out


class FbankComputer:
    """Batched fbank of whole utterances, bit-for-bit independent of how they are batched
    up to float rounding of the matmuls (<< 1e-5).

    With snip_edges=False (FBANK_DEFAULTS) each utterance is first reflected at its ends
    (pad_edges), which turns its frames into the snip_edges=True frames of the padded signal;
    those are cut into overlapping pieces of at most max_chunk_frames frames and zero-padded
    into batches, both exact for snip_edges=True.
    """

    def __init__(self, num_mel_bins=FBANK_DEFAULTS["num_mel_bins"],
                 sample_rate=FBANK_DEFAULTS["sample_rate"],
                 frame_length_ms=FBANK_DEFAULTS["frame_length_ms"],
                 frame_shift_ms=FBANK_DEFAULTS["frame_shift_ms"], batch_size=4,
                 max_chunk_frames=1000, device="cpu"):
        self.opts = dict(FBANK_DEFAULTS, sample_rate=sample_rate, num_mel_bins=num_mel_bins,
                         frame_length_ms=frame_length_ms, frame_shift_ms=frame_shift_ms,
                         dither=0.0)
        self.frame_opts = {k: self.opts[k] for k in ("sample_rate", "frame_length_ms",
                                                      "frame_shift_ms")}
        self.length = int(sample_rate * 0.001 * frame_length_ms)
        self.shift = int(sample_rate * 0.001 * frame_shift_ms)
        self.batch_size = max(1, batch_size)
        self.max_frames = max(1, max_chunk_frames)
        self.device = torch.device(device)

    def __call__(self, wavs):
        """list of 1-D float numpy arrays in [-1, 1] -> list of float32 (T, F) arrays."""
        pieces = []  # (utt index, samples, frames): snip_edges=True pieces
        for i, wav in enumerate(wavs):
            wav = torch.from_numpy(np.asarray(wav, dtype=np.float32))
            if not self.opts["snip_edges"]:
                wav = pad_edges(wav, **self.frame_opts)
            for s, e, nf in _pieces(len(wav), self.length, self.shift, self.max_frames):
                pieces.append((i, wav[s:e], nf))
        outs = [[] for _ in wavs]
        for b in range(0, len(pieces), self.batch_size):
            batch = pieces[b:b + self.batch_size]
            width = max(len(p) for _, p, _ in batch)
            x = torch.zeros((len(batch), width))
            for j, (_, p, _) in enumerate(batch):
                x[j, :len(p)] = p
            with torch.inference_mode():
                feats = fbank(x.to(self.device) * 32768.0,
                              **dict(self.opts, snip_edges=True)).cpu()
            for j, (i, _, nf) in enumerate(batch):
                outs[i].append(feats[j, :nf])
        return [torch.cat(o).numpy().astype(np.float32, copy=False) if o else
                np.zeros((0, self.opts["num_mel_bins"]), dtype=np.float32) for o in outs]


def _remove(*paths):
    for p in paths:
        if os.path.lexists(p):
            os.remove(p)


def write_fbank(wav_scp, ark, scp, utt2num_frames, computer=None, progress=True,
                num_threads=None):
    """Fbank of every utterance of wav_scp ("utt path" lines) into ark + scp (kaldiio) and
    utt2num_frames, with `computer` (an FbankComputer; default: FBANK_DEFAULTS) and, if given,
    num_threads torch CPU threads. An earlier run's outputs are removed first; the scp is
    renamed into place last."""
    if num_threads:
        torch.set_num_threads(num_threads)
    entries = read_wav_scp(wav_scp)
    computer = computer or FbankComputer()
    # An earlier run's outputs must not survive a failure of this one.
    _remove(scp, utt2num_frames, ark)
    with atomic_path(scp) as tmp_scp:      # renamed last: marks a complete job
        with atomic_path(ark) as tmp_ark:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
                lengths = write_features(entries, computer, writer, wav_scp, progress)
        # kaldiio wrote the temporary ark name into the scp: point it at the final name.
        with open(tmp_scp, encoding="utf-8") as f:
            rows = [(utt, f"{ark}:{loc.rsplit(':', 1)[1]}")
                    for utt, loc in (line.rstrip("\n").split(" ", 1) for line in f)]
        write_table(utt2num_frames, lengths)
        write_table(tmp_scp, rows)
    total = sum(n for _, n in lengths)
    logger.info("wrote %d utterances, %d frames (%.1f h) to %s", len(lengths), total,
                total * computer.opts["frame_shift_ms"] / 3.6e6, scp)


def write_features(entries, computer, writer, wav_scp, progress=True):
    """Read, fbank and write every entry of wav_scp ([(utt, path, lineno)]), in groups of
    about batch_size pieces per fbank call. Returns [(utt, num_frames)]."""
    lengths, group, group_frames = [], [], 0
    budget = computer.batch_size * computer.max_frames
    dim = computer.opts["num_mel_bins"]
    with tqdm(total=len(entries), desc="fbank", unit="utt", disable=not progress,
              mininterval=5.0, file=sys.stderr) as bar:
        for n, (utt, path, lineno) in enumerate(entries):
            wav, nf = read_entry(utt, path, f"{wav_scp}:{lineno}", computer)
            group.append((utt, wav, nf))
            group_frames += nf
            if group_frames >= budget or n == len(entries) - 1:
                for (u, _, nf_u), f in zip(group, computer([w for _, w, _ in group])):
                    if f.shape != (nf_u, dim):
                        raise RuntimeError(f"{u}: got shape {f.shape}, expected {(nf_u, dim)}")
                    if not np.isfinite(f).all():
                        raise UserError(f"utterance {u!r}: features hold NaN or Inf")
                    writer(u, f)
                    lengths.append((u, nf_u))
                bar.update(len(group))
                group, group_frames = [], 0
    return lengths


def read_entry(utt, path, where, computer):
    """(waveform, number of fbank frames) of one wav.scp entry; errors name `where`, its
    "wav.scp:line"."""
    try:
        wav = load_wav(path, computer.opts["sample_rate"])
    except UserError as e:
        raise UserError(f"{where}: utterance {utt!r}: {e}") from None
    nf = num_frames(len(wav), **computer.frame_opts, snip_edges=computer.opts["snip_edges"])
    if nf == 0:
        raise UserError(f"{where}: utterance {utt!r}: {path}: "
                        f"{len(wav)} samples is too short for one fbank frame")
    return wav, nf
