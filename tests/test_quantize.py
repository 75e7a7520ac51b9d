"""Stage 5 --quantize int8: the int8 model against the fp32 one, its interface, its errors."""

import subprocess
import sys

import kaldiio
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from conftest import RECIPE, python_env, write_tree
from train_utils import TINY_MODEL
from wespeaker_mfcon.analysis.onnx_profile import op_profile, profile_table
from wespeaker_mfcon.apps.embedder import load_model
from wespeaker_mfcon.export.onnx import export_experiment
from wespeaker_mfcon.export.quantize import calibration_feats, quantize_int8, select_nodes
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.utils.errors import UserError


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """Stage 5 of run.sh with --quantize int8 on a tiny (BN-calibrated) model; the training
    data dir holds only a wav.scp (calibration computes its fbank)."""
    root = tmp_path_factory.mktemp("q")
    exp_dir, train = root / "exp", root / "data" / "train"
    (exp_dir / "models").mkdir(parents=True)
    train.mkdir(parents=True)
    model_args = dict(TINY_MODEL, input_dim=80)
    conf = {"model": "mfa_conformer", "model_args": model_args, "mfcon_args": {"enable": True}}
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.manual_seed(0)
    model = build_model("mfa_conformer", model_args).train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        model(torch.randn(8, 120, 80) * 3)
    torch.save({"model": model.state_dict()}, exp_dir / "models" / "avg_model.pt")
    rels = write_tree(str(root / "wavs"), speakers=3, videos=2, utts=2, seconds=1.3)
    (train / "wav.scp").write_text("".join(f"{r[:-4]} {root / 'wavs' / r}\n" for r in rels))
    proc = subprocess.run(["bash", "run.sh", "--stage", "5", "--stop_stage", "5", "--quantize",
                           "int8", "--exp_dir", str(exp_dir), "--data", str(root / "data")],
                          cwd=RECIPE, capture_output=True, text=True, env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return exp_dir


def io_signature(path):
    model = onnx.load(str(path), load_external_data=False)
    return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in list(model.graph.input) + list(model.graph.output)]


def embed(path, feats):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["embs"], {"feats": feats})[0]


def test_int8_file_keeps_the_interface_and_is_quantized(exp):
    fp32, int8 = exp / "models/avg_model.onnx", exp / "models/avg_model_int8.onnx"
    assert io_signature(int8) == io_signature(fp32) == [("feats", ["B", "T", 80]),
                                                         ("embs", ["B", 16])]
    graph = onnx.load(str(int8)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 2 * TINY_MODEL["num_blocks"] * 4   # FFNs, attention, convs
    meta = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert meta["output_dim"] == "16" and meta["framework"] == "wespeaker"
    assert meta["quantization"].startswith("int8")


def test_int8_embeddings_close_to_fp32_at_any_length_and_batch(exp):
    rng = np.random.default_rng(3)
    for batch, length in [(1, 90), (2, 401)]:
        feats = (rng.standard_normal((batch, length, 80)) * 3 + 5).astype(np.float32)
        a = embed(exp / "models/avg_model.onnx", feats)
        b = embed(exp / "models/avg_model_int8.onnx", feats)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() > 0.99, cos
        assert np.abs(a - b).max() > 1e-6          # it is not the fp32 graph


def test_only_weight_matmuls_and_pointwise_convs_are_selected(exp):
    model = onnx.load(str(exp / "models/avg_model.onnx"))
    weights = {i.name: i for i in model.graph.initializer}
    chosen = set(select_nodes(model))
    for node in model.graph.node:
        if node.op_type == "MatMul":
            assert (node.name in chosen) == (node.input[1] in weights), node.name
        elif node.op_type == "Conv":
            kernel = weights[node.input[1]].dims[2:]
            assert (node.name in chosen) == all(k == 1 for k in kernel), node.name
        else:
            assert node.name not in chosen


def test_sherpa_onnx_loads_the_int8_file_and_agrees_with_extract_sh(exp, tmp_path):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    import soundfile as sf
    int8 = exp / "models/avg_model_int8.onnx"
    wav_scp = exp.parent / "data/train/wav.scp"
    proc = subprocess.run(["bash", "extract.sh", "--model", str(int8), "--wav_scp", str(wav_scp),
                           "--out_dir", str(tmp_path / "emb"), "--nj", "1"],
                          cwd=RECIPE, capture_output=True, text=True, env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = dict(kaldiio.load_scp(str(tmp_path / "emb/xvector.scp")))
    extractor = sherpa_onnx.SpeakerEmbeddingExtractor(
        sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(int8), num_threads=1))
    assert extractor.dim == 16
    for line in wav_scp.read_text().splitlines()[:4]:
        utt, path = line.split()
        samples, sr = sf.read(path, dtype="float32")
        stream = extractor.create_stream()
        stream.accept_waveform(sample_rate=sr, waveform=samples)
        stream.input_finished()
        theirs, mine = np.array(extractor.compute(stream)), ours[utt]
        assert theirs @ mine / (np.linalg.norm(theirs) * np.linalg.norm(mine)) >= 0.99, utt


def test_quantize_int8_without_calibration_data_is_one_line(exp):
    out = exp / "x.onnx"
    stop = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.bin.export_onnx", "--exp_dir",
                           str(exp), "--checkpoint", str(exp / "models/avg_model.pt"),
                           "--output", str(out), "--quantize", "int8"],
                          capture_output=True, text=True, env=python_env())
    assert stop.returncode == 1 and not out.exists()
    assert stop.stderr.strip().splitlines() == [
        "error: --quantize int8 needs --calib_data (a training data dir with feats.scp or "
        "wav.scp)"]


def test_bad_calibration_dirs_fail_before_the_export(exp, tmp_path):
    def export(calib_data):
        export_experiment(str(exp), str(exp / "models/avg_model.pt"), str(tmp_path / "m.onnx"),
                          quantize="int8", calib_data=calib_data)
    with pytest.raises(UserError, match=r"no feats.scp or wav.scp"):
        export(str(tmp_path))
    bad = tmp_path / "bad"
    bad.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{bad}/f.ark,{bad}/feats.scp") as writer:
        for i in range(3):
            writer(f"u{i}", np.zeros((50, 40), np.float32))
    with pytest.raises(UserError, match=r"feats.scp: u\d: features of shape \(50, 40\)"):
        export(str(bad))
    assert not list(tmp_path.glob("*.onnx"))


def test_calibration_reads_feats_scp_and_holds_out_the_check_set(tmp_path):
    rng = np.random.default_rng(0)
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/feats.scp") as writer:
        for i in range(12):
            writer(f"u{i:02d}", rng.standard_normal((30 + 10 * i, 80)).astype(np.float32) + i)
    calib, check = calibration_feats(str(tmp_path), num_utts=6, max_frames=64, held_out=3)
    assert len(calib) == 6 and len(check) == 3
    assert all(f.shape[0] == 1 and 30 <= f.shape[1] <= 64 for f in calib)
    offsets = [round(float(f.mean())) for f in calib + check]     # = the utterance index
    assert len(set(offsets)) == 9                                  # nine distinct utterances


def test_a_failed_check_leaves_no_int8_file(exp, tmp_path):
    feats = [(np.random.default_rng(0).standard_normal((1, 100, 80)) * 3).astype(np.float32)]
    out = tmp_path / "m_int8.onnx"
    with pytest.raises(UserError, match="int8 embeddings differ from fp32"):
        quantize_int8(str(exp / "models/avg_model.onnx"), str(out), feats, feats,
                      min_cosine=1.01)
    assert not list(tmp_path.iterdir())


def test_load_model_runs_the_int8_file(exp):
    api = load_model(str(exp / "models/avg_model_int8.onnx"))
    wav = (exp.parent / "data/train/wav.scp").read_text().split()[1]
    assert api.embed_wav(wav).shape == (16,)


def test_ort_runs_every_quantized_weight_matmul_as_one_int8_kernel(exp):
    """The speed-up's mechanism: each DQ -> MatMul (float output) becomes one
    MatMulIntegerToFloat; no float weight MatMul and no QLinearMatMul is left."""
    feats = (np.random.default_rng(4).standard_normal((1, 300, 80)) * 3).astype(np.float32)
    fp32 = op_profile(str(exp / "models/avg_model.onnx"), feats, runs=1)
    int8 = op_profile(str(exp / "models/avg_model_int8.onnx"), feats, runs=1)
    assert int8["MatMulIntegerToFloat"][1] == fp32["MatMul (weights)"][1] > 0
    assert "MatMul (weights)" not in int8 and "QLinearMatMul" not in int8
    assert int8["MatMul (activations)"][1] == fp32["MatMul (activations)"][1]
    table = profile_table(["fp32", "int8"], [fp32, int8])
    assert "| MatMulIntegerToFloat | - | - | - |" in table and "**total**" in table
