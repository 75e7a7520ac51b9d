"""Audio reading: any file libsndfile reads -> float32 mono in [-1, 1] at the target rate.

Every read of audio for use goes through :func:`load_wav` (files) or :func:`decode_audio`
(encoded bytes, e.g. a tar shard member), so channel selection (channel 0) and rate conversion
(:func:`resample`) happen here and nowhere else.
"""

import io
import logging
import math
import os
import re

import numpy as np
import soundfile as sf

from wespeaker_mfcon.utils.errors import UserError

logger = logging.getLogger(__name__)

# libsndfile's WAV header log says "data : 32000 (should be 19956)" when the file is shorter
# than its data chunk claims, i.e. truncated.
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def audio_info(path):
    """(frames, sample_rate, channels) of `path`, from its header.

    Raises UserError naming the file when it is missing, unreadable, truncated or empty.
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such audio file")
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
        raise UserError(f"{path}: unreadable audio ({_reason(e, path)})") from None
    m = _SHORT_DATA.search(info.extra_info or "")
    if m and int(m.group(2)) < int(m.group(1)):
        raise UserError(f"{path}: truncated audio file (data chunk says {m.group(1)} bytes, "
                        f"file holds {m.group(2)})")
    if info.frames <= 0:
        raise UserError(f"{path}: audio file holds no samples")
    return int(info.frames), int(info.samplerate), int(info.channels)


def _reason(error, path):
    """libsndfile's message on one line, without the path it repeats."""
    return " ".join(str(error).replace(f"'{path}'", "the file").split())


def resample(wave, orig_sr, target_sr):
    """Polyphase resampling (scipy resample_poly, computed in float64) of a 1-D array.

    Rates are integers; only their ratio matters, so speed perturbation by a factor p/q is
    ``resample(wave, p, q)``. Returns float32 of length ceil(len * target_sr / orig_sr); the
    input itself (not a copy) when the rates are equal or it is empty.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == target_sr or wave.size == 0:
        return wave
    from scipy.signal import resample_poly  # slow import (~1.5 s), rarely needed
    g = math.gcd(int(orig_sr), int(target_sr))
    return resample_poly(wave.astype(np.float64), target_sr // g, orig_sr // g).astype(np.float32)


def load_wav(path, target_sr, start=0, stop=None, warn=True):
    """Read `path` as a 1-D float32 array in [-1, 1] sampled at `target_sr`.

    `start`/`stop` select frames at the file's own rate (soundfile semantics) before
    resampling. Multi-channel audio keeps channel 0 and other rates are resampled, each with a
    logged warning naming the file (unless `warn` is false). Missing, unreadable, empty or
    truncated files and non-finite samples raise UserError naming the file.
    """
    audio_info(path)   # missing, unreadable, truncated or empty: one line naming the file
    try:
        data, sr = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
        raise UserError(f"{path}: unreadable audio ({_reason(e, path)})") from None
    if data.shape[0] == 0:
        raise UserError(f"{path}: audio file holds no samples"
                        + ("" if start == 0 and stop is None else f" in frames {start}:{stop}"))
    return _mono_at_rate(data, sr, target_sr, where=path, warn=warn)


def decode_audio(data, where, target_sr, warn=True):
    """Encoded audio bytes (any format libsndfile reads) -> float32 (N,) in [-1, 1] at
    target_sr, channel 0; `where` names the source in errors and warnings."""
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
        raise UserError(f"{where}: unreadable audio ({' '.join(str(e).split())[:300]})") from None
    if wave.shape[0] == 0:
        raise UserError(f"{where}: audio holds no samples")
    return _mono_at_rate(wave, sr, target_sr, where=where, warn=warn)


def _mono_at_rate(data, sr, target_sr, where, warn):
    """(frames, channels) float32 -> channel 0 at target_sr, with a warning naming `where`
    for each conversion (unless not warn); non-finite samples are a UserError."""
    if warn and data.shape[1] > 1:
        logger.warning("%s: %d channels, using channel 0", where, data.shape[1])
    wav = np.ascontiguousarray(data[:, 0])
    if not np.isfinite(wav).all():
        raise UserError(f"{where}: audio holds NaN or Inf samples")
    if sr != target_sr:
        if warn:
            logger.warning("%s: sample rate %d Hz, resampling to %d Hz", where, sr, target_sr)
        wav = resample(wav, sr, target_sr)
    return wav
