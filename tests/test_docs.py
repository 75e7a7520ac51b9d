"""The docs site builds with `mkdocs build --strict`: a broken link or anchor, a nav entry
without a page, a page left out of the nav or an API reference to a name that does not exist
fails the build (mkdocs.yml sets the validation to warn, which --strict makes fatal)."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("mkdocs")


def _build(config, site):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(config), "--site-dir", str(site)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_the_docs_build_strictly(tmp_path):
    proc = _build(os.path.join(REPO, "mkdocs.yml"), tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    reference = (tmp_path / "site" / "config_reference" / "index.html").read_text()
    assert 'id="mfcon_args"' in reference and "spk_per_batch" in reference
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "load_model" in api and "embed_wav" in api          # mkdocstrings rendered the API


def test_a_broken_anchor_or_page_fails_the_build(tmp_path):
    shutil.copytree(os.path.join(REPO, "docs"), tmp_path / "docs")
    shutil.copy(os.path.join(REPO, "mkdocs.yml"), tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "index.md", "a", encoding="utf-8") as f:
        f.write("\n[a](training.md#no-such-section) [b](no_such_page.md)\n")
    proc = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "does not contain an anchor '#no-such-section'" in proc.stderr
    assert "no_such_page.md" in proc.stderr
