"""The one trial-pair sampler (scoring/trial_pairs.py): pairs of the right kind, distinct,
uniform over the pairs that exist, and for a seed the very pairs of the two samplers it
replaced (the digests below were computed with those, synth/mini_corpus.py and
scoring/calibration_trials.py at commit 945abb3)."""

import hashlib

import numpy as np
import pytest
from scipy import stats

from wespeaker_mfcon.scoring.calibration_trials import make_training_trials
from wespeaker_mfcon.scoring.trial_pairs import (CALIBRATION, CORPUS, count_pairs,
                                                 nontarget_pairs, target_pairs)
from wespeaker_mfcon.synth.mini_corpus import make_trials


def _layout(sizes, sessions):
    """spk, sess (U,) of speakers of `sizes` utterances dealt round-robin over `sessions`."""
    spk = np.repeat(np.arange(len(sizes)), sizes)
    sess = np.concatenate([np.arange(n) % sessions for n in sizes])
    return spk, sess


@pytest.mark.parametrize("scheme", [CORPUS, CALIBRATION])
@pytest.mark.parametrize("k_tar,k_non", [(4, 5), (60, 300)])  # drawn by rejection; enumerated
def test_pairs_are_of_their_kind_and_distinct(scheme, k_tar, k_non):
    spk, sess = _layout([6] * 5, 3)
    n_tar, n_non = count_pairs(spk, sess)
    assert (n_tar, n_non) == (5 * (15 - 3), 30 * 29 // 2 - 5 * 15)  # by hand: 60, 360
    rng = np.random.default_rng(0)
    tar = target_pairs(rng, spk, sess, k_tar, n_tar, scheme)
    non = nontarget_pairs(rng, spk, k_non, n_non, scheme)
    for pairs, k in ((tar, k_tar), (non, k_non)):
        assert pairs.shape == (k, 2) and np.all(pairs[:, 0] < pairs[:, 1])
        assert len({tuple(p) for p in pairs.tolist()}) == k
    assert np.all(spk[tar[:, 0]] == spk[tar[:, 1]]) and np.all(sess[tar[:, 0]] != sess[tar[:, 1]])
    assert np.all(spk[non[:, 0]] != spk[non[:, 1]])


@pytest.mark.parametrize("scheme,sizes", [(CORPUS, [4, 4, 4]), (CALIBRATION, [2, 3, 5])])
def test_uniform_over_the_pairs_that_exist(scheme, sizes):
    """One pair at a time (rejection sampling): every possible pair about equally often, for
    speakers of unequal sizes too (the CALIBRATION draw weights a speaker by its size^2)."""
    spk, sess = _layout(sizes, 2)
    n_tar, n_non = count_pairs(spk, sess)
    for draw, n in ((lambda r: target_pairs(r, spk, sess, 1, n_tar, scheme), n_tar),
                    (lambda r: nontarget_pairs(r, spk, 1, n_non, scheme), n_non)):
        counts = {}
        for seed in range(100 * n):
            pair = tuple(draw(np.random.default_rng(seed))[0].tolist())
            counts[pair] = counts.get(pair, 0) + 1
        assert len(counts) == n
        assert stats.chisquare(list(counts.values())).pvalue > 1e-4


def test_corpus_draw_needs_speakers_of_one_size():
    spk, sess = _layout([4, 6, 4, 4], 2)
    n_tar, _ = count_pairs(spk, sess)
    with pytest.raises(ValueError, match="equal size"):
        target_pairs(np.random.default_rng(0), spk, sess, 2, n_tar, CORPUS)


def _digest(rows):
    return hashlib.sha256("".join(" ".join(map(str, r)) + "\n" for r in rows).encode()
                          ).hexdigest()[:16]


@pytest.mark.parametrize("args,digest", [
    ((3, 6, 3, 2, 40), "1be0d57270ea85b2"),        # targets enumerated, nontargets drawn
    ((7, 20, 2, 3, 600, 5), "aac22d0d315ad2c1"),   # (from speaker 5; fewer than asked)
    ((1, 3, 2, 1, 30), "71139d090f09a6dd"),        # both enumerated
    ((2, 10, 3, 3, 50), "6255a7cd152b7932")])      # both drawn
def test_mini_corpus_trials_unchanged(args, digest):
    assert _digest(make_trials(*args)) == digest


@pytest.mark.parametrize("num,seed,digest", [
    (40, 4, "0a7d6a92d7cc416d"), (300, 4, "23904a6975cb7015"), (12, 1, "5fa17aeb502dc66c"),
    (700, 2, "fdaf59344d442fb5")])
def test_calibration_trials_unchanged(num, seed, digest):
    u2s = {f"id{s:05d}/v{v}/{u:05d}": f"id{s:05d}" for s in range(9) for v in range(1 + s % 3)
           for u in range(1 + (s * 7 + v) % 4)}
    enroll, test, labels = make_training_trials(u2s, num, seed=seed)
    assert _digest(zip(enroll, test, labels.tolist())) == digest
