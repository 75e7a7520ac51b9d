"""Training data: fixed-length chunks of precomputed fbank (feat) or of waveforms (raw).

One item per sampler entry (utt_index, sample_seed, speed_index). In `feat` mode the
item is a (num_frames, F) fbank chunk; in `raw` mode it is a waveform chunk on the int16
scale (augmented, speed-perturbed) that the training loop turns into fbank in batches.
Labels of speed-perturbed samples are new speakers: spk_id + speed_index * num_spk.
"""

import os

import kaldiio
import numpy as np
import torch
from torch.utils.data import Dataset

from wespeaker_mfcon.dataset.processing import chunk_samples, random_chunk
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp


def load_spk2id(data_dir):
    """Speaker -> class index, sorted by speaker name, from data_dir/utt2spk."""
    speakers = sorted(set(read_scp(os.path.join(data_dir, "utt2spk")).values()))
    return {spk: i for i, spk in enumerate(speakers)}


class SpeakerChunkDataset(Dataset):
    def __init__(self, data_dir, spk2id, *, num_frames, data_type, augmentor=None,
                 speeds=(1.0,), fbank_kwargs=None):
        if data_type not in ("feat", "raw"):
            raise UserError(f"data_type must be 'feat' or 'raw', got {data_type!r}")
        table_name = "feats.scp" if data_type == "feat" else "wav.scp"
        utt2spk = read_scp(os.path.join(data_dir, "utt2spk"))
        table = read_scp(os.path.join(data_dir, table_name))
        missing = [u for u in utt2spk if u not in table]
        if missing:
            raise UserError(f"{data_dir}/{table_name}: {len(missing)} utterances of utt2spk "
                            f"are missing, first: {', '.join(missing[:3])}")
        unknown = sorted({s for s in utt2spk.values() if s not in spk2id})
        if unknown:
            raise UserError(f"{data_dir}/utt2spk: speakers not in the speaker map: {unknown[:3]}")
        self.utts = sorted(utt2spk)
        self.paths = [table[u] for u in self.utts]
        self.labels = [spk2id[utt2spk[u]] for u in self.utts]
        self.num_spk = len(spk2id)
        self.num_frames, self.data_type = num_frames, data_type
        self.augmentor, self.speeds = augmentor, list(speeds)
        self.fbank_kwargs = fbank_kwargs or {}     # raw: the rate and frames of the front end
        self._warned = set()   # files already warned about (stereo, other rate), per worker

    def __len__(self):
        return len(self.utts)

    def __getitem__(self, item):
        utt_idx, seed, speed_idx = item
        rng = np.random.default_rng(seed)
        label = self.labels[utt_idx] + speed_idx * self.num_spk
        if self.data_type == "feat":
            chunk = self._feat_chunk(utt_idx, rng)
        else:
            chunk = self._wave_chunk(utt_idx, rng, self.speeds[speed_idx])
        return torch.from_numpy(np.array(chunk, dtype=np.float32)), label

    def _feat_chunk(self, utt_idx, rng):
        try:
            feats = kaldiio.load_mat(self.paths[utt_idx])
        except Exception as e:
            raise UserError(f"{self.utts[utt_idx]}: cannot read features "
                            f"{self.paths[utt_idx]}: {e}") from None
        return random_chunk(feats, self.num_frames, rng)

    def _wave_chunk(self, utt_idx, rng, speed):
        from wespeaker_mfcon.utils.audio import load_wav

        path = self.paths[utt_idx]
        wave = load_wav(path, self.sample_rate, warn=path not in self._warned)
        self._warned.add(path)
        return wave_chunk(wave, self.num_frames, rng, speed, self.augmentor, self.fbank_kwargs)

    @property
    def sample_rate(self):
        from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS
        return self.fbank_kwargs.get("sample_rate", FBANK_DEFAULTS["sample_rate"])


def wave_chunk(wave, num_frames, rng, speed=1.0, augmentor=None, fbank_kwargs=None):
    """A training chunk of a float waveform in [-1, 1]: a random window that gives num_frames
    fbank frames (of the front end fbank_kwargs), speed-perturbed and augmented, on the int16
    scale (N,). Shared by raw and shard (dataset/shards.py); all randomness comes from rng."""
    from wespeaker_mfcon.dataset.augment import speed_perturb

    need = chunk_samples(num_frames, **(fbank_kwargs or {}))
    if speed != 1.0:
        wave = speed_perturb(random_chunk(wave, int(np.ceil(need * speed)) + 1, rng), speed)
    wave = random_chunk(wave, need, rng)
    if augmentor is not None:
        wave = augmentor(wave, rng)
    return wave * 32768.0
