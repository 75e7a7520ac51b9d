"""The batches the shard stream (data_type shard) makes of an utterance order, without audio:
how many batches were topped up, how many distinct utterances a batch of P x K holds (the rest
are other crops of the same files) and how many speakers a window of batches sees. The P x K
batcher and the shuffle buffer are those of dataset/shards.py; bench_scale times them at
VoxCeleb2 size and compares shard orders (plain shuffle vs speaker runs) with it.
"""

import numpy as np

from wespeaker_mfcon.dataset.shards import PKBatcher, shuffle_buffer


def batch_structure(labels, steps, spk_per_batch, utts_per_spk, shuffle_size=1000,
                    buffer_size=1500, window=0, seed=0):
    """One pass over utterances with speaker labels (ints, in shard order), cut after `steps`
    batches as the loader cuts an epoch (fewer batches than steps: the stream would have begun
    a second pass). Returns {"batches", "topped", "distinct": mean distinct utterances per
    batch, "speakers_per_window": mean distinct speakers over `window` consecutive batches
    (None without a window)}."""
    rng = np.random.default_rng(seed)
    batcher = PKBatcher(spk_per_batch, utts_per_spk, buffer_size, rng)
    batcher.fit_to(len(labels))        # as the stream does after its first pass
    samples = ((f"u{i}", int(label), None, "") for i, label in enumerate(labels))
    batches = topped = distinct = 0
    recent, spread = [], []
    for sample in shuffle_buffer(samples, shuffle_size, rng):
        for groups in batcher.push(sample):
            batches += 1
            topped += batcher.topped_up
            distinct += len({s[0] for group in groups for s in group})
            rng.integers(2**31, size=len(groups) * (utts_per_spk + 1))  # the stream's draws
            recent.append({group[0][1] for group in groups})
            if window and len(recent) == window:
                spread.append(len(set().union(*recent)))
                recent = []
        if batches >= steps:
            break
    return {"batches": batches, "topped": topped, "distinct": distinct / max(batches, 1),
            "speakers_per_window": float(np.mean(spread)) if spread else None}
