"""WeSpeaker tar shards from a Kaldi data dir (stage 1 with --data_type shard).

  DATA/wav.scp + DATA/utt2spk -> utterances in an order shuffled by seed (so that every shard
  mixes speakers), in runs of group_size utterances of one speaker (speaker_runs) when
  group_size > 1 -> groups of num_utts_per_shard -> DATA/shards/shards_000000000.tar, ...
  with members {key}.spk (the speaker) and {key}.wav (the file's bytes as they are; another
  extension soundfile reads is kept), as WeSpeaker's tools/make_shard_list.py writes them
  -> DATA/shard.list (paths relative to DATA), written last.

Shards are written in nj processes with a progress bar, each through atomic_path: a killed
run leaves only complete shards, and the same command started again keeps them and writes the
rest. DATA/shards/plan.txt holds a digest of what the shards are cut from (the tables and the
options); when it differs, the old shards are removed and all are written again.
"""

import hashlib
import io
import logging
import os
import tarfile

import numpy as np

from wespeaker_mfcon.dataset.shards import AUDIO_EXTS
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_path, atomic_write, read_scp
from wespeaker_mfcon.utils.parallel import parallel_map

logger = logging.getLogger(__name__)


def speaker_runs(utts, spks, group_size, rng):
    """The utterances in runs of group_size of one speaker (a speaker's last run may be
    shorter), runs in random order. A stream read from these shards brings a speaker's
    utterances close together, so that the P x K batcher's bounded buffer finds K of them
    for many speakers at once (on 5,994 speakers a plain shuffle gives it ~0.25 per speaker)."""
    by_spk = {}
    for utt in utts:
        by_spk.setdefault(spks[utt], []).append(utt)
    runs = []
    for spk in sorted(by_spk):
        mine = [by_spk[spk][i] for i in rng.permutation(len(by_spk[spk]))]
        runs += [mine[i:i + group_size] for i in range(0, len(mine), group_size)]
    return [utt for i in rng.permutation(len(runs)) for utt in runs[i]]


def plan_shards(data_dir, num_utts_per_shard, seed, group_size=1):
    """[(tar name, [(key, speaker, audio path)])] in shard order; keys checked for tar use."""
    wav_scp, utt2spk = (os.path.join(data_dir, name) for name in ("wav.scp", "utt2spk"))
    wavs, spks = read_scp(wav_scp), read_scp(utt2spk)
    missing = [u for u in spks if u not in wavs]
    if missing:
        raise UserError(f"{wav_scp}: {len(missing)} utterances of utt2spk are missing, first: "
                        f"{', '.join(missing[:3])}")
    utts = sorted(spks)
    for utt in utts:
        ext = os.path.splitext(wavs[utt])[1][1:].lower()
        if "." in utt.rsplit("/", 1)[-1] or ext not in AUDIO_EXTS:
            why = (f"its audio {wavs[utt]} is not one of .{', .'.join(AUDIO_EXTS)}"
                   if "." not in utt.rsplit("/", 1)[-1] else "a dot in the key's last part "
                   "would split it in a tar (member names are {key}.{ext})")
            raise UserError(f"{wav_scp}: {utt}: cannot go into a shard: {why}")
    rng = np.random.default_rng(seed)
    order = ([utts[i] for i in rng.permutation(len(utts))] if group_size == 1
             else speaker_runs(utts, spks, group_size, rng))
    return [(f"shards_{i:09d}.tar",
             [(u, spks[u], wavs[u]) for u in order[start:start + num_utts_per_shard]])
            for i, start in enumerate(range(0, len(order), num_utts_per_shard))]


def write_shard(tar_path, members):
    """One tar through atomic_path: {key}.spk and {key}.{ext} per utterance."""
    with atomic_path(tar_path) as tmp, tarfile.open(tmp, "w") as tar:
        for key, spk, path in members:
            try:
                with open(path, "rb") as f:
                    audio = f.read()
            except OSError as e:
                raise UserError(f"{path}: cannot read audio for {key}: {e.strerror}") from None
            ext = os.path.splitext(path)[1][1:].lower()
            for name, data in ((f"{key}.spk", spk.encode("utf-8")), (f"{key}.{ext}", audio)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return len(members)


def _write_job(job):
    return write_shard(*job)


def _plan_digest(plan, num_utts_per_shard, seed):
    """The plan's members and order (so group_size too) and the options it was cut with."""
    digest = hashlib.sha1(f"{num_utts_per_shard} {seed}\n".encode())
    for name, members in plan:
        digest.update(name.encode())
        for member in members:
            digest.update((" ".join(member) + "\n").encode())
    return digest.hexdigest()


def _keep_or_clear(shards_dir, digest):
    """Keep finished shards of the same plan; remove those of another one."""
    plan_file = os.path.join(shards_dir, "plan.txt")
    old = open(plan_file, encoding="utf-8").read().strip() if os.path.isfile(plan_file) else None
    if old != digest:
        stale = [n for n in os.listdir(shards_dir) if n.endswith(".tar")]
        if stale:
            logger.info("%s: %d shards of other inputs or options removed", shards_dir,
                        len(stale))
        for name in stale:
            os.remove(os.path.join(shards_dir, name))
        with atomic_write(plan_file) as f:
            f.write(digest + "\n")


def write_shards(data_dir, num_utts_per_shard=1000, nj=1, seed=777, group_size=1,
                 progress=True):
    """DATA/shards/*.tar and DATA/shard.list; returns (shards written, shards kept)."""
    plan = plan_shards(data_dir, num_utts_per_shard, seed, group_size)
    shards_dir = os.path.join(data_dir, "shards")
    os.makedirs(shards_dir, exist_ok=True)
    _keep_or_clear(shards_dir, _plan_digest(plan, num_utts_per_shard, seed))
    jobs = [(os.path.join(shards_dir, name), members) for name, members in plan
            if not os.path.isfile(os.path.join(shards_dir, name))]
    parallel_map(_write_job, jobs, nj, desc="shards", unit="shard", progress=progress)
    with atomic_write(os.path.join(data_dir, "shard.list")) as f:
        f.writelines(f"shards/{name}\n" for name, _ in plan)
    return len(jobs), len(plan) - len(jobs)
