"""The project as a user installs it: `python -m build` makes an sdist and, from the sdist, a
wheel; the wheel goes into a fresh venv outside the checkout, whose `wespeaker-mfcon --version`
and `embed` (on a wav, with tests/fixtures/tiny_mfa_conformer.onnx) import nothing from the
source tree.

The fresh venv takes its dependencies (torch & co) from this test environment's site-packages
through a path entry: a path entry's .pth files are not run, so the checkout's editable-install
finder stays out, and only the wheel provides wespeaker_mfcon. The packages of the `recipe`
extra cannot be imported there: `embed` must run on the core dependencies alone.
"""

import json
import os
import re
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import numpy as np
import pytest
import soundfile as sf
from packaging.requirements import Requirement
from packaging.version import Version

import wespeaker_mfcon
from conftest import ROOT
from wespeaker_mfcon.apps.embedder import load_model

MODEL = os.path.join(ROOT, "tests", "fixtures", "tiny_mfa_conformer.onnx")
RECIPE_ONLY = ["kaldiio", "matplotlib", "onnx", "onnxscript", "webdataset", "imageio_ffmpeg"]
PACKAGE_FILES = sorted(os.path.relpath(os.path.join(d, f), ROOT)
                       for d, _, files in os.walk(os.path.join(ROOT, "wespeaker_mfcon"))
                       for f in files if f.endswith(".py"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist, wheel) built by `python -m build` (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           ROOT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sdist, = out.glob("*.tar.gz")
    wheel, = out.glob("*.whl")
    return sdist, wheel


def clean_env():
    """This environment without the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
    """A fresh venv (outside the checkout) with the wheel installed; its bin dir."""
    root = tmp_path_factory.mktemp("user")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True, timeout=120)
    python = str(root / "venv" / "bin" / "python")
    purelib = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True, env=clean_env()).strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
                         + site.getsitepackages())
    with open(os.path.join(purelib, "test_environment_deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
        f.write(f"import sys; sys.modules.update(dict.fromkeys({RECIPE_ONLY}))\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                    "--no-index", "--quiet", str(dist[1])], check=True, timeout=300,
                   env=clean_env())
    return root / "venv" / "bin"


def run_installed(venv, args, cwd):
    proc = subprocess.run([str(venv / args[0]), *args[1:]], capture_output=True, text=True,
                          cwd=cwd, env=clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_sdist_holds_what_builds_the_wheel_and_no_recipe(dist):
    sdist, wheel = dist
    top = sdist.name[:-len(".tar.gz")]
    with tarfile.open(sdist) as tar:
        names = {n[len(top) + 1:] for n in tar.getnames()}
    assert {"setup.py", "pyproject.toml", "README.md", "CHANGELOG.md"} <= names
    assert set(PACKAGE_FILES) <= names
    assert not [n for n in names if n.split("/")[0] in ("tests", "examples", "tools")]
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
    assert set(PACKAGE_FILES) <= in_wheel
    assert {n.split("/")[0] for n in in_wheel} == {
        "wespeaker_mfcon", f"wespeaker_mfcon-{wespeaker_mfcon.__version__}.dist-info"}


def test_requirement_files_match_the_declared_dependencies(dist):
    """requirements.txt = install_requires + extra recipe (same bounds; torch pinned inside
    its bound); requirements-test.txt adds packages of the test (or docs) extra."""
    with zipfile.ZipFile(dist[1]) as whl:
        meta = whl.read(f"wespeaker_mfcon-{wespeaker_mfcon.__version__}.dist-info/METADATA")
    declared = {}                                         # extra ('' = core) -> {name: spec}
    for line in meta.decode().splitlines():
        if line.startswith("Requires-Dist: "):
            req = Requirement(line.split(": ", 1)[1])
            extra = re.search(r'extra == "(\w+)"', str(req.marker or ""))
            declared.setdefault(extra.group(1) if extra else "", {})[req.name] = req.specifier
    runtime, test = read_requirements("requirements.txt"), read_requirements(
        "requirements-test.txt")
    assert runtime.keys() == declared[""].keys() | declared["recipe"].keys()
    for name, spec in runtime.items():
        bound = {**declared[""], **declared["recipe"]}[name]
        if name == "torch":
            assert Version(str(spec).lstrip("=")) in bound, (spec, bound)
        else:
            assert spec == bound, name
    extras = {**declared["test"], **declared["docs"]}
    assert test.keys() <= extras.keys()
    assert all(spec == extras[name] for name, spec in test.items() if str(spec))


def read_requirements(name):
    """{name: specifier} of a requirements file (without its -r includes)."""
    out = {}
    with open(os.path.join(ROOT, name)) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                req = Requirement(line)
                out[req.name] = req.specifier
    return out


def test_the_installed_command_says_its_version(venv, tmp_path):
    out = run_installed(venv, ["wespeaker-mfcon", "--version"], tmp_path)
    assert out.strip() == f"wespeaker-mfcon {wespeaker_mfcon.__version__}"


def test_the_installed_package_imports_nothing_from_the_source_tree(venv, tmp_path):
    code = ("import json, sys; import wespeaker_mfcon.apps.cli; print(json.dumps("
            "{m: getattr(sys.modules[m], '__file__', None) for m in list(sys.modules) "
            "if m.startswith('wespeaker_mfcon')}))")
    files = json.loads(run_installed(venv, ["python", "-c", code], tmp_path))
    assert len(files) > 10 and files["wespeaker_mfcon"].endswith("__init__.py")
    site_dir = str(venv.parent)
    assert all(f.startswith(site_dir) for f in files.values() if f), files
    code = "import importlib; importlib.import_module('webdataset')"
    proc = subprocess.run([str(venv / "python"), "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_env())
    assert "ModuleNotFoundError" in proc.stderr        # the recipe extra is out of reach
    assert not [f for f in files.values() if f and f.startswith(ROOT + os.sep)]


def test_the_installed_embed_runs_the_fixture_model(venv, tmp_path):
    """`embed` on two wavs: the library's embeddings (6 decimals printed), distinct."""
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    wavs = []
    for i, f0 in enumerate((140.0, 230.0)):
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 3 * t))
        wavs.append(str(tmp_path / f"u{i}.wav"))
        sf.write(wavs[-1], wave / 2 + 0.01 * rng.standard_normal(t.size), 16000,
                 subtype="PCM_16")
    out = run_installed(venv, ["wespeaker-mfcon", "embed", "--model", MODEL, *wavs], tmp_path)
    rows = [line.split() for line in out.splitlines()]
    assert [row[0] for row in rows] == wavs and all(len(row) == 17 for row in rows)
    embs = np.array([[float(v) for v in row[1:]] for row in rows])
    ref = np.stack([load_model(MODEL).embed_wav(w) for w in wavs])
    assert np.abs(embs - ref).max() < 2e-6
    cosine = embs[0] @ embs[1] / np.linalg.norm(embs, axis=1).prod()
    assert cosine < 0.99
