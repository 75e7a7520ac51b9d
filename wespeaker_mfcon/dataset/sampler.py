"""Batch samplers: P speakers x K utterances (MFCon needs positives) and plain random.

Both are deterministic functions of (seed, epoch), give each DDP rank a disjoint share
of the epoch's batches, and can skip the first batches of an epoch to resume mid-epoch.
An item is (utt_index, sample_seed, speed_index): the dataset draws all per-sample
randomness (chunk offset, augmentation) from sample_seed, so a resumed run sees the
same data as an unbroken one regardless of the number of loader workers.
"""

import numpy as np


def global_batches(num_utts, batch_size, world_size):
    """Batches of one epoch over all ranks: about one pass over the utterances, at least one
    per rank, and a multiple of the world size so every rank gets the same number."""
    num_global = max(num_utts // batch_size, world_size)
    return num_global - num_global % world_size


class _EpochBatchSampler:
    """Shared epoch/rank/resume bookkeeping; subclasses build the global batch list."""

    def __init__(self, utt_labels, batch_size, seed=0, rank=0, world_size=1,
                 two_crops=False, num_speeds=1):
        self.labels = np.asarray(utt_labels)
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.two_crops, self.num_speeds = two_crops, num_speeds
        self.epoch, self.start_batch = 0, 0
        self.num_global = global_batches(len(self.labels), batch_size, world_size)

    def set_epoch(self, epoch, start_batch=0):
        """Select the epoch; skip its first start_batch batches (of this rank)."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self):
        return self.num_global // self.world_size - self.start_batch

    def __iter__(self):
        structure_rng = np.random.default_rng([self.seed, self.epoch, 0])
        item_rng = np.random.default_rng([self.seed, self.epoch, 1])
        # Items (with their seeds) for the whole epoch first, so every rank and a resumed
        # run draw exactly the same seeds as an unbroken single-process run.
        batches = [self._items(groups, item_rng)
                   for groups in self._global_batches(structure_rng)]
        yield from batches[self.rank::self.world_size][self.start_batch:]

    def _items(self, groups, rng):
        """groups: list of utt-index arrays sharing a speed -> list of sampler items."""
        items = []
        for utts in groups:
            speed = int(rng.integers(self.num_speeds))
            for utt in utts:
                crops = 2 if self.two_crops else 1
                for seed in rng.integers(2**31, size=crops):
                    items.append((int(utt), int(seed), speed))
        return items

    def _global_batches(self, rng):
        raise NotImplementedError


class PKBatchSampler(_EpochBatchSampler):
    """Each batch holds P speakers with K utterances each (so every anchor has K-1 positives).

    Speakers are visited in a shuffled cycle and each speaker's utterances in a shuffled
    cycle, so an epoch of len(utts) // (P*K) batches sees (almost) every utterance once;
    a speaker with fewer than K utterances repeats some (different crops).
    With speed perturbation, all K utterances of a speaker in a batch share one speed,
    so they stay positives of each other.
    """

    def __init__(self, utt_labels, spk_per_batch, utts_per_spk, **kwargs):
        num_spk = len(set(np.asarray(utt_labels).tolist()))
        if spk_per_batch > num_spk:   # the config check (TrainConfig.check_against_data) says so first
            raise ValueError(f"spk_per_batch {spk_per_batch} > {num_spk} speakers")
        self.P, self.K = spk_per_batch, utts_per_spk
        super().__init__(utt_labels, spk_per_batch * utts_per_spk, **kwargs)

    def _global_batches(self, rng):
        by_spk = {}
        for idx, label in enumerate(self.labels.tolist()):
            by_spk.setdefault(label, []).append(idx)
        speakers = list(by_spk)
        queues = {s: [] for s in speakers}
        spk_queue = []
        batches = []
        for _ in range(self.num_global):
            if len(spk_queue) < self.P:
                spk_queue += [speakers[i] for i in rng.permutation(len(speakers))
                              if speakers[i] not in spk_queue]
            chosen, spk_queue = spk_queue[:self.P], spk_queue[self.P:]
            groups = []
            for spk in chosen:
                while len(queues[spk]) < self.K:
                    queues[spk] += [by_spk[spk][i] for i in rng.permutation(len(by_spk[spk]))]
                groups.append(np.array(queues[spk][:self.K]))
                queues[spk] = queues[spk][self.K:]
            batches.append(groups)
        return batches


class RandomBatchSampler(_EpochBatchSampler):
    """Shuffled utterances cut into batches: few anchors have a positive (the authors' setup)."""

    def _global_batches(self, rng):
        order = rng.permutation(len(self.labels))
        return [[order[i * self.batch_size:(i + 1) * self.batch_size][j:j + 1]
                 for j in range(self.batch_size)] for i in range(self.num_global)]


def build_sampler(labels, ds_args, num_speeds, seed, rank, world_size):
    """The batch sampler of config dataset_args (sampler pk | random, P, K, two_crops)."""
    common = dict(seed=seed, rank=rank, world_size=world_size, two_crops=ds_args.two_crops,
                  num_speeds=num_speeds)
    if ds_args.sampler == "pk":
        return PKBatchSampler(labels, ds_args.spk_per_batch, ds_args.utts_per_spk, **common)
    return RandomBatchSampler(labels, ds_args.spk_per_batch * ds_args.utts_per_spk, **common)
