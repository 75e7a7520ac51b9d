"""Audio reading: any file libsndfile reads -> float32 mono in [-1, 1] at the target rate."""

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


def load_wav(path, target_sr=16000):
    """Read `path` as a 1-D float32 array in [-1, 1] sampled at `target_sr`.

    Multi-channel audio keeps channel 0 and other rates are resampled (scipy resample_poly),
    each with a logged warning naming the file. Missing, unreadable, empty or truncated files
    and non-finite samples raise UserError naming the file.
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such audio file")
    try:
        info = sf.info(path)
        m = _SHORT_DATA.search(info.extra_info or "")
        if m and int(m.group(2)) < int(m.group(1)):
            raise UserError(f"{path}: truncated audio file (data chunk says {m.group(1)} bytes, "
                            f"file holds {m.group(2)})")
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except UserError:
        raise
    except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
        raise UserError(f"{path}: cannot read audio: {e}") from None
    if data.shape[0] == 0:
        raise UserError(f"{path}: audio file holds no samples")
    if data.shape[1] > 1:
        logger.warning("%s: %d channels, using channel 0", path, data.shape[1])
    wav = np.ascontiguousarray(data[:, 0])
    if not np.isfinite(wav).all():
        raise UserError(f"{path}: audio holds NaN or Inf samples")
    if sr != target_sr:
        logger.warning("%s: sample rate %d Hz, resampling to %d Hz", path, sr, target_sr)
        from scipy.signal import resample_poly  # slow import (~1.5 s), rarely needed
        g = math.gcd(int(sr), int(target_sr))
        wav = resample_poly(wav, target_sr // g, sr // g).astype(np.float32)
    return wav
