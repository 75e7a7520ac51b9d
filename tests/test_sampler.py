import collections

import numpy as np
import pytest

from wespeaker_mfcon.dataset.sampler import PKBatchSampler, RandomBatchSampler, build_sampler
from wespeaker_mfcon.config import DatasetArgs

LABELS = [s for s in range(12) for _ in range(3 + s % 4)]  # 12 speakers, 3..6 utts each


def batches(sampler, epoch=0, start=0):
    sampler.set_epoch(epoch, start)
    return list(sampler)


def test_pk_batches_hold_p_speakers_times_k():
    sampler = PKBatchSampler(LABELS, 4, 3, seed=7)
    out = batches(sampler)
    assert len(out) == len(LABELS) // 12 == len(sampler)
    for batch in out:
        per_spk = collections.Counter(LABELS[u] for u, _, _ in batch)
        assert len(per_spk) == 4 and set(per_spk.values()) == {3}


def test_pk_covers_most_utterances_and_is_deterministic():
    sampler = PKBatchSampler(LABELS, 4, 3, seed=7)
    first, again = batches(sampler), batches(PKBatchSampler(LABELS, 4, 3, seed=7))
    assert first == again
    seen = {u for b in first for u, _, _ in b}
    assert len(seen) >= 0.7 * len(LABELS)
    assert batches(sampler, epoch=1) != first


def test_ranks_get_disjoint_batches_that_make_up_the_epoch():
    full = batches(PKBatchSampler(LABELS, 2, 2, seed=3))
    r0 = batches(PKBatchSampler(LABELS, 2, 2, seed=3, rank=0, world_size=2))
    r1 = batches(PKBatchSampler(LABELS, 2, 2, seed=3, rank=1, world_size=2))
    assert len(r0) == len(r1) == len(full) // 2
    assert r0 == full[0::2][:len(r0)] and r1 == full[1::2][:len(r1)]


def test_resume_skips_exactly_the_first_batches():
    sampler = PKBatchSampler(LABELS, 3, 2, seed=1)
    full = batches(sampler, epoch=2)
    assert batches(sampler, epoch=2, start=3) == full[3:]
    assert len(sampler) == len(full) - 3


def test_two_crops_pairs_each_utterance_with_a_different_seed():
    batch = batches(PKBatchSampler(LABELS, 2, 2, seed=0, two_crops=True))[0]
    assert len(batch) == 8
    for a, b in zip(batch[0::2], batch[1::2]):
        assert a[0] == b[0] and a[1] != b[1]


def test_speed_index_is_shared_by_a_speaker_within_a_batch():
    for batch in batches(PKBatchSampler(LABELS, 4, 3, seed=5, num_speeds=3)):
        speeds = collections.defaultdict(set)
        for u, _, sp in batch:
            speeds[LABELS[u]].add(sp)
        assert all(len(s) == 1 for s in speeds.values())


def test_random_sampler_has_few_positives_compared_with_pk():
    labels = [s for s in range(100) for _ in range(5)]
    rand = batches(RandomBatchSampler(labels, 20, seed=0))
    ds_args = DatasetArgs(sampler="pk", spk_per_batch=5, utts_per_spk=4)
    pk = batches(build_sampler(labels, ds_args, num_speeds=1, seed=0, rank=0, world_size=1))

    def anchors_with_positive(batch):
        counts = collections.Counter(labels[u] for u, _, _ in batch)
        return sum(c for c in counts.values() if c > 1) / len(batch)

    assert np.mean([anchors_with_positive(b) for b in pk]) == 1.0
    assert np.mean([anchors_with_positive(b) for b in rand]) < 0.4


def test_more_speakers_per_batch_than_the_data_has_is_rejected():
    with pytest.raises(ValueError, match="spk_per_batch 9 > 6 speakers"):
        PKBatchSampler([s for s in range(6) for _ in range(3)], 9, 2)
