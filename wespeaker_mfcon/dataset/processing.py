"""Per-sample and per-batch processing: random chunks and SpecAugment."""

import numpy as np
import torch


def random_chunk(x, length, rng):
    """A random window of `length` along axis 0; shorter inputs are tiled (repeated) first."""
    n = x.shape[0]
    if n < length:
        reps = -(-length // n)
        x = np.concatenate([x] * reps, axis=0)
        n = x.shape[0]
    start = int(rng.integers(n - length + 1))
    return x[start:start + length]


def chunk_samples(num_frames, **fbank_kwargs):
    """Waveform samples that yield exactly num_frames fbank frames.

    fbank_kwargs: the front end's settings (sample_rate, frame_length_ms, frame_shift_ms,
    snip_edges; others are ignored), FBANK_DEFAULTS where not given. With snip_edges=False
    (the project setting) num_frames * shift samples give num_frames frames
    ((N + shift // 2) // shift); with snip_edges=True, (num_frames - 1) * shift + length.
    """
    from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS

    d = dict(FBANK_DEFAULTS, **fbank_kwargs)
    frame_length = int(d["sample_rate"] * 0.001 * d["frame_length_ms"])
    frame_shift = int(d["sample_rate"] * 0.001 * d["frame_shift_ms"])
    if d["snip_edges"]:
        return (num_frames - 1) * frame_shift + frame_length
    return num_frames * frame_shift


def spec_augment(feats, num_t_mask=1, num_f_mask=1, max_t=10, max_f=8, prob=0.6,
                 generator=None):
    """Zero random time and frequency bands of a (B, T, F) batch, each utterance with `prob`."""
    feats = feats.clone()
    batch, num_t, num_f = feats.shape
    for b in range(batch):
        if torch.rand(1, generator=generator).item() > prob:
            continue
        for _ in range(num_t_mask):
            width = int(torch.randint(1, max_t + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, num_t - width), (1,), generator=generator))
            feats[b, start:start + width, :] = 0
        for _ in range(num_f_mask):
            width = int(torch.randint(1, max_f + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, num_f - width), (1,), generator=generator))
            feats[b, :, start:start + width] = 0
    return feats
