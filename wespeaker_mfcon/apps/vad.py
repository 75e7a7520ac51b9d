"""Voice activity detection with Silero VAD's packaged ONNX model, streamed over a file.

The model ships inside the silero-vad wheel (silero_vad/data/silero_vad_16k_sequence.onnx):
nothing is downloaded. It gives one speech probability per 32 ms frame (512 samples at 16 kHz),
each frame seen with the 64 samples before it, an LSTM state (h, c) carried from frame to
frame; the "sequence" export runs a whole block of frames per ONNX Runtime call. Here the
blocks come from the file as it is read (utils.audio.stream_wav), with the state, the context
and a partial frame carried from block to block, so the probabilities equal silero's own over
the whole file (tests/test_diarize.py) while memory holds one block (the probabilities of an
hour are 450 kB).

    probabilities (F,) -> speech segments: silero's own state machine
    (get_speech_timestamps_from_probs: threshold with hysteresis, minimum speech and silence,
    padding, and segments longer than max_speech_s cut at their longest pause)
"""

import importlib.util
import os

import numpy as np

from wespeaker_mfcon.config.schema import SAMPLE_RATE
from wespeaker_mfcon.utils.audio import stream_wav

SR = SAMPLE_RATE     # silero-vad takes 16 kHz (the project's default rate) or 8 kHz
FRAME = 512        # samples per probability (32 ms)
CONTEXT = 64       # samples of the previous frame each frame sees
_MODEL = "silero_vad_16k_sequence.onnx"


def _silero_file(name):
    """Path of a file in the silero-vad wheel's data dir, found without importing the package
    (its import sets torch's thread count to 1)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the VAD needs the silero-vad package: pip install silero-vad")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", name)


def _timestamps_from_probs(probs, num_samples, **options):
    """silero_vad.get_speech_timestamps_from_probs, imported keeping torch's thread count."""
    import torch
    threads = torch.get_num_threads()
    from silero_vad.utils_vad import get_speech_timestamps_from_probs
    torch.set_num_threads(threads)
    return get_speech_timestamps_from_probs(probs, sampling_rate=SR,
                                            audio_length_samples=num_samples, **options)


def frame_blocks(blocks, max_frames):
    """Audio blocks (any sizes, float32 at 16 kHz) -> model inputs (n <= max_frames,
    CONTEXT + FRAME) float32, each frame after the CONTEXT samples before it (zeros before the
    start); the last partial frame is zero-padded, as silero pads."""
    context = np.zeros(CONTEXT, np.float32)
    rest = np.zeros(0, np.float32)
    for block in blocks:
        audio = np.concatenate([rest, block])
        n = len(audio) // FRAME
        rest = audio[n * FRAME:]
        for first in range(0, n, max_frames):
            frames = audio[first * FRAME:min(n, first + max_frames) * FRAME].reshape(-1, FRAME)
            inputs = np.concatenate([np.vstack([context, frames[:-1, -CONTEXT:]]), frames], 1)
            context = frames[-1, -CONTEXT:].copy()
            yield inputs
    if len(rest):
        last = np.zeros(FRAME, np.float32)
        last[:len(rest)] = rest
        yield np.concatenate([context, last])[None]


class SileroVad:
    """Speech segments of a wav file. Options are silero's (get_speech_timestamps): threshold
    on the speech probability (off below threshold - 0.15), min_speech_ms, min_silence_ms,
    speech_pad_ms, and max_speech_s, the longest segment (cut at its longest pause)."""

    def __init__(self, threshold=0.5, min_speech_ms=250, min_silence_ms=100, speech_pad_ms=30,
                 max_speech_s=30.0, max_frames=512):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(_silero_file(_MODEL), opts,
                                            providers=["CPUExecutionProvider"])
        self.options = dict(threshold=threshold, min_speech_duration_ms=min_speech_ms,
                            min_silence_duration_ms=min_silence_ms, speech_pad_ms=speech_pad_ms,
                            max_speech_duration_s=max_speech_s)
        self.max_frames = max_frames

    def probabilities(self, blocks):
        """Audio blocks (float32 at 16 kHz, in order) -> (ceil(samples / 512),) float32 speech
        probabilities, one per 32 ms frame."""
        h = np.zeros((1, 1, 128), np.float32)
        c = np.zeros((1, 1, 128), np.float32)
        probs = [np.zeros(0, np.float32)]
        for inputs in frame_blocks(blocks, self.max_frames):
            p, h, c = self.session.run(["speech_probs", "hn", "cn"],
                                       {"input": inputs, "h": h, "c": c})
            probs.append(p.reshape(-1))
        return np.concatenate(probs)

    def segments(self, path):
        """[(start s, end s), ...] of speech in the wav file, in order, read in blocks."""
        total = [0]

        def counted():
            for block in stream_wav(path, SR):
                total[0] += len(block)
                yield block

        probs = self.probabilities(counted())
        stamps = _timestamps_from_probs(probs.tolist(), total[0], **self.options)
        return [(s["start"] / SR, s["end"] / SR) for s in stamps]
