"""The typed training config: every bad key, type and range is one line naming it."""

import glob
import os
import subprocess
import sys

import pytest
import yaml

from conftest import python_env
from train_utils import make_feats_dir, tiny_config
from wespeaker_mfcon.config import (TrainConfig, load_train_config, parse_overrides,
                                          save_config)
from wespeaker_mfcon.utils.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF_DIR = os.path.join(ROOT, "examples", "voxceleb", "v2_mfcon", "conf")
SMALL = os.path.join(CONF_DIR, "mfa_conformer_mfcon_small.yaml")


def write_yaml(path, data):
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return str(path)


def error_of(path, *override_tokens):
    with pytest.raises(UserError) as e:
        load_train_config(path, parse_overrides(list(override_tokens)))
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("yaml_text, key, suggestion", [
    ("dataset_args: {spk_per_bach: 16}", "dataset_args.spk_per_bach", "spk_per_batch"),
    ("mfcon_args: {wieght: 0.1}", "mfcon_args.wieght", "weight"),
    ("dataset_args: {spec_aug_args: {prb: 0.5}}", "dataset_args.spec_aug_args.prb", "prob"),
    ("model_args: {num_blcks: 3}", "model_args.num_blcks", "num_blocks"),
    ("optimizer_args: {weight_decy: 0.1}", "optimizer_args.weight_decy", "weight_decay"),
    ("num_epoch: 3", "num_epoch", "num_epochs"),
])
def test_unknown_key_in_yaml_names_file_key_and_suggestion(tmp_path, yaml_text, key, suggestion):
    path = str(tmp_path / "bad.yaml")
    with open(path, "w") as f:
        f.write(yaml_text + "\n")
    assert error_of(path) == f"{path}: {key}: unknown key (did you mean '{suggestion}'?)"


@pytest.mark.parametrize("override, suggestion", [
    ("mfcon_args.wieght", "weight"),
    ("dataset_args.utts_per_sp", "utts_per_spk"),
    ("dataset_args.aug_args.aug_prb", "aug_prob"),
    ("projection_args.scael", "scale"),
    ("model_args.output_sise", "output_size"),
])
def test_unknown_nested_override_names_the_override_and_suggests(override, suggestion):
    message = error_of(SMALL, f"--{override}", "1")
    assert message == f"override --{override}: unknown key (did you mean '{suggestion}'?)"


def test_override_below_a_plain_value_is_an_error():
    assert "seed is not a mapping" in error_of(SMALL, "--seed.x", "1")


@pytest.mark.parametrize("tokens, key, expected", [
    (["--mfcon_args.weight", "abc"], "mfcon_args.weight", "must be float, got str 'abc'"),
    (["--num_epochs", "2.5"], "num_epochs", "must be int, got float 2.5"),
    (["--dataset_args.two_crops", "1"], "dataset_args.two_crops", "must be bool, got int 1"),
    (["--mfcon_args.blocks", "3"], "mfcon_args.blocks", "must be a list, got int 3"),
    (["--dataset_args", "[1]"], "dataset_args", "must be a mapping"),
    (["--dataset_args.sampler", "pkk"], "dataset_args.sampler",
     "must be one of pk, random; got 'pkk' (did you mean 'pk'?)"),
])
def test_wrong_type_names_the_key(tokens, key, expected):
    message = error_of(SMALL, *tokens)
    assert message.startswith(f"override --{key}: ") and expected in message


@pytest.mark.parametrize("tokens, key, expected", [
    (["--mfcon_args.weight", "-0.5"], "mfcon_args.weight", "must be >= 0.0"),
    (["--mfcon_args.temperature", "0"], "mfcon_args.temperature", "must be > 0.0"),
    (["--dataset_args.utts_per_spk", "1"], "dataset_args.utts_per_spk", "needs K >= 2"),
    (["--mfcon_args.blocks", "[0,7]"], "mfcon_args.blocks", "[7] out of range for 4 blocks"),
    (["--mfcon_args.block_weights", "[1,1]"], "mfcon_args.block_weights",
     "2 weights for 4 chosen blocks"),
    (["--dataset_args.spec_aug_args.prob", "1.5"], "dataset_args.spec_aug_args.prob",
     "must be in [0.0, 1.0]"),
    (["--optimizer_args.lr", "0"], "optimizer_args.lr", "must be > 0.0"),
    (["--scheduler_args.gamma", "0"], "scheduler_args.gamma", "must be in (0.0, 1.0]"),
    (["--model_args.attention_heads", "5"], "model_args.attention_heads",
     "5 does not divide output_size 96"),
    (["--model_args.cnn_module_kernel", "8"], "model_args.cnn_module_kernel", "must be odd"),
    (["--num_epochs", "0"], "num_epochs", "must be >= 1"),
    (["--dataset_args.speed_perturb", "true"], "dataset_args.speed_perturb",
     "needs data_type raw"),
])
def test_value_out_of_range_names_the_key(tokens, key, expected):
    message = error_of(SMALL, *tokens)
    assert message.startswith(f"override --{tokens[0][2:]}: ") and key in message
    assert expected in message


def test_cross_key_error_from_a_file_names_the_file(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"mfcon_args": {"enable": True, "weight": 1.0},
                                            "dataset_args": {"utts_per_spk": 1}})
    assert error_of(path).startswith(f"{path}: dataset_args.utts_per_spk: MFCon with sampler pk")
    # two crops of one utterance are positives of each other: then K = 1 is fine
    load_train_config(path, {"dataset_args.two_crops": True})


def test_more_speakers_per_batch_than_the_training_data_is_an_error(tmp_path):
    data = make_feats_dir(str(tmp_path / "train"), num_spk=4, utts=3)
    conf = tiny_config(str(tmp_path / "c.yaml"))
    proc = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.bin.train", "--config", conf,
                           "--exp_dir", str(tmp_path / "exp"), "--train_data", data,
                           "--dataset_args.spk_per_batch", "5"],
                          capture_output=True, text=True, env=python_env(), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: {data}/utt2spk: dataset_args.spk_per_batch: P = 5 "
                                   "is larger than the 4 speakers of the training data")


def test_misspelt_override_stops_train_with_one_line(tmp_path):
    data = make_feats_dir(str(tmp_path / "train"), num_spk=4, utts=3)
    conf = tiny_config(str(tmp_path / "c.yaml"))
    proc = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.bin.train", "--config", conf,
                           "--exp_dir", str(tmp_path / "exp"), "--train_data", data,
                           "--mfcon_args.wieght", "0.01"],
                          capture_output=True, text=True, env=python_env(), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: override --mfcon_args.wieght: unknown key "
                                   "(did you mean 'weight'?)")
    assert not os.path.exists(tmp_path / "exp" / "models")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONF_DIR, "*.yaml"))))
def test_every_shipped_config_loads_saves_complete_and_loads_back(path, tmp_path):
    conf = load_train_config(path)
    saved = str(tmp_path / "config.yaml")
    save_config(conf, saved)
    assert load_train_config(saved) == conf
    with open(saved) as f:
        data = yaml.safe_load(f)
    # complete: every schema key is written, model arguments included
    assert set(data) == set(TrainConfig.__dataclass_fields__)
    assert "dropout_rate" in data["model_args"] or "dilations" in data["model_args"]


def test_derived_values_come_from_one_place(tmp_path):
    raw = load_train_config(os.path.join(CONF_DIR, "mfa_conformer_mfcon_aug_small.yaml"))
    assert raw.speeds == [1.0, 0.9, 1.1] and raw.classes_for(40) == 120
    assert raw.feat_dim == 80 and raw.num_blocks == 4 and raw.batch_size == 64
    no_sp = load_train_config(os.path.join(CONF_DIR, "mfa_conformer_mfcon_aug_small.yaml"),
                              {"dataset_args.speed_perturb": False})
    assert no_sp.speeds == [1.0] and no_sp.classes_for(40) == 40
    ecapa = load_train_config(os.path.join(CONF_DIR, "ecapa_tdnn_mfcon_small.yaml"))
    assert ecapa.num_blocks == 3


def test_wespeaker_key_names_are_accepted(tmp_path):
    path = write_yaml(tmp_path / "ws.yaml", {
        "dataset_args": {"num_frms": 150}, "model_args": {"feat_dim": 40, "pooling_func": "TSTP"},
        "projection_args": {"project_type": "add_margin", "scale": 32.0, "margin": 0.2},
        "margin_update": {"initial_margin": 0.0, "final_margin": 0.2, "increase_start_epoch": 2,
                          "fix_start_epoch": 4, "increase_type": "exp"},
        "enable_amp": True})
    conf = load_train_config(path)
    assert conf.dataset_args.num_frames == 150 and conf.feat_dim == 40
    assert conf.model_args.pooling == "TSTP" and conf.amp == "bf16"
    assert conf.margin_scheduler_args.fix_start_epoch == 4
    both = write_yaml(tmp_path / "both.yaml", {"dataset_args": {"num_frms": 150,
                                                                "num_frames": 200}})
    assert "num_frms: given together with its new name 'num_frames'" in error_of(both)


def test_an_older_saved_config_of_this_repo_loads(tmp_path):
    """exp/NAME/config.yaml as written before the schema: partial, with num_classes."""
    old = {"seed": 42, "num_epochs": 12, "data_type": "feat",
           "dataset_args": {"num_frames": 200, "sampler": "pk", "spk_per_batch": 16,
                            "utts_per_spk": 4},
           "model": "mfa_conformer", "model_args": {"input_dim": 80, "num_blocks": 4},
           "mfcon_args": {"enable": True, "weight": 3.0}, "amp": "none",
           "num_classes": 40, "train_data": "/x/data/train"}
    conf = load_train_config(write_yaml(tmp_path / "old.yaml", old))
    assert conf.num_classes == 40 and conf.mfcon_args.weight == 3.0
    assert conf.model_args.output_size == 256          # the schema default


def test_a_config_saved_before_typed_fbank_args_loads(tmp_path):
    """exp/NAME/config.yaml of the version with untyped fbank_args: its sample_rate moves to
    the top, use_energy false and energy_floor 0.0 are dropped; an energy column is refused."""
    fbank = {"sample_rate": 16000, "frame_length_ms": 25.0, "energy_floor": 0.0,
             "use_energy": False, "snip_edges": False}
    conf = load_train_config(write_yaml(tmp_path / "saved.yaml", {"fbank_args": fbank}))
    assert conf.sample_rate == 16000 and conf.fbank_args.frame_length_ms == 25.0
    assert error_of(write_yaml(tmp_path / "energy.yaml", {"fbank_args": {"use_energy": True}})) \
        .endswith("fbank_args.use_energy: only False is supported (the models take log-mel bins "
                  "without an energy column)")


def test_missing_and_malformed_files_are_one_line(tmp_path):
    assert error_of(str(tmp_path / "nope.yaml")).endswith("nope.yaml: no such config file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n  b")
    assert "bad.yaml: invalid YAML" in error_of(str(bad))


def test_the_sample_rate_is_one_key_and_older_places_load_into_it(tmp_path):
    """fbank_args.sample_rate (older configs), aug_args.sample_rate and WeSpeaker's
    dataset_args.resample_rate are read into sample_rate; disagreeing places are an error."""
    old = write_yaml(tmp_path / "old.yaml", {"fbank_args": {"sample_rate": 8000,
                                                            "frame_shift_ms": 10.0}})
    conf = load_train_config(old)
    assert conf.sample_rate == 8000 and conf.fbank_kwargs()["sample_rate"] == 8000
    assert "sample_rate" not in conf.to_dict()["fbank_args"]
    ws = write_yaml(tmp_path / "ws.yaml", {"dataset_args": {"resample_rate": 22050}})
    assert load_train_config(ws).sample_rate == 22050
    assert load_train_config(str(tmp_path / "old.yaml")).to_dict()["sample_rate"] == 8000
    clash = write_yaml(tmp_path / "clash.yaml", {
        "sample_rate": 16000, "data_type": "raw",
        "dataset_args": {"aug_args": {"sample_rate": 8000}}})
    assert error_of(clash).endswith("clash.yaml: dataset_args.aug_args.sample_rate: 8000 "
                                    "differs from sample_rate 16000; give the sample rate "
                                    "once, as sample_rate")
    assert "sample_rate: must be >= 1000, got 80" in error_of(
        write_yaml(tmp_path / "low.yaml", {"sample_rate": 80}))


def test_model_args_are_the_chosen_model_s_typed_schema(tmp_path):
    from wespeaker_mfcon.config.schema import ECAPATDNNArgs, MFAConformerArgs

    ecapa = load_train_config(write_yaml(tmp_path / "e.yaml", {
        "model": "ecapa_tdnn", "model_args": {"channels": 64, "dilations": [2, 3]}}))
    assert isinstance(ecapa.model_args, ECAPATDNNArgs) and ecapa.num_blocks == 2
    assert ecapa.model_args.mfa_channels == 1536                   # the schema default
    conformer = load_train_config(write_yaml(tmp_path / "m.yaml", {}))
    assert isinstance(conformer.model_args, MFAConformerArgs) and conformer.num_blocks == 6
    assert "model_args.dilations: unknown key" in error_of(
        write_yaml(tmp_path / "x.yaml", {"model_args": {"dilations": [2]}}))
    assert "model_args.subsampling: must be one of 2, 4; got 3" in error_of(
        write_yaml(tmp_path / "s.yaml", {"model_args": {"subsampling": 3}}))
