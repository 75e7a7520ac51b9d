"""Stage 1: log-mel fbank (the project's front end) for every utterance of a wav.scp.

    python -m wespeaker_mfcon.bin.compute_fbank --wav_scp data/train/wav.scp \\
        --ark fbank/raw_fbank.1.ark --scp fbank/raw_fbank.1.scp \\
        --utt2num_frames fbank/utt2num_frames.1

Features are float32 (T, num_mel_bins) matrices written with kaldiio, no dither, no CMN (CMN is
applied when the features are used), computed with FBANK_DEFAULTS (sherpa-onnx's front end:
mel 20 Hz .. Nyquist - 400 Hz, snip_edges=False), so they equal fbank(load_wav(path) * 32768.0)
and what sherpa-onnx computes from the same wav. Outputs are first written under temporary
names and renamed at the end, the scp last, so a job that fails leaves no scp that looks
complete.
Bad input (missing or unreadable audio, too short, non-finite features) stops the job with one
'error:' line naming the wav.scp line and the file.
"""

import argparse
import logging
import os
import sys

import kaldiio
import numpy as np
import torch
from tqdm import tqdm

from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS, fbank, num_frames, pad_edges
from wespeaker_mfcon.utils.audio import load_wav
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, read_scp, write_table

logger = logging.getLogger("compute_fbank")


def get_args(argv=None):
    p = argparse.ArgumentParser(description="Compute log-mel fbank features (the project's "
                                "sherpa-onnx-compatible front end) for a wav.scp and write them "
                                "as kaldiio ark/scp.")
    p.add_argument("--wav_scp", required=True, help="'utt path' per line")
    p.add_argument("--ark", required=True, help="output ark file")
    p.add_argument("--scp", required=True, help="output scp file (entries point into --ark)")
    p.add_argument("--utt2num_frames", required=True, help="output 'utt num_frames' file")
    d = FBANK_DEFAULTS
    p.add_argument("--num_mel_bins", type=int, default=d["num_mel_bins"])
    p.add_argument("--sample_rate", type=int, default=d["sample_rate"],
                   help="audio at other rates is resampled to this rate, with a warning")
    p.add_argument("--frame_length_ms", type=float, default=d["frame_length_ms"])
    p.add_argument("--frame_shift_ms", type=float, default=d["frame_shift_ms"])
    p.add_argument("--batch_size", type=int, default=4,
                   help="pieces of audio (of at most --max_chunk_frames frames) per fbank call")
    p.add_argument("--max_chunk_frames", type=int, default=1000,
                   help="long utterances are computed in pieces of this many frames "
                        "(bounds memory; the result is the same)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--num_threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")
    return p.parse_args(argv)


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

    def __init__(self, args):
        self.opts = dict(FBANK_DEFAULTS, sample_rate=args.sample_rate,
                         num_mel_bins=args.num_mel_bins, frame_length_ms=args.frame_length_ms,
                         frame_shift_ms=args.frame_shift_ms, dither=0.0)
        self.frame_opts = {k: self.opts[k] for k in ("sample_rate", "frame_length_ms",
                                                      "frame_shift_ms")}
        self.length = int(args.sample_rate * 0.001 * args.frame_length_ms)
        self.shift = int(args.sample_rate * 0.001 * args.frame_shift_ms)
        self.batch_size = max(1, args.batch_size)
        self.max_frames = max(1, args.max_chunk_frames)
        self.device = torch.device(args.device)

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


def compute(args):
    entries = read_wav_scp(args.wav_scp)
    computer = FbankComputer(args)
    # An earlier run's outputs must not survive a failure of this one.
    _remove(args.scp, args.utt2num_frames, args.ark)
    with atomic_path(args.scp) as tmp_scp:      # renamed last: marks a complete job
        with atomic_path(args.ark) as tmp_ark:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
                lengths = write_features(entries, computer, writer, args)
        # kaldiio wrote the temporary ark name into the scp: point it at the final name.
        with open(tmp_scp, encoding="utf-8") as f:
            rows = [(utt, f"{args.ark}:{loc.rsplit(':', 1)[1]}")
                    for utt, loc in (line.rstrip("\n").split(" ", 1) for line in f)]
        write_table(args.utt2num_frames, lengths)
        write_table(tmp_scp, rows)
    total = sum(n for _, n in lengths)
    logger.info("wrote %d utterances, %d frames (%.1f h) to %s", len(lengths), total,
                total * args.frame_shift_ms / 3.6e6, args.scp)


def write_features(entries, computer, writer, args):
    """Read, fbank and write every entry, in groups of about batch_size pieces per fbank call.
    Returns [(utt, num_frames)]."""
    lengths, group, group_frames = [], [], 0
    budget = computer.batch_size * computer.max_frames
    with tqdm(total=len(entries), desc="fbank", unit="utt", disable=args.no_progress,
              mininterval=5.0, file=sys.stderr) as bar:
        for n, (utt, path, lineno) in enumerate(entries):
            wav, nf = read_entry(utt, path, lineno, computer, args)
            group.append((utt, wav, nf))
            group_frames += nf
            if group_frames >= budget or n == len(entries) - 1:
                for (u, _, nf_u), f in zip(group, computer([w for _, w, _ in group])):
                    if f.shape != (nf_u, args.num_mel_bins):
                        raise RuntimeError(f"{u}: got shape {f.shape}, expected "
                                           f"{(nf_u, args.num_mel_bins)}")
                    if not np.isfinite(f).all():
                        raise UserError(f"utterance {u!r}: features hold NaN or Inf")
                    writer(u, f)
                    lengths.append((u, nf_u))
                bar.update(len(group))
                group, group_frames = [], 0
    return lengths


def read_entry(utt, path, lineno, computer, args):
    """(waveform, number of fbank frames) of one wav.scp entry; errors name its line."""
    try:
        wav = load_wav(path, args.sample_rate)
    except UserError as e:
        raise UserError(f"{args.wav_scp}:{lineno}: utterance {utt!r}: {e}") from None
    nf = num_frames(len(wav), **computer.frame_opts, snip_edges=computer.opts["snip_edges"])
    if nf == 0:
        raise UserError(f"{args.wav_scp}:{lineno}: utterance {utt!r}: {path}: "
                        f"{len(wav)} samples is too short for one fbank frame")
    return wav, nf


def main(argv=None):
    args = get_args(argv)
    torch.set_num_threads(max(1, args.num_threads))
    compute(args)


if __name__ == "__main__":
    run_main(main)
