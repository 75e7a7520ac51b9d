"""Trial pairs: k distinct pairs of utterances, uniform over the pairs of their kind.

    targets      one speaker, two different sessions
    nontargets   two different speakers

Utterances are indices 0..U-1 with a speaker (U,) and a session (U,) array; a pair is (a, b),
a < b, and no pair is drawn twice. A small space (at most `oversample` x k pairs) is
enumerated and k pairs are chosen from it without replacement, in enumeration order; a larger
one is sampled by rejection: each round draws oversample x (pairs still missing) + extra
candidates and keeps the valid ones not seen before, in the order drawn.

How the candidates are drawn from the generator is a `Scheme`. The two users have drawn them
differently since they were written, and each must keep its output for a seed (the mini
corpus' trials.txt, stage 7's calibration trials):

    CORPUS       (synth/mini_corpus.py) speakers of equal size: a speaker uniformly, then the
                 position of each side in it, one rng.integers call per column; nontargets:
                 one rng.integers call per column
    CALIBRATION  (scoring/calibration_trials.py) any speaker sizes: a speaker with probability
                 proportional to its size squared (rng.choice), the positions from rng.random;
                 nontargets: one (m, 2) rng.integers call
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scheme:
    """oversample: enumerate a space of at most oversample x k pairs, else draw oversample x
    (pairs missing) + extra candidates per round; by_column: the CORPUS draws (see above),
    else the CALIBRATION draws."""
    oversample: int
    extra: int
    by_column: bool


CORPUS = Scheme(oversample=4, extra=0, by_column=True)
CALIBRATION = Scheme(oversample=2, extra=16, by_column=False)


def count_pairs(spk, sess):
    """(target pairs across sessions, nontarget pairs) that exist; spk, sess (U,) ints >= 0,
    the session ids distinct between the sessions of one speaker."""
    n_tar = 0
    for s in np.unique(spk):
        sub = sess[spk == s]
        n_tar += (len(sub) ** 2 - int(np.sum(np.bincount(sub) ** 2))) // 2
    n_non = (len(spk) ** 2 - int(np.sum(np.bincount(spk) ** 2))) // 2
    return int(n_tar), int(n_non)


def sample_pairs(rng, k, possible, *, enumerate_all, draw, valid, scheme):
    """k distinct pairs (k, 2) int64, a < b, out of the `possible` pairs that valid(a, b)
    accepts. enumerate_all() -> (P, 2) every such pair in order; draw(rng, m) -> (m, 2)
    candidates; valid(a (m,), b (m,)) -> (m,) bool."""
    if k == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if possible <= scheme.oversample * k:  # small space: enumerate and choose
        every = enumerate_all()
        return every[np.sort(rng.choice(len(every), size=k, replace=False))]
    chosen = {}
    while len(chosen) < k:
        cand = draw(rng, scheme.oversample * (k - len(chosen)) + scheme.extra)
        for a, b in cand[valid(cand[:, 0], cand[:, 1])].tolist():
            chosen.setdefault((a, b) if a < b else (b, a), None)
            if len(chosen) == k:
                break
    return np.array(list(chosen), dtype=np.int64).reshape(-1, 2)


def _pairs_within(groups, valid):
    """Every pair (g[i], g[j]), i < j, of each index group (sorted), where valid -> (P, 2)."""
    parts = []
    for g in groups:
        i, j = np.triu_indices(len(g), 1)
        parts.append(np.stack([g[i], g[j]], axis=1))
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
    return pairs[valid(pairs[:, 0], pairs[:, 1])].astype(np.int64)


def _target_draw(order, starts, counts, by_column):
    """draw(rng, m) -> (m, 2) candidate pairs of one speaker each (see the module doc)."""
    if by_column:
        size = int(counts[0])
        if np.any(counts != size):
            raise ValueError("the by-column target draw needs speakers of equal size")

        def draw(rng, m):
            s = starts[rng.integers(len(counts), size=m)]
            a = s + rng.integers(size, size=m)
            b = s + rng.integers(size, size=m)
            return np.stack([order[a], order[b]], axis=1)
        return draw
    weight = counts.astype(np.float64) ** 2  # ordered pairs per speaker; rejection does the rest

    def draw(rng, m):
        s = rng.choice(len(counts), size=m, p=weight / weight.sum())
        a = starts[s] + (rng.random(m) * counts[s]).astype(np.int64)
        b = starts[s] + (rng.random(m) * counts[s]).astype(np.int64)
        return np.stack([order[a], order[b]], axis=1)
    return draw


def target_pairs(rng, spk, sess, k, possible, scheme):
    """k distinct pairs (k, 2) of one speaker's utterances from two different sessions, out of
    the `possible` such pairs. spk, sess (U,) ints (session ids distinct within a speaker)."""
    spk = np.unique(spk, return_inverse=True)[1].reshape(-1)
    order = np.argsort(spk, kind="stable")
    counts = np.bincount(spk)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def valid(a, b):
        return sess[a] != sess[b]
    groups = [order[s:s + c] for s, c in zip(starts, counts)]
    return sample_pairs(rng, k, possible, enumerate_all=lambda: _pairs_within(groups, valid),
                        draw=_target_draw(order, starts, counts, scheme.by_column),
                        valid=valid, scheme=scheme)


def nontarget_pairs(rng, spk, k, possible, scheme):
    """k distinct pairs (k, 2) of utterances of two different speakers, out of the `possible`
    such pairs. spk (U,)."""
    u = len(spk)

    def valid(a, b):
        return spk[a] != spk[b]

    def draw(rng_, m):
        if scheme.by_column:
            return np.stack([rng_.integers(u, size=m), rng_.integers(u, size=m)], axis=1)
        return rng_.integers(0, u, size=(m, 2))
    return sample_pairs(rng, k, possible, valid=valid, draw=draw, scheme=scheme,
                        enumerate_all=lambda: _pairs_within([np.arange(u)], valid))
