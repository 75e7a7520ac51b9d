"""Seeded multi-speaker conversations from the mini corpus's test voices, with reference RTTM:
the test data of diarization (apps/diarize.py).

Recording `index` of a set made with `seed` draws, from generators keyed by (seed, index, ...)
only (so a recording does not depend on the others or on the number of jobs):

* its length (min_dur..max_dur s) and 2-6 speakers (min_spk..max_spk) out of the mini corpus's
  test speakers (the voices of `mini_corpus.speaker_params` with the same seed), each in a
  fresh session (`mini_corpus.session_params`, session 1000 + index) that gives their speaking
  style (vocal effort, rate, breathiness) and at their own level, and each speaker's share of
  the talk (Dirichlet). All speak through one room and microphone (the first speaker's
  session's), as at one table: the channel tells no speaker apart;
* the turns: the first ones go round all speakers in a random order, then each next speaker is
  drawn by share, never the one who just spoke. Turn lengths are log-normal (median 2.5 s,
  0.6-15 s); before a turn comes a pause (log-normal, median 0.35 s) or, with probability
  p_overlap and not right after an overlap, an overlap: the turn starts 0.3-1.5 s (at most half
  the last turn) before the last one ends, so at most two speakers talk at once;
* the channel noise of the recording (that session's noise, made in 30 s blocks) at an SNR
  of 10-30 dB against the mean speech power.

Speech is the mini corpus's source-filter synthesis (`mini_corpus.clean_speech`) through the
room (`mini_corpus.room_speech`). The reference marks each turn from the first to the
last 10 ms frame of its dry speech within 40 dB of the turn's loudest frame, so the synthesis'
leading and trailing pauses are not speech; pauses inside a turn are (as annotators mark
turns).

    make_conversations(out_dir, num=20) -> out_dir/wav/convNNNN.wav, out_dir/rttm/convNNNN.rttm,
                                           out_dir/wav.scp, out_dir/ref.rttm, out_dir/meta.json
"""

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import soundfile as sf

from wespeaker_mfcon.scoring.rttm import rttm_lines
from wespeaker_mfcon.synth import mini_corpus as mc
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, atomic_write
from wespeaker_mfcon.utils.parallel import parallel_map

SR = mc.SAMPLE_RATE
# Keys of the generators: (seed, purpose, index, item); purposes apart from mini_corpus' 1-5.
_P_PLAN, _P_TURN, _P_NOISE = 21, 22, 23
_SESSION_BASE = 1000
_NOISE_BLOCK_S = 30.0
_ACTIVE_DB = 40.0


@dataclass(frozen=True)
class ConversationParams:
    """What a set of conversations depends on (stored in meta.json)."""
    seed: int = mc.DEFAULTS["seed"]
    num_test_spk: int = mc.DEFAULTS["num_test_spk"]   # the voice pool: test speakers
    first_test_spk: int = mc.DEFAULTS["first_test_spk"]
    min_dur: float = 120.0
    max_dur: float = 480.0
    min_spk: int = 2
    max_spk: int = 6
    p_overlap: float = 0.2
    snr: tuple = (10.0, 30.0)

    def check(self):
        """Raise UserError for a value out of range."""
        if not 2 <= self.min_spk <= self.max_spk <= self.num_test_spk:
            raise UserError(f"need 2 <= min_spk <= max_spk <= num_test_spk, got {self.min_spk}, "
                            f"{self.max_spk}, {self.num_test_spk}")
        if not 5.0 <= self.min_dur <= self.max_dur <= 4 * 3600:
            raise UserError(f"need 5 <= min_dur <= max_dur <= 14400 s, got {self.min_dur}, "
                            f"{self.max_dur}")
        if not 0.0 <= self.p_overlap < 1.0:
            raise UserError(f"p_overlap must be in [0, 1), got {self.p_overlap}")


@dataclass
class Turn:
    speaker: int        # index into the recording's speakers
    start: float        # s, where the synthesized turn (with its leading pause) starts
    dur: float          # s


def recording_name(index):
    return f"conv{index:04d}"


def _next_speaker(r, previous, shares):
    """A speaker index other than `previous`, drawn by shares (K,)."""
    p = np.array(shares, dtype=float)
    p[previous] = 0.0
    return int(r.choice(len(p), p=p / p.sum()))


def _draw_gap(r, p_overlap, last_dur, after_overlap):
    """Seconds from the end of the last turn to the start of the next; negative = overlap."""
    if not after_overlap and r.uniform() < p_overlap:
        return -min(r.uniform(0.3, 1.5), 0.5 * last_dur)
    return float(np.clip(r.lognormal(np.log(0.35), 0.6), 0.05, 3.0))


def plan_conversation(params, index):
    """(speakers: list of test-speaker indices, turns: list of Turn, length s) of recording
    `index`; cheap (no audio)."""
    r = mc.keyed_rng(params.seed, _P_PLAN, index)
    length = r.uniform(params.min_dur, params.max_dur)
    k = int(r.integers(params.min_spk, params.max_spk + 1))
    pool = params.first_test_spk + r.permutation(params.num_test_spk)[:k]
    shares = r.dirichlet(np.full(k, 2.0))
    turns, t, previous, after_overlap = [], 0.5, -1, False
    while t < length - 1.0:
        speaker = len(turns) if len(turns) < k else _next_speaker(r, previous, shares)
        dur = float(np.clip(r.lognormal(np.log(2.5), 0.8), 0.6, 15.0))
        dur = min(dur, max(length - t, 0.6))
        turns.append(Turn(speaker, t, dur))
        gap = _draw_gap(r, params.p_overlap, dur, after_overlap)
        after_overlap = gap < 0
        t, previous = t + dur + gap, speaker
    end = max(turn.start + turn.dur for turn in turns) + 0.5
    return [int(s) for s in pool], turns, end


def _active_span(speech):
    """(first, last + 1) sample of the 10 ms frames of speech (n,) within _ACTIVE_DB of its
    loudest frame; (0, 0) for silence."""
    hop = SR // 100
    frames = speech[:len(speech) // hop * hop].reshape(-1, hop)
    energy = (frames ** 2).mean(axis=1)
    if energy.size == 0 or energy.max() <= 0:
        return 0, 0
    on = np.flatnonzero(energy >= energy.max() * 10 ** (-_ACTIVE_DB / 10))
    return int(on[0]) * hop, int(on[-1] + 1) * hop


def _render_turns(params, index, speakers, turns, out):
    """Add every turn's speech into out (n,) in place; returns the reference turns
    [(start s, end s, speaker id)], the speech power (mean square over the turns) and the
    room's session parameters (its noise is the recording's)."""
    sp = [mc.speaker_params(params.seed, "test", s) for s in speakers]
    ss = [mc.session_params(params.seed, "test", s, _SESSION_BASE + index) for s in speakers]
    room = ss[0]    # one room and microphone for all: the channel tells no speaker apart
    level = mc.keyed_rng(params.seed, _P_PLAN, index, 1).uniform(-30.0, -22.0, len(speakers))
    reference, power, count = [], 0.0, 0
    for i, turn in enumerate(turns):
        r = mc.keyed_rng(params.seed, _P_TURN, index, i)
        dry = mc.clean_speech(r, sp[turn.speaker], ss[turn.speaker], int(turn.dur * SR))
        a, b = _active_span(dry)
        if b <= a:
            continue
        wet = mc.room_speech(room, dry)
        wet *= 10 ** ((level[turn.speaker] + r.normal(0, 1.0)) / 20) / np.sqrt(
            np.mean(wet[a:b] ** 2) + 1e-20)
        at = int(turn.start * SR)
        out[at:at + len(wet)] += wet[:len(out) - at]
        power, count = power + np.sum(wet[a:b] ** 2), count + b - a
        reference.append(((at + a) / SR, (at + b) / SR, mc.speaker_id("test", speakers[turn.speaker])))
    return reference, power / max(count, 1), room


def _add_noise(params, index, out, speech_power, session):
    """Add the recording's channel noise to out (n,) in place, block by block."""
    snr = mc.keyed_rng(params.seed, _P_PLAN, index, 2).uniform(*params.snr)
    block = int(_NOISE_BLOCK_S * SR)
    for b, at in enumerate(range(0, len(out), block)):
        n = min(block, len(out) - at)
        noise = mc.channel_noise(mc.keyed_rng(params.seed, _P_NOISE, index, b), session, n)
        noise *= np.sqrt(speech_power * 10 ** (-snr / 10) / max(np.mean(noise ** 2), 1e-20))
        out[at:at + n] += noise


def synth_conversation(params, index):
    """Recording `index`: (samples float32 (n,) in [-1, 1] at 16 kHz, reference turns
    [(start s, end s, speaker id), ...] sorted by start)."""
    speakers, turns, length = plan_conversation(params, index)
    out = np.zeros(int(length * SR))
    reference, power, session = _render_turns(params, index, speakers, turns, out)
    _add_noise(params, index, out, power, session)
    peak = np.max(np.abs(out))
    if peak > 0.98:
        out *= 0.98 / peak
    return out.astype(np.float32), sorted(reference)


def _write_one(args):
    """Write wav/NAME.wav and rttm/NAME.rttm of one recording; returns (name, seconds)."""
    out_dir, params, index = args
    name = recording_name(index)
    audio, reference = synth_conversation(params, index)
    with atomic_path(os.path.join(out_dir, "wav", f"{name}.wav")) as tmp:
        sf.write(tmp, audio, SR, subtype="PCM_16", format="WAV")
    with atomic_write(os.path.join(out_dir, "rttm", f"{name}.rttm")) as f:
        f.writelines(line + "\n" for line in rttm_lines(name, reference))
    return name, len(audio) / SR


def make_conversations(out_dir, num=20, params=ConversationParams(), jobs=1, first_index=0,
                       progress=True):
    """Write recordings first_index .. first_index + num - 1 under out_dir (layout in the
    module doc); returns the meta dict. A set already there with the same parameters is kept
    (meta.json is written last and holds them)."""
    params.check()
    meta_path = os.path.join(out_dir, "meta.json")
    want = dict(params=asdict(params), num=num, first_index=first_index)
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if {k: meta.get(k) for k in want} == json.loads(json.dumps(want)):
            return meta
    for sub in ("wav", "rttm"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    tasks = [(out_dir, params, i) for i in range(first_index, first_index + num)]
    done = parallel_map(_write_one, tasks, jobs, desc="conversations", unit="rec",
                        progress=progress)
    with atomic_write(os.path.join(out_dir, "wav.scp")) as f:
        f.writelines(f"{name} {os.path.abspath(os.path.join(out_dir, 'wav', name + '.wav'))}\n"
                     for name, _ in done)
    with atomic_write(os.path.join(out_dir, "ref.rttm")) as f:
        for name, _ in done:
            with open(os.path.join(out_dir, "rttm", f"{name}.rttm"), encoding="utf-8") as g:
                f.write(g.read())
    meta = dict(want, hours=sum(s for _, s in done) / 3600)
    with atomic_write(meta_path) as f:
        json.dump(meta, f, indent=1)
    return meta
