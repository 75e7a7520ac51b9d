"""data_type shard: WeSpeaker tar shards read as a stream with webdataset.

  data/train/shard.list (one tar per line: a path, relative ones to the data dir, an
     http(s):// URL or a pipe: command, read with webdataset's URL handling: dataset/remote.py;
     a transport failure is retried with a backoff, the samples already read skipped)
  -> shard order shuffled per (seed, epoch); shards dealt to ranks, then to loader workers
     (disjoint and complete: every shard goes to exactly one worker of one rank)
  -> samples {key, speaker, encoded audio} read by webdataset from `{key}.wav` (or .flac, ...)
     and `{key}.spk` members -> a shuffle buffer of shuffle_size samples
  -> batcher: PKBatcher (sampler pk) or PlainBatcher (sampler random)
  -> per sample: decode, then dataset.wave_chunk as in data_type raw (speed perturbation,
     augmentation), all randomness from a seed drawn in the stream
  -> (B, N) int16-scale waveforms, labels (B,); the fbank is computed in the training loop.

Each worker's stream is endless (it cycles over its shards, reshuffled every pass), and
ShardLoader cuts exactly steps_per_epoch batches per rank from it, the number the samplers
give for feat/raw: max(utterances // (P*K), world) rounded down to a multiple of the world
size, divided by it. So every DDP rank runs the same number of steps. A run resumed at batch b
of an epoch rebuilds the epoch's streams and skips the first b batches before decoding any
audio: the same batches, chunks and augmentation as an unbroken run with the same world size
and number of loader workers.
"""

import itertools
import logging
import os
import time

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from wespeaker_mfcon.dataset import remote
from wespeaker_mfcon.dataset.dataset import wave_chunk
from wespeaker_mfcon.dataset.sampler import global_batches
from wespeaker_mfcon.utils.audio import decode_audio
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp

logger = logging.getLogger(__name__)

AUDIO_EXTS = ("wav", "flac", "ogg", "opus", "mp3", "sph")


# ------------------------------------------------------------------------ shards and samples


def read_shard_list(data_dir):
    """The shards of data_dir/shard.list: absolute tar paths (a missing file names the list
    line), and URLs and pipe: commands as written."""
    path = os.path.join(data_dir, "shard.list")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file (write shards with stage 1 --data_type shard "
                        "or python -m wespeaker_mfcon.bin.make_shards)")
    shards = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            name = line.strip()
            if not name:
                continue
            if remote.is_remote(name):
                shards.append(name)
                continue
            tar = name if os.path.isabs(name) else os.path.join(data_dir, name)
            if not os.path.isfile(tar):
                raise UserError(f"{path}:{lineno}: shard {name} does not exist")
            shards.append(os.path.abspath(tar))
    if not shards:
        raise UserError(f"{path}: lists no shards")
    return shards


def partition(shards, seed, epoch, rank=0, world_size=1, worker=0, num_workers=1):
    """The shards one loader worker of one rank reads in this epoch, in its order."""
    order = np.random.default_rng([seed, epoch, 2]).permutation(len(shards))
    return [shards[i] for i in order[rank::world_size][worker::num_workers]]


def read_shard(path, retries=0, retry_wait=1.0):
    """Samples (key, speaker, audio bytes, where) of one tar (a path, an http(s) URL or a pipe:
    command), in tar order, via webdataset. A corrupt tar or a sample without its .spk or
    audio member is a one-line UserError that names the shard and the member (so the key)
    being read. A URL or command whose transport fails is read again after retry_wait s, then
    2x, 4x that..., up to `retries` failures in a row, skipping the samples already given (the
    same samples as an unbroken read); then a UserError names it."""
    given, failures, started = 0, 0, time.monotonic()
    while True:
        before = given
        try:
            for index, sample in enumerate(_read_tar(path)):
                if index == given:
                    given += 1
                    yield sample
            return
        except remote.TransportError as e:
            failures = 1 if given > before else failures + 1
            if failures > retries:
                raise UserError(f"{path}: unreachable: {e}; {failures} attempt(s) in a row "
                                f"failed over {time.monotonic() - started:.0f} s: when it is "
                                "back, run the same command again") from None
            delay = retry_wait * 2 ** (failures - 1)
            logger.warning("%s: %s after %d samples; trying again in %.1f s (retry %d of %d)",
                           path, e, given, delay, failures, retries)
            time.sleep(delay)


def _read_tar(path):
    """One attempt at read_shard's samples; a TransportError if the transport failed."""
    member, stream = [], None

    def note(fname):                     # webdataset asks before it reads each member
        member[:] = [fname]
        return True
    try:
        stream = remote.open_stream(path)
        files = wds.tariterators.tar_file_expander([{"url": path, "stream": stream}],
                                                   select_files=note)
        for sample in wds.tariterators.group_by_keys(files):
            yield _parse(sample, path)
        failure = remote.transport_failure(stream, path)     # a cut at a member boundary
    except Exception as e:
        failure = remote.transport_failure(stream, path)
        if failure is None and isinstance(e, UserError):
            raise
        if failure is None:
            where = f"at member {member[0]}" if member else "before its first member"
            reason = str(e.args[0]).split(" @ ")[0] if e.args else type(e).__name__
            raise UserError(f"{path}: corrupt tar {where}: {_one_line(reason)}") from None
    finally:
        if stream is not None:
            remote.close_stream(stream)
    if failure is not None:
        raise remote.TransportError(failure)


def _parse(sample, path):
    key = sample["__key__"]
    audio = [ext for ext in AUDIO_EXTS if ext in sample]
    if "spk" not in sample:
        raise UserError(f"{path}: key {key}: no {key}.spk member")
    if not audio:
        raise UserError(f"{path}: key {key}: no audio member ({key}.wav or "
                        f"{'/'.join(AUDIO_EXTS[1:])})")
    try:
        spk = sample["spk"].decode("utf-8").strip()
    except UnicodeDecodeError:
        spk = ""
    if not spk or len(spk.split()) != 1:
        raise UserError(f"{path}: key {key}: {key}.spk must hold one speaker name")
    return key, spk, sample[audio[0]], f"{path}: {key}.{audio[0]}"


def _one_line(error):
    return " ".join(str(error).split())[:300]


def shuffle_buffer(samples, size, rng):
    """A bounded random shuffle of a stream: each item waits among `size` others."""
    buf = []
    for sample in samples:
        if len(buf) < size:
            buf.append(sample)
            continue
        i = int(rng.integers(size))
        yield buf[i]
        buf[i] = sample
    for i in rng.permutation(len(buf)):
        yield buf[i]


# ---------------------------------------------------------------------------------- batchers


class PKBatcher:
    """A bounded buffer of samples bucketed by speaker that cuts batches of P speakers x K.

    push(sample) adds one sample; once the buffer holds buffer_size samples (or one pass over
    the worker's shards, when that is fewer: fit_to) it returns one batch (a list of P groups
    of K samples of one speaker) and so stays about full:
    * P speakers drawn at random among those with >= K samples, each giving its K oldest;
    * else (fewer than P such speakers) the P fullest speakers, a speaker with fewer than K
      samples repeating its own samples (different crops) up to K: a topped-up batch. So a
      speaker with few samples left never stalls the stream, and every anchor keeps K-1
      positives;
    * else (fewer than P speakers in the buffer) the oldest sample of the fullest speaker is
      dropped (counted; it needs a buffer_size far below the speakers' sample counts).
    Samples still in the buffer when an epoch's steps are done are not used in that epoch.
    """

    def __init__(self, spk_per_batch, utts_per_spk, buffer_size, rng):
        self.P, self.K, self.capacity, self.rng = spk_per_batch, utts_per_spk, buffer_size, rng
        self.buckets, self.ready, self.size = {}, {}, 0
        self.held = 0                       # samples in the buffer when the last batch was cut
        self.topped_up = False              # was the last batch topped up
        self.dropped = 0                    # samples dropped so far

    def push(self, sample):
        """Add (key, speaker, audio, where); returns [] or [batch]."""
        bucket = self.buckets.setdefault(sample[1], [])
        bucket.append(sample)
        self.size += 1
        if len(bucket) == self.K:
            self.ready[sample[1]] = True
        if self.size < self.capacity:
            return []
        self.held = self.size
        self.topped_up = len(self.ready) < self.P
        if not self.topped_up:
            ready = list(self.ready)
            chosen = [ready[i] for i in self.rng.choice(len(ready), self.P, replace=False)]
            return [[self._take(spk) for spk in chosen]]
        if len(self.buckets) >= self.P:
            fullest = sorted(self.buckets, key=lambda s: -len(self.buckets[s]))[:self.P]
            return [[self._take(spk) for spk in fullest]]
        self.dropped += 1
        self._take(max(self.buckets, key=lambda s: len(self.buckets[s])), 1)
        return []

    def fit_to(self, pass_size):
        """A worker whose shards hold fewer samples than buffer_size would wait several passes
        for its first batch: bound the buffer by one pass (but at least P x K)."""
        self.capacity = max(min(self.capacity, pass_size), self.P * self.K)

    def _take(self, spk, count=None):
        """The oldest `count` (default K) samples of spk, cycled up to K if it has fewer."""
        bucket, count = self.buckets[spk], count or self.K
        taken, rest = bucket[:count], bucket[count:]
        self.size -= len(taken)
        if rest:
            self.buckets[spk] = rest
        else:
            del self.buckets[spk]
        if len(rest) < self.K:
            self.ready.pop(spk, None)
        return [taken[i % len(taken)] for i in range(count)]


class PlainBatcher:
    """Batches of batch_size samples in stream order (sampler random): each its own group."""

    def __init__(self, batch_size):
        self.batch_size, self.pending, self.topped_up, self.dropped = batch_size, [], False, 0
        self.held = batch_size

    def fit_to(self, pass_size):
        pass

    def push(self, sample):
        self.pending.append([sample])
        if len(self.pending) < self.batch_size:
            return []
        batch, self.pending = self.pending, []
        return [batch]


# ------------------------------------------------------------------------------- the stream


def steps_per_epoch(num_utts, batch_size, world_size):
    """Batches per rank and epoch: the samplers' count (dataset/sampler.py) for this data."""
    return global_batches(num_utts, batch_size, world_size) // world_size


class ShardStream(IterableDataset):
    """The batches of one rank: each loader worker reads its own shards (see partition)."""

    def __init__(self, shards, spk2id, conf, rank, world_size, augmentor=None):
        ds = conf.dataset_args
        self.shards, self.spk2id, self.num_spk = shards, spk2id, len(spk2id)
        self.seed, self.rank, self.world_size = conf.seed, rank, world_size
        self.ds, self.speeds, self.augmentor = ds, conf.speeds, augmentor
        self.sample_rate = conf.sample_rate
        self.fbank_kwargs = conf.fbank_kwargs()
        self.retries, self.retry_wait = ds.shard_args.retries, ds.shard_args.retry_wait
        self.epoch, self.start_batch = 0, 0

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        skip = max(0, -(-(self.start_batch - worker) // workers))   # my share of start_batch
        for index, (items, stats) in enumerate(self._batches(worker, workers)):
            if index >= skip:
                yield (*self._materialize(items), stats)

    def _batches(self, worker, workers):
        """Endless (items, [buffer fill at the cut, topped up, samples dropped since]) of
        this worker: the structure and every seed, before any audio is decoded."""
        rng = np.random.default_rng([self.seed, self.epoch, 3, self.rank, worker])
        shards = partition(self.shards, self.seed, self.epoch, rank=self.rank,
                           world_size=self.world_size, worker=worker, num_workers=workers)
        where = f"rank {self.rank} worker {worker} ({len(shards)} shards)"
        batcher = self._batcher(rng)
        samples = shuffle_buffer(self._cycle(shards, rng, where, batcher),
                                 self.ds.shard_args.shuffle_size, rng)
        dropped = 0
        for sample in samples:
            for groups in batcher.push(sample):
                stats = torch.tensor([batcher.held, batcher.topped_up, batcher.dropped - dropped])
                dropped = batcher.dropped
                yield self._items(groups, rng), stats

    def _batcher(self, rng):
        ds = self.ds
        if ds.sampler == "pk":
            return PKBatcher(ds.spk_per_batch, ds.utts_per_spk, ds.shard_args.buffer_size, rng)
        return PlainBatcher(ds.spk_per_batch * ds.utts_per_spk)

    def _cycle(self, shards, rng, where, batcher):
        """This worker's samples, pass after pass (reshuffled shard order from the second)."""
        for npass in itertools.count():
            order = shards if npass == 0 else [shards[i] for i in rng.permutation(len(shards))]
            speakers, count = set(), 0
            for shard in order:
                for sample in read_shard(shard, self.retries, self.retry_wait):
                    speakers.add(sample[1])
                    count += 1
                    yield sample
            self._check_pass(speakers, where)
            if npass == 0:
                batcher.fit_to(count)

    def _check_pass(self, speakers, where):
        """A pass too poor to ever fill a batch would loop forever: say so instead."""
        need = self.ds.spk_per_batch if self.ds.sampler == "pk" else 1
        if len(speakers) < need:
            raise UserError(f"{where}: the shards hold {len(speakers)} speakers, fewer than the "
                            f"P = {need} of a batch; write smaller shards or use fewer workers")
        unknown = sorted(speakers - set(self.spk2id))
        if unknown:
            raise UserError(f"{where}: speakers not in utt2spk: {unknown[:3]}")

    def _items(self, groups, rng):
        """Groups of one speaker -> [(sample, seed, speed index)], drawn as the samplers do."""
        items, crops = [], 2 if self.ds.two_crops else 1
        for group in groups:
            speed = int(rng.integers(len(self.speeds)))
            for sample in group:
                items += [(sample, int(seed), speed) for seed in rng.integers(2**31, size=crops)]
        return items

    def _materialize(self, items):
        """Items -> (B, N) float32 int16-scale waveform chunks and (B,) labels."""
        chunks, labels, decoded = [], [], {}
        for (key, spk, data, where), seed, speed in items:
            if spk not in self.spk2id:
                raise UserError(f"{where}: speaker {spk} is not in utt2spk")
            if where not in decoded:
                decoded[where] = decode_audio(data, where, self.sample_rate, warn=False)
            chunks.append(wave_chunk(decoded[where], self.ds.num_frames,
                                     np.random.default_rng(seed), self.speeds[speed],
                                     self.augmentor, self.fbank_kwargs))
            labels.append(self.spk2id[spk] + speed * self.num_spk)
        return (torch.from_numpy(np.stack(chunks).astype(np.float32)),
                torch.tensor(labels, dtype=torch.long))


class ShardLoader:
    """What run.py trains from: exactly steps_per_epoch batches (chunks, labels) per epoch and
    rank, with set_epoch(epoch, start_batch) and num_global like the batch samplers."""

    def __init__(self, stream, steps, world_size, loader_args, generator):
        self.stream, self.steps, self.num_global = stream, steps, steps * world_size
        workers = loader_args.num_workers
        self.loader = DataLoader(stream, batch_size=None, num_workers=workers,
                                 pin_memory=loader_args.pin_memory,
                                 prefetch_factor=loader_args.prefetch_factor if workers else None,
                                 generator=generator)
        self.stats = []

    def set_epoch(self, epoch, start_batch=0):
        self.stream.epoch, self.stream.start_batch = epoch, start_batch

    def __len__(self):
        return self.steps - self.stream.start_batch

    def __iter__(self):
        self.stats = []
        try:
            for chunks, labels, stats in itertools.islice(self.loader, len(self)):
                self.stats.append([anchors_with_positive(labels), *stats.tolist()])
                yield chunks, labels
        except UserError as e:
            raise UserError(_worker_message(str(e))) from None

    def summary(self):
        """One log line on the epoch's stream: positives and the batcher's buffer."""
        if not self.stats:
            return "shard stream: no batches"
        pos, fill, topped, dropped = np.array(self.stats, dtype=float).T
        return (f"shard stream: {100 * pos.mean():.1f}% of anchors had a positive; the batcher "
                f"held {fill.mean():.0f} samples at a cut on average (min {fill.min():.0f}, "
                f"buffer_size {self.stream.ds.shard_args.buffer_size}); {int(topped.sum())} "
                f"topped-up batches, {int(dropped.sum())} samples dropped")


def anchors_with_positive(labels):
    """Fraction of a batch's samples whose label appears at least twice in it."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).float().mean())


def _worker_message(message):
    """A UserError re-raised from a loader worker carries its traceback: keep the last line."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and "UserError: " in lines[-1]:
        return lines[-1].split("UserError: ", 1)[1]
    return message


def build_shard_loader(conf, data_dir, spk2id, rank, world_size, augmentor=None,
                       generator=None):
    """ShardLoader of data_dir/shard.list for this rank; steps from data_dir/utt2spk."""
    shards = read_shard_list(data_dir)
    workers = max(1, conf.dataloader_args.num_workers)
    if len(shards) < world_size * workers:
        raise UserError(f"{data_dir}/shard.list: {len(shards)} shards for {world_size} "
                        f"process(es) x {workers} loader worker(s); every worker needs one: "
                        "write smaller shards or lower dataloader_args.num_workers")
    num_utts = len(read_scp(os.path.join(data_dir, "utt2spk")))
    steps = steps_per_epoch(num_utts, conf.dataset_args.spk_per_batch
                            * conf.dataset_args.utts_per_spk, world_size)
    stream = ShardStream(shards, spk2id, conf, rank=rank, world_size=world_size,
                         augmentor=augmentor)
    return ShardLoader(stream, steps, world_size, conf.dataloader_args, generator)
