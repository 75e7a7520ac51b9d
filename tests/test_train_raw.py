"""data_type: raw — wav chunks, augmentation, speed perturbation, fbank in the training loop."""

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import write_tree
from train_utils import TINY_MODEL, run_train, tiny_config
from wespeaker_mfcon.dataset.fbank_writer import write_fbank
from wespeaker_mfcon.dataset.dataset import SpeakerChunkDataset, load_spk2id
from wespeaker_mfcon.synth.noise import generate_noise_set
from wespeaker_mfcon.dataset.processing import chunk_samples
from wespeaker_mfcon.dataset.voxceleb import prepare_sets
from wespeaker_mfcon.frontend.fbank import Fbank
from wespeaker_mfcon.training.loop import prepare_batch
from wespeaker_mfcon.utils.checkpoint import load_checkpoint
from wespeaker_mfcon.utils.file_utils import read_scp


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    write_tree(str(root / "wav"), speakers=4, videos=2, utts=2, seconds=1.2)
    prepare_sets([(str(root / "wav"), str(root / "data" / "train"), ())])
    generate_noise_set(str(root / "data" / "aug"), num_per_type=1, num_rirs=2, duration=2.0)
    return root / "data" / "train"


def test_raw_chunk_gives_the_same_fbank_as_stage_1(raw_data, tmp_path):
    spk2id = load_spk2id(str(raw_data))
    dataset = SpeakerChunkDataset(str(raw_data), spk2id, num_frames=60, data_type="raw")
    wave, label = dataset[(3, 1234, 0)]
    assert wave.shape == (chunk_samples(60),) and label == dataset.labels[3]
    # The same chunk through stage 1 (compute_fbank on a wav file) ...
    sf.write(tmp_path / "chunk.wav", wave.numpy() / 32768.0, 16000, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(f"chunk {tmp_path / 'chunk.wav'}\n")
    write_fbank(str(tmp_path / "wav.scp"), str(tmp_path / "f.ark"), str(tmp_path / "f.scp"),
                str(tmp_path / "n"), progress=False)
    import kaldiio
    stage1 = kaldiio.load_mat(read_scp(str(tmp_path / "f.scp"))["chunk"])
    # ... and through the training loop's on-the-fly front end (no dither in eval).
    online = Fbank().eval()(wave[None])[0].numpy()
    assert stage1.shape == online.shape == (60, 80)
    assert np.abs(stage1 - online).max() < 1e-3
    batch = prepare_batch(wave[None], Fbank().eval(), None, torch.device("cpu"))
    assert torch.allclose(batch[0], torch.from_numpy(online - online.mean(0)), atol=1e-4)


def test_speed_perturbed_samples_are_new_speakers(raw_data):
    spk2id = load_spk2id(str(raw_data))
    dataset = SpeakerChunkDataset(str(raw_data), spk2id, num_frames=60, data_type="raw",
                                  speeds=[1.0, 0.9, 1.1])
    base, slow, fast = (dataset[(0, 7, sp)] for sp in range(3))
    assert base[1] == dataset.labels[0]
    assert slow[1] == base[1] + 4 and fast[1] == base[1] + 8
    assert slow[0].shape == fast[0].shape == base[0].shape
    assert not torch.equal(slow[0], base[0])


def test_raw_training_with_augmentation_runs_through_train(raw_data, tmp_path):
    aug = {"aug_prob": 1.0, "noise_scp": "{data}/aug/noise.scp", "rir_scp": "{data}/aug/rir.scp"}
    conf = tiny_config(str(tmp_path / "raw.yaml"), data_type="raw",
                       model_args=dict(TINY_MODEL, input_dim=80), num_epochs=1)
    with open(conf) as f:
        c = yaml.safe_load(f)
    c["dataset_args"].update(speed_perturb=True, speeds=[1.0, 0.9, 1.1], aug_args=aug,
                             spk_per_batch=2, utts_per_spk=2)
    with open(conf, "w") as f:
        yaml.safe_dump(c, f)
    exp = tmp_path / "exp"
    run_train(conf, exp, raw_data)
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["num_classes"] == 4 * 3
    state = load_checkpoint(str(exp / "models" / "model_1.pt"))
    assert state["projection"]["weight"].shape[0] == 12 and state["step"] == 16 // 4
