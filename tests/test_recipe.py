"""The recipe as a user runs it: stages 0-5 on a tiny mini corpus, 0-1 on a VoxCeleb tree."""

import json
import os
import subprocess

import kaldiio

from conftest import RECIPE, python_env, write_tree, write_vox_trials
from train_utils import TINY_MODEL, tiny_config
from wespeaker_mfcon.utils.file_utils import read_scp

MINI = ("--num_train_spk 6 --num_test_spk 4 --sessions_per_spk 2 --utts_per_session 3 "
        "--min_dur 1.0 --max_dur 1.5 --num_trials 80 --jobs 2")


def recipe(*args, timeout=600):
    proc = subprocess.run(["bash", "run.sh", *args], cwd=RECIPE, capture_output=True, text=True,
                          env=python_env(), timeout=timeout)
    return proc


def test_help_lists_the_options():
    proc = recipe("--help")
    assert proc.returncode == 0
    for opt in ("--stage", "--train_root", "--score_norm_method", "--gpus", "--num_avg"):
        assert opt in proc.stdout


def test_unknown_option_is_refused():
    proc = recipe("--no_such_option", "1")
    assert proc.returncode != 0 and "unknown option --no_such_option" in proc.stderr


def test_stages_0_to_5_on_the_mini_corpus(tmp_path):
    data, exp = tmp_path / "data", tmp_path / "exp"
    conf = tiny_config(str(tmp_path / "tiny.yaml"), model_args=dict(TINY_MODEL, input_dim=80),
                       num_epochs=2)
    proc = recipe("--stage", "0", "--stop_stage", "5", "--data", str(data), "--exp_dir",
                  str(exp), "--config", conf, "--mini_opts", MINI, "--num_avg", "2",
                  "--top_n", "3", "--nj", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.rindex("results of"):].splitlines()
    assert "EER(%)" in table[1] and {l.split()[1] for l in table[3:]} == {"cosine", "asnorm"}
    assert len(read_scp(str(data / "train" / "feats.scp"))) == 6 * 2 * 3
    assert (exp / "config.yaml").exists() and (exp / "models" / "avg_model.pt").exists()
    embs = dict(kaldiio.load_scp(str(exp / "embeddings" / "test" / "xvector.scp")))
    assert len(embs) == 4 * 2 * 3 and next(iter(embs.values())).shape == (16,)
    results = json.loads((exp / "scores" / "results.json").read_text())
    (name, systems), = results.items()
    assert set(systems) == {"cosine", "asnorm"}
    for metrics in systems.values():
        assert 0.0 <= metrics["eer"] <= 100.0 and 0.0 <= metrics["min_dcf_0.01"] <= 1.0 + 1e-9
    lines = (exp / "scores" / f"{name}.score").read_text().splitlines()
    assert len(lines) == 80 and lines[0].split()[3] in ("target", "nontarget")
    assert (exp / "scores" / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (exp / "models" / "avg_model.onnx").stat().st_size > 10000
    # Re-running a finished stage is safe and gives the same scores.
    again = recipe("--stage", "4", "--stop_stage", "4", "--data", str(data), "--exp_dir",
                   str(exp), "--top_n", "3")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (exp / "scores" / f"{name}.score").read_text().splitlines() == lines
    # Stage 6: large-margin fine-tuning from avg_model.pt, with its head, into EXP_lm.
    lm = tiny_config(str(tmp_path / "lm.yaml"), model_args=dict(TINY_MODEL, input_dim=80),
                     num_epochs=1, init_from="unused.pt", init_projection=True,
                     projection_args={"project_type": "am_softmax", "margin": 0.5})
    proc = recipe("--stage", "6", "--stop_stage", "6", "--data", str(data), "--exp_dir",
                  str(exp), "--lm_config", lm, "--num_avg", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "exp_lm" / "train.log").read_text()
    assert f"initialized from {exp}/models/avg_model.pt: backbone, classification head" in log
    assert (tmp_path / "exp_lm" / "models" / "avg_model.pt").exists()
    # Stage 7: calibration on a held-out set (here the test dir itself, only to drive the
    # path: extraction into EXP/embeddings/cal, calibrate.sh, the table with Cllr).
    proc = recipe("--stage", "7", "--stop_stage", "7", "--data", str(data), "--exp_dir",
                  str(exp), "--top_n", "3", "--cal_data", str(data / "test"),
                  "--cal_opts", "--num_trials 60")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(dict(kaldiio.load_scp(str(exp / "embeddings" / "cal" / "xvector.scp")))) == 24
    results = json.loads((exp / "scores" / "results.json").read_text())[name]
    assert {"cosine_plain", "asnorm_qmf"} <= set(results)
    assert 0.0 <= results["asnorm_qmf"]["cllr"] and "Cllr" in proc.stdout
    assert json.loads((exp / "calibration.json").read_text())["score"] == "raw_cosine"


def test_stages_0_1_on_a_voxceleb_tree(tmp_path):
    train, test = tmp_path / "vox2" / "dev" / "aac", tmp_path / "vox1" / "wav"
    write_tree(str(train), speakers=3, videos=2, utts=2)
    rels = write_tree(str(test), speakers=2, videos=2, utts=2, seed=1)
    trials = [tmp_path / "veri_test.txt", tmp_path / "veri_extra.txt"]
    write_vox_trials(str(trials[0]), rels)
    write_vox_trials(str(trials[1]), rels[:4])
    data = tmp_path / "data"
    proc = recipe("--stage", "0", "--stop_stage", "1", "--data", str(data), "--train_root",
                  str(train), "--test_root", str(test), "--trials",
                  f"{trials[0]} {trials[1]}", "--nj", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(data / "test" / "trials")) == ["veri_extra.kaldi", "veri_test.kaldi"]
    feats = read_scp(str(data / "train" / "feats.scp"))
    assert len(feats) == 12 and "id10000/vid0/00001" in feats
    frames = read_scp(str(data / "test" / "utt2num_frames"))
    assert all(90 <= int(n) <= 101 for n in frames.values())


def test_partial_roots_are_refused(tmp_path):
    proc = recipe("--stage", "0", "--stop_stage", "0", "--data", str(tmp_path / "d"),
                  "--train_root", str(tmp_path))
    assert proc.returncode != 0 and "give all of --train_root" in proc.stderr


def test_a_config_mistake_in_stage_2_is_one_line_not_a_launcher_traceback(tmp_path):
    from train_utils import make_feats_dir

    make_feats_dir(str(tmp_path / "data" / "train"), num_spk=4, utts=3)
    conf = tiny_config(str(tmp_path / "tiny.yaml"))
    proc = recipe("--stage", "2", "--stop_stage", "2", "--data", str(tmp_path / "data"),
                  "--exp_dir", str(tmp_path / "exp"), "--config", conf,
                  "--train_opts", "--mfcon_args.wieght 0.01")
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: override --mfcon_args.wieght: unknown key "
                                   "(did you mean 'weight'?)")
    assert not (tmp_path / "exp" / "models").exists()
