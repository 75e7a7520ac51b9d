"""Stage 3 and 5 as users run them: extract.sh from .pt and .onnx, ONNX parity, sherpa-onnx."""

import json
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from conftest import RECIPE, python_env, write_tree
from train_utils import TINY_MODEL
from wespeaker_mfcon.bin.export_onnx import main as export_main
from wespeaker_mfcon.apps.embedder import Embedder, load_model
from wespeaker_mfcon.models import build_model
from wespeaker_mfcon.utils.errors import UserError


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """An experiment dir with a config and a (randomly initialized, BN-calibrated) model."""
    root = tmp_path_factory.mktemp("exp")
    model_args = dict(TINY_MODEL, input_dim=80)
    conf = {"model": "mfa_conformer", "model_args": model_args, "mfcon_args": {"enable": True}}
    (root / "models").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.manual_seed(0)
    model = build_model("mfa_conformer", model_args)
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model(torch.randn(8, 120, 80) * 3)
    torch.save({"model": model.state_dict()}, root / "models" / "avg_model.pt")
    export_main(["--exp_dir", str(root), "--checkpoint", str(root / "models/avg_model.pt"),
                 "--output", str(root / "models/avg_model.onnx")])
    wavs = root / "wavs"
    rels = write_tree(str(wavs), speakers=2, videos=2, utts=2, seconds=1.3)
    (root / "wav.scp").write_text("".join(f"{r[:-4]} {wavs / r}\n" for r in rels))
    return root


def run_extract(exp, model, out):
    proc = subprocess.run(["bash", "extract.sh", "--model", str(model), "--wav_scp",
                           str(exp / "wav.scp"), "--out_dir", str(out), "--nj", "2"],
                          cwd=RECIPE, capture_output=True, text=True, env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {k: v for k, v in kaldiio.load_scp(str(out / "xvector.scp")).items()}


def test_onnx_matches_pytorch_at_two_lengths_and_batch_sizes(exp):
    pt, onnx = Embedder(str(exp / "models/avg_model.pt")), Embedder(str(exp / "models/avg_model.onnx"))
    rng = np.random.default_rng(1)
    for batch, length in [(1, 150), (3, 401)]:
        feats = (rng.standard_normal((batch, length, 80)) * 3 + 4).astype(np.float32)
        assert np.abs(pt.embed_feats(feats) - onnx.embed_feats(feats)).max() < 1e-4


def test_onnx_has_sherpa_metadata(exp):
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(exp / "models/avg_model.onnx")).metadata_props}
    assert meta["output_dim"] == "16" and meta["sample_rate"] == "16000"
    assert meta["framework"] == "wespeaker" and meta["normalize_samples"] == "0"
    assert meta["feature_normalize_type"] == "global-mean" and "language" in meta


def test_extract_sh_from_pt_and_onnx_agree(exp):
    from_pt = run_extract(exp, exp / "models/avg_model.pt", exp / "emb_pt")
    from_onnx = run_extract(exp, exp / "models/avg_model.onnx", exp / "emb_onnx")
    assert len(from_pt) == 8 and from_pt.keys() == from_onnx.keys()
    for key in from_pt:
        assert from_pt[key].shape == (16,)
        assert np.abs(from_pt[key] - from_onnx[key]).max() < 1e-4


def test_sherpa_onnx_loads_the_file_and_agrees(exp):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    import soundfile as sf
    config = sherpa_onnx.SpeakerEmbeddingExtractorConfig(
        model=str(exp / "models/avg_model.onnx"), num_threads=1)
    extractor = sherpa_onnx.SpeakerEmbeddingExtractor(config)
    assert extractor.dim == 16
    ours = load_model(str(exp / "models/avg_model.onnx"))
    for line in (exp / "wav.scp").read_text().splitlines()[:4]:
        path = line.split()[1]
        samples, sr = sf.read(path, dtype="float32")
        stream = extractor.create_stream()
        stream.accept_waveform(sample_rate=sr, waveform=samples)
        stream.input_finished()
        theirs = np.array(extractor.compute(stream))
        mine = ours.embed_wav(path)
        cos = theirs @ mine / (np.linalg.norm(theirs) * np.linalg.norm(mine))
        assert cos >= 0.99, (path, cos)


def test_export_fails_and_leaves_no_file_when_parity_is_broken(exp, tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(UserError, match="differs from PyTorch"):
        export_main(["--exp_dir", str(exp), "--checkpoint", str(exp / "models/avg_model.pt"),
                     "--output", str(out), "--tol", "0"])
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))


def test_cli_compare_and_embed(exp, tmp_path):
    wavs = [l.split()[1] for l in (exp / "wav.scp").read_text().splitlines()]
    cmd = [sys.executable, "-m", "wespeaker_mfcon.apps.cli"]
    same = subprocess.run(cmd + ["compare", "--model", str(exp), wavs[0], wavs[0]],
                          capture_output=True, text=True, env=python_env())
    assert same.returncode == 0 and same.stdout.strip() == "cosine 1.000000; no calibration"
    out = tmp_path / "e.npy"
    subprocess.run(cmd + ["embed", "--model", str(exp / "models/avg_model.onnx"), *wavs[:3],
                          "--out", str(out)], check=True, env=python_env())
    embs = np.load(out)
    api = load_model(str(exp))
    assert embs.shape == (3, 16)
    assert np.abs(embs[1] - api.embed_wav(wavs[1])).max() < 1e-4
    cos = float(embs[0] @ embs[1] / np.linalg.norm(embs[0]) / np.linalg.norm(embs[1]))
    verdict = api.score(wavs[0], wavs[1])
    assert verdict.cosine == pytest.approx(cos, abs=1e-4) and verdict.llr is None
    assert verdict.same is None                                  # no calibration, no threshold
    assert api.score(wavs[0], wavs[1], threshold=cos - 0.01).same is True


def test_compare_uses_the_stored_calibration(exp, tmp_path):
    """exp/E/calibration.json (stage 7): llr = w * cosine + b, decided at log((1-p)/p)."""
    import shutil

    calibrated = tmp_path / "exp"
    shutil.copytree(exp, calibrated, ignore=shutil.ignore_patterns("emb_*"))
    (calibrated / "calibration.json").write_text(json.dumps(
        {"score": "raw_cosine", "names": ["score"], "weights": [20.0], "bias": -10.0}))
    wavs = [l.split()[1] for l in (exp / "wav.scp").read_text().splitlines()]
    api = load_model(str(calibrated))
    cos = api.cosine(wavs[0], wavs[2])
    verdict = api.score(wavs[0], wavs[2], p_target=0.05)
    assert verdict.llr == pytest.approx(20.0 * cos - 10.0, abs=1e-9)
    assert verdict.threshold == pytest.approx(np.log(0.95 / 0.05))
    assert verdict.same == (20.0 * cos - 10.0 >= np.log(0.95 / 0.05))
    cmd = [sys.executable, "-m", "wespeaker_mfcon.apps.cli", "compare", "--model", str(calibrated),
           wavs[0], wavs[0]]
    out = subprocess.run(cmd, capture_output=True, text=True, env=python_env()).stdout
    assert out.strip() == ("llr 10.0000 same (cosine 1.000000; Bayes threshold 4.5951 at "
                           "p_target 0.01)")
    out = subprocess.run(cmd + ["--threshold", "10.5"], capture_output=True, text=True,
                         env=python_env()).stdout
    assert out.startswith("llr 10.0000 different") and "threshold 10.5000" in out
    (calibrated / "calibration.json").write_text(json.dumps(
        {"score": "asnorm", "names": ["score"], "weights": [1.0], "bias": 0.0}))
    with pytest.raises(UserError, match="not a calibration of the raw cosine"):
        load_model(str(calibrated))


def test_cli_bad_wav_is_one_error_line(exp, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    proc = subprocess.run([sys.executable, "-m", "wespeaker_mfcon.apps.cli", "compare", "--model",
                           str(exp), str(bad), str(bad)], capture_output=True, text=True,
                          env=python_env())
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "bad.wav" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_short_utterance_is_repeated_to_the_minimum_length(exp):
    pt, onnx = Embedder(str(exp / "models/avg_model.pt")), Embedder(str(exp / "models/avg_model.onnx"))
    short = np.random.default_rng(2).standard_normal((1, 7, 80)).astype(np.float32)
    tiled = np.tile(short, (1, 3, 1))[:, :20]
    assert np.abs(pt.embed_feats(short) - pt.embed_feats(tiled)).max() == 0
    assert np.abs(pt.embed_feats(short) - onnx.embed_feats(short)).max() < 1e-4


def test_the_sample_rate_of_the_config_reaches_the_onnx_metadata_and_the_features(tmp_path):
    """A model trained at 8 kHz: its ONNX file says so, and both backends read wavs at 8 kHz
    (the same features from the .pt's config and from the .onnx's metadata)."""
    import onnx

    from wespeaker_mfcon.apps.embedder import load_embedding_net
    from wespeaker_mfcon.export.onnx import export_checked
    from wespeaker_mfcon.frontend.fbank import FBANK_DEFAULTS

    (tmp_path / "models").mkdir()
    conf = {"model": "mfa_conformer", "model_args": dict(TINY_MODEL, input_dim=80),
            "sample_rate": 8000}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.manual_seed(0)
    torch.save({"model": build_model("mfa_conformer", conf["model_args"]).state_dict()},
               tmp_path / "models" / "avg_model.pt")
    net, loaded = load_embedding_net(str(tmp_path / "models" / "avg_model.pt"))
    assert loaded.sample_rate == 8000 and FBANK_DEFAULTS["sample_rate"] == 16000
    export_checked(net, loaded, str(tmp_path / "models" / "avg_model.onnx"))
    meta = {p.key: p.value for p in
            onnx.load(str(tmp_path / "models" / "avg_model.onnx")).metadata_props}
    assert meta["sample_rate"] == "8000"
    write_tree(str(tmp_path / "w"), speakers=1, videos=1, utts=1, seconds=1.3)
    wav = next((tmp_path / "w").rglob("*.wav"))
    from_pt = Embedder(str(tmp_path / "models" / "avg_model.pt"))
    from_onnx = Embedder(str(tmp_path / "models" / "avg_model.onnx"))
    assert from_pt.sample_rate == from_onnx.sample_rate == 8000
    feats = from_pt.wav_feats(str(wav))
    assert feats.shape == (130, 80)                    # 10 ms frames of a 1.3 s wav at any rate
    np.testing.assert_array_equal(feats, from_onnx.wav_feats(str(wav)))
