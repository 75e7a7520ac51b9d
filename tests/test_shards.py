"""data_type shard: the shard writer, webdataset reading, rank/worker split, P x K stream,
equal steps per rank, bad shards, and a tiny training run that resumes exactly."""

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import python_env, write_tree
from test_recipe import MINI, recipe
from train_utils import TINY_MODEL, tiny_config
from wespeaker_mfcon.bin.make_shards import main as make_shards_main
from wespeaker_mfcon.bin.train import main as train_main
from wespeaker_mfcon.dataset.dataset import SpeakerChunkDataset, load_spk2id
from wespeaker_mfcon.dataset.shard_writer import plan_shards, speaker_runs, write_shards
from wespeaker_mfcon.dataset.shards import (PKBatcher, ShardStream, anchors_with_positive,
                                            build_shard_loader, partition, read_shard,
                                            read_shard_list, shuffle_buffer, steps_per_epoch)
from wespeaker_mfcon.dataset.voxceleb import prepare_sets
from wespeaker_mfcon.training.loop import EpochRunner
from wespeaker_mfcon.utils.audio import load_wav
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.config import load_train_config, validate
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import read_scp


@pytest.fixture(scope="module")
def shard_data(tmp_path_factory):
    """4 speakers x 4 utterances of 1.2 s in a Kaldi data dir, and its 4 shards of 4."""
    root = tmp_path_factory.mktemp("shard")
    write_tree(str(root / "wav"), speakers=4, videos=2, utts=2, seconds=1.2)
    prepare_sets([(str(root / "wav"), str(root / "data" / "train"), ())])
    data = root / "data" / "train"
    make_shards_main(["--data", str(data), "--num_utts_per_shard", "4", "--no_progress"])
    return data


def shard_conf(**dataset_args):
    ds = {"num_frames": 40, "spk_per_batch": 2, "utts_per_spk": 2,
          "shard_args": {"shuffle_size": 3, "buffer_size": 8}}
    ds.update(dataset_args)
    return validate({"data_type": "shard", "dataset_args": ds, "seed": 5,
                     "model_args": dict(TINY_MODEL, input_dim=80)})


def test_round_trip_gives_the_samples_and_labels_of_wav_scp(shard_data):
    wavs, utt2spk = read_scp(str(shard_data / "wav.scp")), read_scp(str(shard_data / "utt2spk"))
    shards = read_shard_list(str(shard_data))
    assert len(shards) == 4 and all(s.endswith(".tar") for s in shards)
    seen = {}
    for shard in shards:
        for key, spk, data, where in read_shard(shard):
            assert key not in seen and where == f"{shard}: {key}.wav"
            seen[key] = spk
            wave, sr = sf.read(io.BytesIO(data), dtype="float32")
            assert sr == 16000 and np.array_equal(wave, load_wav(wavs[key], 16000))
    assert seen == utt2spk
    # a chunk cut from a shard sample equals the raw path's chunk of the same (utt, seed, speed)
    conf = shard_conf(speed_perturb=True)
    spk2id = load_spk2id(str(shard_data))
    stream = ShardStream(shards, spk2id, conf, rank=0, world_size=1)
    raw = SpeakerChunkDataset(str(shard_data), spk2id, num_frames=40, data_type="raw",
                              speeds=conf.speeds)
    sample = next(read_shard(shards[0]))
    chunks, labels = stream._materialize([(sample, 99, 2)])
    expected, label = raw[(raw.utts.index(sample[0]), 99, 2)]
    assert torch.equal(chunks[0], expected) and int(labels[0]) == label == spk2id[sample[1]] + 8


def test_writer_in_parallel_is_resumable_and_rewrites_nothing_finished(shard_data, tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    for name in ("wav.scp", "utt2spk"):
        (data / name).write_text((shard_data / name).read_text())
    assert write_shards(str(data), 4, nj=2, progress=False) == (4, 0)
    tars = sorted((data / "shards").glob("*.tar"))
    assert [t.read_bytes() for t in tars] == \
        [(shard_data / "shards" / t.name).read_bytes() for t in tars]    # nj does not matter
    stamps = {t.name: t.stat().st_mtime_ns for t in tars}
    tars[2].unlink()                                       # a run killed before shard 2 ...
    (data / "shards" / ".tmp_shards_000000003.tar.x.tar").write_bytes(b"half")   # ... mid-write
    assert write_shards(str(data), 4, nj=1, progress=False) == (1, 3)
    assert {t.name: t.stat().st_mtime_ns for t in tars if t != tars[2]} == \
        {n: s for n, s in stamps.items() if n != tars[2].name}
    assert (data / "shard.list").read_text().split() == [f"shards/{t.name}" for t in tars]
    assert write_shards(str(data), 8, progress=False) == (2, 0)    # other options: rewritten
    assert len(list((data / "shards").glob("shards_*.tar"))) == 2


def test_speaker_runs_keep_a_speakers_utterances_together(shard_data):
    utts = [f"s{s}u{i:02d}" for s in range(5) for i in range(11)]
    spks = {u: u[:2] for u in utts}
    order = speaker_runs(utts, spks, 4, np.random.default_rng(0))
    assert sorted(order) == utts
    runs = [[order[0]]]
    for utt in order[1:]:
        same = spks[utt] == spks[runs[-1][-1]] and len(runs[-1]) < 4
        runs[-1].append(utt) if same else runs.append([utt])
    sizes = sorted(len(r) for r in runs)              # 11 = 4 + 4 + 3 for each speaker
    assert sizes == [3] * 5 + [4] * 10
    plan = plan_shards(str(shard_data), 3, seed=1, group_size=2)
    members = [m for _, shard in plan for m in shard]
    assert sorted(m[0] for m in members) == sorted(read_scp(str(shard_data / "utt2spk")))
    assert all(members[i][1] == members[i + 1][1] for i in range(0, len(members), 2))
    assert [m[0] for _, sh in plan_shards(str(shard_data), 3, 1) for m in sh] != \
        [m[0] for m in members]                       # group_size 1: the plain shuffle


def _distinct_per_batch(order, spks, shuffle_size):
    """Mean distinct utterances in the first 100 batches of P 8 x K 4, batcher buffer 64."""
    rng = np.random.default_rng(3)
    batcher, distinct = PKBatcher(8, 4, 64, rng), []
    for sample in shuffle_buffer(((u, spks[u], b"", "") for u in order), shuffle_size, rng):
        for groups in batcher.push(sample):
            distinct.append(len({s[0] for g in groups for s in g}))
    return np.mean(distinct[:100]), len(distinct)


def test_speaker_runs_give_the_batcher_distinct_positives_where_a_shuffle_cannot():
    """200 speakers x 20 utterances, a buffer of 64 (~0.3 per speaker, as VoxCeleb2 with the
    paper's 1500): a plain shuffle tops up almost every batch with crops of the same files."""
    utts = [f"s{s:03d}u{i:02d}" for s in range(200) for i in range(20)]
    spks = {u: u[:4] for u in utts}
    rng = np.random.default_rng(0)
    plain, batches = _distinct_per_batch([utts[i] for i in rng.permutation(len(utts))], spks, 1)
    runs, batches_runs = _distinct_per_batch(speaker_runs(utts, spks, 4, rng), spks, 1)
    assert min(batches, batches_runs) >= 100
    assert plain < 16 and runs > 30                  # of 32 samples per batch


def test_rank_and_worker_partitions_are_disjoint_and_complete():
    shards = [f"s{i}.tar" for i in range(11)]
    for world in (1, 2, 3):
        for workers in (1, 2, 3):
            parts = [partition(shards, 7, 4, rank=r, world_size=world, worker=w,
                               num_workers=workers)
                     for r in range(world) for w in range(workers)]
            flat = [s for part in parts for s in part]
            assert sorted(flat) == sorted(shards) and len(flat) == len(set(flat))
    assert partition(shards, 7, 4) != partition(shards, 7, 5)       # reshuffled per epoch
    assert partition(shards, 7, 4) == partition(shards, 7, 4)


def test_pk_property_holds_on_the_stream_and_short_speakers_do_not_stall():
    rng = np.random.default_rng(0)
    counts = {"a": 30, "b": 25, "c": 1, "d": 3, "e": 1, "f": 12}   # c, e: fewer than K
    batcher = PKBatcher(3, 4, buffer_size=24, rng=rng)
    batches, topped, pushed = [], 0, 0
    for npass in range(3):
        samples = [(f"{s}{i}.{npass}", s, b"", "") for s, n in counts.items() for i in range(n)]
        for i in rng.permutation(len(samples)):
            pushed += 1
            for batch in batcher.push(samples[i]):
                batches.append(batch)
                topped += batcher.topped_up
    assert len(batches) >= 15 and topped > 0
    for batch in batches:
        speakers = [group[0][1] for group in batch]
        assert len(set(speakers)) == 3
        assert all(len(g) == 4 and {s[1] for s in g} == {g[0][1]} for g in batch)
    emitted = sum(len(set(group)) for batch in batches for group in batch)
    assert emitted + batcher.size + batcher.dropped == pushed and batcher.size <= 24
    assert anchors_with_positive(torch.tensor([4, 4, 1, 2])) == 0.5    # what the log reports


def test_every_rank_runs_the_same_steps_whatever_its_shards_hold(shard_data, tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    for name in ("wav.scp", "utt2spk"):
        (data / name).write_text((shard_data / name).read_text())
    write_shards(str(data), 6, progress=False)              # 3 shards of 6, 6, 4 utterances
    conf = shard_conf()
    spk2id = load_spk2id(str(data))
    assert steps_per_epoch(16, 4, 2) == 2 and steps_per_epoch(16, 4, 3) == 1
    for world in (2, 3):
        counts = []
        for rank in range(world):
            loader = build_shard_loader(conf, str(data), spk2id, rank=rank, world_size=world)
            loader.set_epoch(1)
            batches = list(loader)
            counts.append(len(batches))
            assert all(b[0].shape == (4, 6400) for b in batches)
            assert "100.0% of anchors had a positive" in loader.summary()
        assert counts == [steps_per_epoch(16, 4, world)] * world
    two_workers = validate(dict(conf.to_dict(), dataloader_args={"num_workers": 2}))
    with pytest.raises(UserError, match=r"3 shards for 2 process\(es\) x 2 loader worker"):
        build_shard_loader(two_workers, str(data), spk2id, rank=0, world_size=2)


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_corrupt_tar_or_member_is_one_line_naming_shard_and_key(shard_data, tmp_path):
    good = read_shard_list(str(shard_data))[0]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(open(good, "rb").read()[:30000])
    with pytest.raises(UserError, match=rf"^{cut}: corrupt tar at member id1\S+/\d{{5}}\.wav: "
                                        "unexpected end of data$") as e:
        list(read_shard(str(cut)))
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.tar"
    _tar(bad, [("id10000/v/00001.spk", b"id10000"), ("id10000/v/00001.wav", b"RIFFjunk")])
    stream = ShardStream([str(bad)], {"id10000": 0}, shard_conf(), 0, 1)
    sample = next(read_shard(str(bad)))
    with pytest.raises(UserError, match=rf"^{bad}: id10000/v/00001.wav: unreadable audio"):
        stream._materialize([(sample, 1, 0)])
    nospk = tmp_path / "nospk.tar"
    _tar(nospk, [("id10000/v/00002.wav", b"x")])
    with pytest.raises(UserError, match=rf"^{nospk}: key id10000/v/00002: no id10000/v/00002"
                                        r"\.spk member$"):
        list(read_shard(str(nospk)))


def test_an_error_in_a_loader_worker_stays_one_line(shard_data, tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    (data / "utt2spk").write_text((shard_data / "utt2spk").read_text())
    _tar(data / "bad.tar", [("id10000/vid0/00001.spk", b"id10000"),
                            ("id10000/vid0/00001.wav", b"RIFFjunk")])
    (data / "shard.list").write_text("bad.tar\n")
    spk2id = load_spk2id(str(data))
    for ds, expected in ((shard_conf().to_dict()["dataset_args"],    # P x K: 1 speaker < P
                          r"^rank 0 worker 0 \(1 shards\): the shards hold 1 speakers, fewer "
                          r"than the P = 2 of a batch; write smaller shards"),
                         (dict(sampler="random", spk_per_batch=1, utts_per_spk=1),
                          rf"^{data / 'bad.tar'}: id10000/vid0/00001.wav: unreadable audio")):
        conf = validate({"data_type": "shard", "dataset_args": ds,
                         "dataloader_args": {"num_workers": 1}})
        with pytest.raises(UserError, match=expected) as e:
            list(build_shard_loader(conf, str(data), spk2id, rank=0, world_size=1))
        assert "\n" not in str(e.value)


def test_shard_config_keys_are_checked():
    assert shard_conf().dataset_args.shard_args.buffer_size == 8
    assert validate({"data_type": "shard"}).dataset_args.shard_args.shuffle_size == 1000
    with pytest.raises(UserError, match="dataset_args.shard_args: needs data_type shard"):
        validate({"dataset_args": {"shard_args": {}}})
    with pytest.raises(UserError, match="shard_args.buffer_size: must be >= 8"):
        shard_conf(shard_args={"buffer_size": 7})
    with pytest.raises(UserError, match="shard_args.bufer_size: unknown key .*buffer_size"):
        shard_conf(shard_args={"bufer_size": 7})


def test_tiny_shard_training_runs_and_resumes_mid_epoch_exactly(shard_data, tmp_path,
                                                                 monkeypatch):
    conf = tiny_config(str(tmp_path / "c.yaml"), data_type="shard", save_interval_steps=3,
                       model_args=dict(TINY_MODEL, input_dim=80))
    c = yaml.safe_load(open(conf))
    c["dataset_args"].update(spk_per_batch=2, utts_per_spk=2, speed_perturb=True,
                             shard_args={"shuffle_size": 4, "buffer_size": 8})
    yaml.safe_dump(c, open(conf, "w"))

    def run(exp):
        train_main(["--config", conf, "--exp_dir", str(exp), "--train_data", str(shard_data)])
    run(tmp_path / "straight")
    log = (tmp_path / "straight/train.log").read_text()
    assert "4 steps/epoch" in log and "100.0% of anchors had a positive" in log
    real_step, calls = EpochRunner.step, []

    def dying_step(self, *args):
        if len(calls) == 6:   # killed during step 7 of 8 (epoch 2, after its batch 2)
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(self, *args)
    monkeypatch.setattr(EpochRunner, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    monkeypatch.setattr(EpochRunner, "step", real_step)
    run(tmp_path / "killed")
    a = load_checkpoint(str(tmp_path / "straight/models/model_2.pt"))
    b = load_checkpoint(str(tmp_path / "killed/models/model_2.pt"))
    assert a["step"] == b["step"] == 8
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    saved = load_train_config(str(tmp_path / "straight/config.yaml"))
    assert saved.data_type == "shard" and saved.dataset_args.shard_args.buffer_size == 8
    assert os.path.isfile(tmp_path / "killed/models/model_1.pt")


def test_recipe_with_data_type_shard_runs_end_to_end(tmp_path):
    data, exp = tmp_path / "data", tmp_path / "exp"
    conf = tiny_config(str(tmp_path / "tiny.yaml"), data_type="shard", num_epochs=1,
                       model_args=dict(TINY_MODEL, input_dim=80))
    args = ["--data", str(data), "--exp_dir", str(exp), "--config", conf, "--mini_opts", MINI,
            "--num_avg", "1", "--top_n", "3", "--nj", "2", "--data_type", "shard"]
    proc = recipe("--stage", "0", "--stop_stage", "4", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (data / "train" / "shard.list").read_text() == "shards/shards_000000000.tar\n"
    assert "100.0% of anchors had a positive" in (exp / "train.log").read_text()
    assert (exp / "scores" / "results.json").exists()
    again = recipe("--stage", "1", "--stop_stage", "1", *args)
    assert again.returncode == 0 and "(0 written, 1 kept" in again.stderr


def test_two_ranks_with_unequal_shards_train_the_same_steps_in_sync(shard_data, tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    for name in ("wav.scp", "utt2spk"):
        (data / name).write_text((shard_data / name).read_text())
    write_shards(str(data), 6, progress=False)     # 3 shards: one rank reads 2, the other 1
    conf = tiny_config(str(tmp_path / "c.yaml"), data_type="shard", num_epochs=2,
                       model_args=dict(TINY_MODEL, input_dim=80))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "wespeaker_mfcon.bin.train", "--config", conf, "--exp_dir", str(tmp_path / "e"),
           "--train_data", str(data)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (tmp_path / "e" / "train.log").read_text()
    assert log.count("ranks in sync") == 2 and "1 steps/epoch on 2 process(es)" in log
    assert load_checkpoint(str(tmp_path / "e/models/model_2.pt"))["step"] == 2
