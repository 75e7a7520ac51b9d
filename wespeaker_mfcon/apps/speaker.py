"""WeSpeaker's Python API (wespeaker/cli/speaker.py) over this project's models.

    import wespeaker_mfcon.apps.speaker as wespeaker

    model = wespeaker.load_model("exp/E")           # WeSpeaker: wespeaker.load_model("english")
    emb = model.extract_embedding("a.wav")          # torch.Tensor (E,)
    names, embs = model.extract_embedding_list("wav.scp")
    model.compute_similarity("a.wav", "b.wav")      # (cosine + 1) / 2, in [0, 1]
    model.register("alice", "alice.wav")
    model.recognize("query.wav")                    # {"name": "alice", "confidence": 0.93, ...}
    model.diarize("meeting.wav", utt="m1")          # [["m1", 0.0, 3.52, 0], ...]

Same names, arguments and return values as WeSpeaker where the job is the same. The model is an
experiment dir, a .pt or an .onnx file (there is no model hub). Speakers are kept in a speaker
database (speaker_db.py): in memory by default as in WeSpeaker, or in a file with
load_model(model, db="speakers.db"). recognize's result adds "cosine", "llr" and "accepted"
(the open-set decision of apps/identification.py; None without a calibration) to WeSpeaker's
"name" and "confidence", which stay closed-set: the best speaker, whatever its score.
diarize runs apps/diarize.py (its options: DiarizeOptions) and returns WeSpeaker's rows.
"""

import logging
import os

import numpy as np
import torch

from wespeaker_mfcon.apps import embedder as embedder_lib
from wespeaker_mfcon.apps.identification import Identifier
from wespeaker_mfcon.apps.speaker_db import MEMORY
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp

log = logging.getLogger(__name__)


def _confidence(cosine):
    """WeSpeaker's similarity: the cosine mapped from [-1, 1] to [0, 1]."""
    return (float(cosine) + 1.0) / 2.0


class Speaker:
    """WeSpeaker's Speaker: embeddings, similarity, register/recognize on one model."""

    def __init__(self, model, device="cpu", db=MEMORY):
        self.embedder = embedder_lib.load_model(model, device)
        self.identifier = Identifier(self.embedder, db, create=True)

    def extract_embedding(self, audio_path):
        """torch.Tensor (E,) float32 on the CPU, as WeSpeaker returns it."""
        return torch.from_numpy(np.asarray(self.embedder.embed_wav(audio_path), np.float32))

    def extract_embedding_list(self, scp_path):
        """wav.scp ("name path" lines) -> (names, [np.ndarray (E,)]) in file order."""
        table = read_scp(scp_path)
        return list(table), [self.extract_embedding(p).numpy() for p in table.values()]

    def cosine_similarity(self, e1, e2):
        """(cos(e1, e2) + 1) / 2 of two embeddings (E,) (tensors or arrays)."""
        a, b = np.asarray(e1, np.float64), np.asarray(e2, np.float64)
        return _confidence(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    def compute_similarity(self, audio_path1, audio_path2):
        """(cosine + 1) / 2 of two wavs' embeddings, in [0, 1]."""
        return self.cosine_similarity(self.extract_embedding(audio_path1),
                                      self.extract_embedding(audio_path2))

    def register(self, name, audio_path):
        """Enroll `name` from one wav; a name already registered is ignored, as in WeSpeaker
        (Identifier.enroll adds enrollments to an existing speaker instead)."""
        if name in self.identifier.db:
            log.warning("Speaker %s already registered, ignore", name)
            return
        self.identifier.enroll(name, [audio_path])

    def diarize(self, audio_path, utt="unk", num_speakers=None, options=None):
        """Who spoke when: [[utt, begin s, end s, speaker label 0..K-1]] in time order, as
        WeSpeaker's diarize returns them (apps/diarize.py; num_speakers fixes the count)."""
        from wespeaker_mfcon.apps.diarize import diarize
        turns = diarize(self.embedder, audio_path, num_speakers=num_speakers, options=options)
        return [[utt, round(begin, 3), round(end, 3), int(label)] for begin, end, label in turns]

    def recognize(self, audio_path):
        """{"name", "confidence"} of the best registered speaker ("" and 0.0 when none), plus
        "cosine", "llr" and "accepted" (the open-set decision; None without calibration)."""
        candidates = self.identifier.identify(audio_path, top_k=1).candidates
        if not candidates:
            return {"name": "", "confidence": 0.0, "cosine": None, "llr": None,
                    "accepted": None}
        best = candidates[0]
        return {"name": best.name, "confidence": _confidence(best.cosine),
                "cosine": best.cosine, "llr": best.llr, "accepted": best.accepted}


def load_model(model, device="cpu", db=MEMORY):
    """A Speaker for an experiment dir, a .pt or an .onnx file (WeSpeaker takes a language or
    a model dir; here there is no hub to download from). A WeSpeaker-style model dir (config.yaml
    and avg_model.pt side by side) works too."""
    if not os.path.exists(model):
        raise UserError(f"{model}: no such model; give an experiment dir, a .pt or an .onnx "
                        "file (there is no model hub to download from)")
    if os.path.isfile(os.path.join(model, "avg_model.pt")):     # a WeSpeaker model dir
        model = os.path.join(model, "avg_model.pt")
    return Speaker(model, device, db)


def load_model_local(model_dir, device="cpu", db=MEMORY):
    """WeSpeaker's name for loading a local model dir: the same as load_model."""
    return load_model(model_dir, device, db)
