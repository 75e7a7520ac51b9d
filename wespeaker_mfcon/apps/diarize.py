"""Speaker diarization of long recordings: who spoke when.

    wav -> VAD (apps/vad.py, streamed) -> speech segments of at most 30 s
        -> sliding windows (1.5 s, hop 0.75 s; a segment's last window ends with it, a segment
           shorter than a window is one window) -> fbank + embeddings in batches (Embedder)
        -> clustering with an automatic speaker count (apps/clustering.py: calibrated AHC when
           the model has a calibration, else spectral with an eigengap; num_speakers fixes it)
        -> resegmentation: where two windows of a segment overlap, the boundary is the middle of
           the overlap; touching pieces of one speaker join into a turn
        -> turns [(start s, end s, speaker 0..K-1)] -> NIST RTTM (scoring/rttm.py)

One speaker per instant: overlapped speech goes to one of its speakers. Memory holds one speech
segment's audio and one group of windows' features at a time, plus the embeddings (one per
0.75 s of speech: 3 MB an hour at E = 192) and the clustering's bounded matrix, so it stays flat
in the length of the recording (benchmarks/eval_diarization.py measures 10 and 60 minutes).

    from wespeaker_mfcon.apps.diarize import diarize
    diarize("exp/E", "meeting.wav")          # [(0.53, 6.81, 0), (7.52, 8.68, 1), ...]
"""

import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
from tqdm import tqdm

from wespeaker_mfcon.apps.clustering import cluster
from wespeaker_mfcon.apps.embedder import load_model, wave_feats
from wespeaker_mfcon.apps.vad import SileroVad
from wespeaker_mfcon.scoring.rttm import rttm_lines
from wespeaker_mfcon.utils.audio import audio_info, load_wav
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write, read_scp, read_table
from wespeaker_mfcon.utils.parallel import parallel_map

logger = logging.getLogger(__name__)
FRAMES_PER_S = 100        # fbank frame rate (10 ms shift)
COUNT_METHODS = ("auto", "calibration", "eigengap")
_GROUP = 256              # windows whose features are held at once


@dataclass
class DiarizeOptions:
    window: float = 1.5         # s, embedding window
    hop: float = 0.75           # s, window shift
    p_same: float = 0.5         # prior that two windows are one speaker (calibrated AHC)
    max_speakers: int = 10      # upper bound of the automatic count (spectral)
    count: str = "auto"         # automatic count: calibration | eigengap | auto (calibration
                                #   when the model has one, else eigengap)
    max_points: int = 500       # windows clustered directly; more: k-means centroids first
    batch_size: int = 32        # windows per embedding batch

    @staticmethod
    def add_arguments(parser):
        """The command-line flags of the options (bin/diarize.py, `wespeaker-mfcon diarize`)."""
        d = DiarizeOptions()
        parser.add_argument("--window", type=float, default=d.window, help="embedding window, s")
        parser.add_argument("--hop", type=float, default=d.hop, help="window shift, s")
        parser.add_argument("--p_same", type=float, default=d.p_same,
                            help="calibrated AHC: prior that two clusters are one speaker")
        parser.add_argument("--max_speakers", type=int, default=d.max_speakers,
                            help="largest automatic speaker count (spectral clustering)")
        parser.add_argument("--count", choices=COUNT_METHODS, default=d.count,
                            help="how the speaker count is found without --num_speakers: "
                                 "calibration (AHC while the LLR says same speaker), eigengap "
                                 "(spectral clustering), auto (calibration when the model has "
                                 "one; default)")

    @classmethod
    def from_args(cls, args):
        return cls(window=args.window, hop=args.hop, p_same=args.p_same,
                   max_speakers=args.max_speakers, count=args.count)

    def check(self):
        if not 0.1 <= self.hop <= self.window:
            raise UserError(f"need 0.1 <= hop <= window s, got hop {self.hop}, "
                            f"window {self.window}")
        if not 0.0 < self.p_same < 1.0:
            raise UserError(f"p_same must be in (0, 1), got {self.p_same}")
        if self.count not in COUNT_METHODS:
            raise UserError(f"count must be one of {', '.join(COUNT_METHODS)}, got "
                            f"{self.count!r}")

    def calibration(self, embedder):
        """The calibration the count uses (None: eigengap) for this model."""
        if self.count == "calibration" and embedder.calibration is None:
            raise UserError("--count calibration: the model has no calibration.json "
                            "(stage 7 writes one)")
        return None if self.count == "eigengap" else embedder.calibration


def window_frames(num_frames, window, hop):
    """[(first, end)] frame spans of the windows over a segment of num_frames frames (window,
    hop in frames): every hop while a window fits inside, the last one ending with the
    segment; one window of the whole segment when it is shorter than a window."""
    if num_frames <= window:
        return [(0, num_frames)] if num_frames > 0 else []
    spans = [(s, s + window) for s in range(0, num_frames - window, hop)]
    return spans + [(num_frames - window, num_frames)]


def _segment_windows(path, segments, options, fbank_kwargs, progress):
    """Yield (segment index, start s, end s, feats (T_w, F)) of every window, segment by
    segment, reading each segment's audio alone at the model's rate."""
    file_sr = audio_info(path)[1]
    win, hop = round(options.window * FRAMES_PER_S), round(options.hop * FRAMES_PER_S)
    for k, (s, e) in enumerate(tqdm(segments, desc="diarize", unit="seg", mininterval=2,
                                    disable=not progress)):
        wave = load_wav(path, fbank_kwargs["sample_rate"], start=int(s * file_sr),
                        stop=int(e * file_sr), warn=False)
        feats = wave_feats(wave, fbank_kwargs)
        for a, b in window_frames(len(feats), win, hop):
            yield k, s + a / FRAMES_PER_S, s + b / FRAMES_PER_S, feats[a:b]


def embed_windows(embedder, path, segments, options, progress=False):
    """Windows of the speech segments and their embeddings: (segment index (N,) int,
    spans (N, 2) s, embs (N, E))."""
    index, spans, embs, feats = [], [], [], []
    for k, s, e, f in _segment_windows(path, segments, options, embedder.fbank_kwargs,
                                       progress):
        index.append(k)
        spans.append((s, e))
        feats.append(f)
        if len(feats) == _GROUP:
            embs.append(embedder.embed_many(feats, options.batch_size))
            feats = []
    if feats:
        embs.append(embedder.embed_many(feats, options.batch_size))
    return (np.array(index, dtype=np.int64), np.array(spans, dtype=np.float64).reshape(-1, 2),
            np.concatenate(embs) if embs else np.zeros((0, 1), np.float32))


def resegment(index, spans, labels):
    """Windows in time order (segment index (N,), spans (N, 2) s, labels (N,)) -> turns
    [(start s, end s, label)]: overlaps of consecutive windows of one segment split at their
    middle, touching pieces of one label joined."""
    turns = []
    for i, ((s, e), label) in enumerate(zip(spans, labels)):
        if i > 0 and index[i - 1] == index[i]:
            s = max(s, 0.5 * (s + spans[i - 1][1]))
        if i + 1 < len(spans) and index[i + 1] == index[i]:
            e = min(e, 0.5 * (spans[i + 1][0] + e))
        if turns and turns[-1][2] == label and turns[-1][1] >= s - 1e-9:
            turns[-1] = (turns[-1][0], e, label)
        else:
            turns.append((s, e, label))
    return [(float(s), float(e), int(label)) for s, e, label in turns]


def diarize(model, path, num_speakers: Optional[int] = None, options=None, vad=None,
            progress=False):
    """Who spoke when in the wav file `path`: turns [(start s, end s, speaker 0..K-1)] in time
    order. `model`: an Embedder (apps/embedder.py: load_model), StatsEmbedder, or what
    load_model takes (an exp dir, a .pt or an .onnx). num_speakers fixes the count."""
    options = options or DiarizeOptions()
    options.check()
    embedder = load_model(model) if isinstance(model, str) else model
    calibration = options.calibration(embedder)
    segments = (vad or SileroVad()).segments(path)
    if not segments:
        logger.warning("%s: no speech found", path)
        return []
    index, spans, embs = embed_windows(embedder, path, segments, options, progress)
    labels = cluster(embs, num_speakers=num_speakers, calibration=calibration,
                     p_same=options.p_same, max_speakers=options.max_speakers,
                     max_points=options.max_points)
    return resegment(index, spans, labels)


def file_id(path):
    """The RTTM file id of a wav path: its base name without the extension."""
    return os.path.splitext(os.path.basename(path))[0]


def diarize_rttm(model, path, name=None, num_speakers=None, options=None, vad=None,
                 progress=False):
    """RTTM lines (list of str) of diarize(...), file id `name` (default file_id(path)),
    speakers named spk1, spk2, ..."""
    turns = diarize(model, path, num_speakers, options, vad, progress)
    return rttm_lines(name or file_id(path), [(s, e, f"spk{k + 1}") for s, e, k in turns])


_MODELS = {}


def _diarize_item(args):
    """Worker of diarize_scp: (model, recording id, wav path, num_speakers or None, options,
    num_threads) -> RTTM lines; each process loads the model once."""
    model, name, path, num_speakers, options, num_threads = args
    if model not in _MODELS:
        import torch
        torch.set_num_threads(num_threads)
        _MODELS[model] = load_model(model, num_threads=num_threads)
    return diarize_rttm(_MODELS[model], path, name, num_speakers, options)


def _speaker_counts(reco2num_spk, names):
    """{recording: count} from a Kaldi reco2num_spk file ("reco N"), every name covered."""
    counts = {}
    for key, (value,) in read_table(reco2num_spk, min_fields=2, max_fields=2):
        if not value.isdigit() or int(value) < 1:
            raise UserError(f"{reco2num_spk}: {key}: speaker count must be a positive "
                            f"integer, got {value!r}")
        counts[key] = int(value)
    missing = [n for n in names if n not in counts]
    if missing:
        raise UserError(f"{reco2num_spk}: no count for {missing[0]} ({len(missing)} missing)")
    return counts


def diarize_scp(model, wav_scp, rttm, nj=1, num_speakers=None, reco2num_spk=None,
                options=None, num_threads=1):
    """Diarize every recording of a wav.scp ("id path") into one RTTM file (written
    atomically, in wav.scp order) with nj processes and a progress bar; the speaker count is
    automatic, num_speakers for all, or per recording from a reco2num_spk file. Returns the
    number of turns written."""
    table = read_scp(wav_scp)
    counts = (_speaker_counts(reco2num_spk, table) if reco2num_spk
              else dict.fromkeys(table, num_speakers))
    tasks = [(model, name, path, counts[name], options or DiarizeOptions(), num_threads)
             for name, path in table.items()]
    results = parallel_map(_diarize_item, tasks, nj, desc="diarize", unit="rec")
    with atomic_write(rttm) as f:
        for lines in results:
            f.writelines(line + "\n" for line in lines)
    return sum(len(lines) for lines in results)
