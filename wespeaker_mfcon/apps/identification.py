"""Enrollment and identification with a model: who of the enrolled speakers is this?

    from wespeaker_mfcon.apps.embedder import load_model
    from wespeaker_mfcon.apps.identification import Identifier

    with Identifier(load_model("exp/E"), "speakers.db", create=True) as ident:
        ident.enroll("alice", ["a1.wav", "a2.wav"])
        result = ident.identify("x.wav", top_k=5)
        print(result)           # one line per candidate, best first
        result.answer           # "alice", or None: none of them

A candidate's score is the cosine between the query's embedding and the speaker's (the unit-length
mean of its enrollments, speaker_db.py), found by search.py. With the experiment's calibration
(exp/E/calibration.json, stage 7) each candidate also gets its log-likelihood ratio
llr = calibration(cosine) and the Bayes decision llr >= log((1 - p) / p) at the prior
p = p_target, exactly as `compare` decides one trial. The search is open-set: the answer is the
best candidate that passes, or none of them when none does. Without a calibration the cosine is
reported, and there is a decision only when a threshold on it is given. A query from a model
other than the one that made the database is refused (SpeakerDB checks model_hash).
"""

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
from tqdm import tqdm

from wespeaker_mfcon.apps.search import EXPANSION_SEARCH, SpeakerSearch
from wespeaker_mfcon.apps.speaker_db import SpeakerDB, unit
from wespeaker_mfcon.scoring.calibration import bayes_threshold
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path


def model_hash(path):
    """SHA-256 (hex) of the model file's bytes: a checkpoint or an ONNX file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embed_wavs(embedder, wavs):
    """(K, E) embeddings of K wav files, with a progress bar for many."""
    return np.stack([embedder.embed_wav(w) for w in
                     tqdm(wavs, desc="embeddings", mininterval=2, disable=len(wavs) < 20)])


@dataclass
class Candidate:
    """One enrolled speaker as an answer: its cosine, and with a calibration its llr;
    accepted is the decision (None when there is none to make)."""
    name: str
    cosine: float
    llr: Optional[float] = None
    accepted: Optional[bool] = None

    def __str__(self):
        decision = {None: "-", True: "accept", False: "reject"}[self.accepted]
        if self.llr is None:
            return f"{self.name} cosine {self.cosine:.6f} {decision}"
        return f"{self.name} llr {self.llr:.4f} {decision} (cosine {self.cosine:.6f})"


@dataclass
class Identification:
    """Candidates best first; threshold on the llr (calibrated) or the cosine, or None."""
    candidates: list
    threshold: Optional[float] = None
    p_target: Optional[float] = None
    calibrated: bool = False

    @property
    def answer(self):
        """The best accepted candidate's name; None when none passes (or none can)."""
        return next((c.name for c in self.candidates if c.accepted), None)

    def lines(self):
        lines = [str(c) for c in self.candidates]
        if not self.candidates:
            return ["no speakers enrolled"]
        if self.threshold is None:
            return lines + ["no decision: no calibration (give a threshold on the cosine)"]
        if self.answer is None:
            rule = (f"llr >= {self.threshold:.4f} (Bayes threshold at p_target "
                    f"{self.p_target:g})" if self.calibrated else f"cosine >= {self.threshold:g}")
            lines.append(f"none of them: no candidate has {rule}")
        return lines

    def __str__(self):
        return "\n".join(self.lines())


def decide(names, cosines, calibration=None, p_target=0.01, threshold=None):
    """Identification of candidates (names, cosines (K,)) best first: llr and Bayes decision
    at p_target with a calibration (threshold overrides it, on the llr), else decisions only
    for a given threshold on the cosine."""
    cosines = np.asarray(cosines, dtype=np.float64)
    if calibration is None:
        accepted = [None if threshold is None else bool(c >= threshold) for c in cosines]
        return Identification([Candidate(n, float(c), None, a)
                               for n, c, a in zip(names, cosines, accepted)], threshold)
    llrs = calibration.llr(cosines) if len(cosines) else cosines
    threshold = bayes_threshold(p_target) if threshold is None else threshold
    return Identification([Candidate(n, float(c), float(l), bool(l >= threshold))
                           for n, c, l in zip(names, cosines, llrs)],
                          threshold, p_target, calibrated=True)


class Identifier:
    """An Embedder (apps/embedder.py) with a speaker database at db_path (SpeakerDB; created
    with create). search: auto | exact | index, expansion_search: the index's search breadth
    (search.py)."""

    def __init__(self, embedder, db_path, create=False, search="auto",
                 expansion_search=EXPANSION_SEARCH):
        self.embedder = embedder
        self.db = SpeakerDB(db_path, model_hash(embedder.model_path),
                            os.path.abspath(embedder.model_path), create=create)
        self.search = SpeakerSearch(self.db, search, expansion_search=expansion_search)

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def enroll(self, name, wavs):
        """Embed wavs and add them to speaker `name` (created if new) -> SpeakerInfo."""
        if not wavs:
            raise UserError(f"enroll {name}: no audio given")
        return self.db.enroll(name, embed_wavs(self.embedder, wavs), wavs)

    def identify(self, wav, top_k=5, p_target=0.01, threshold=None):
        """Identification of one wav among the enrolled speakers (top_k candidates)."""
        return self.identify_embedding(self.embedder.embed_wav(wav), top_k, p_target, threshold)

    def identify_embedding(self, embedding, top_k=5, p_target=0.01, threshold=None):
        """Identification of an embedding (E,) of this model."""
        if top_k < 1:
            raise UserError(f"top_k {top_k}: must be >= 1")
        ids, cosines = self.search.search(unit(embedding)[None], top_k)
        names = self.db.names(ids[0])
        return decide([names[i] for i in ids[0]], cosines[0], self.embedder.calibration,
                      p_target, threshold)

    def speakers(self):
        return self.db.speakers()

    def remove(self, names):
        return self.db.remove(names)


def reenroll(embedder, src, out):
    """Embed every enrollment's source audio in database `src` again with `embedder`'s model
    into a new database `out` (written whole or not at all). Returns [SpeakerInfo]."""
    if os.path.exists(out):
        raise UserError(f"{out}: exists; give a new path for the re-enrolled database")
    with SpeakerDB(src) as old:
        rows = old.enrollments()
    if not rows:
        raise UserError(f"{src}: no enrollments to re-enroll")
    missing = [p for _, p, _ in rows if not os.path.isfile(p)]
    if missing:
        raise UserError(f"{src}: {len(missing)} enrollment audio file(s) are gone, e.g. "
                        f"{missing[0]}; nothing written")
    embeddings = embed_wavs(embedder, [p for _, p, _ in rows])
    groups = {}
    for (name, path, _), emb in zip(rows, embeddings):
        groups.setdefault(name, ([], []))
        groups[name][0].append(emb)
        groups[name][1].append(path)
    with atomic_path(out) as tmp:
        with SpeakerDB(tmp, model_hash(embedder.model_path),
                       os.path.abspath(embedder.model_path), create=True) as new:
            return new.enroll_many([(n, np.stack(e), p) for n, (e, p) in groups.items()])
