"""wespeaker_mfcon: one version (wespeaker_mfcon/__init__.py), read here.

    pip install wespeaker_mfcon              # the library, `wespeaker-mfcon embed/compare`
    pip install wespeaker_mfcon[recipe]      # + what the recipe stages need (examples/)
    python -m build                          # sdist and wheel into dist/

Lower bounds are those of the APIs the code calls (named beside each). requirements.txt pins
torch to the CPU wheel of the development machine; requirements-test.txt adds the test extra.
"""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


VERSION = re.search(r'^__version__ = "([^"]+)"$', read("wespeaker_mfcon/__init__.py"),
                    re.M).group(1)

# embed / compare with a .pt or .onnx model, training and scoring as a library
REQUIRES = [
    "torch>=2.6",            # torch.onnx.export(dynamo=True, dynamic_shapes=...): the
                             # torch.export-based exporter; torch.amp.GradScaler("cuda") (2.3)
    "numpy>=1.22.4",         # numpy.random.Generator; the floor of scipy 1.12
    "scipy>=1.12",           # scipy.optimize.isotonic_regression (min Cllr by PAV)
    "soundfile>=0.12",       # SoundFileError (0.11) and libsndfile inside the Linux wheels;
                             # tests/test_audio.py passes with 0.12.1 and 0.14.0
    "pyyaml>=5.1",           # yaml.safe_load / safe_dump (no specific API beyond them)
    "tqdm>=4.40",            # progress bars (no specific API)
    "onnxruntime>=1.18",     # IR version 10 files (the exporter's), opset 18, QDQ int8
    "usearch>=2.26",         # the speaker database's HNSW index (tested with 2.26.6)
    "silero-vad>=6.2",       # diarization VAD: the ONNX model ships in the wheel (6.2.3 tested)
    "scikit-learn>=1.3",     # diarization: k-means of long recordings (1.9.1 tested)
    "spectralcluster>=0.2.22",   # diarization: spectral clustering with an eigengap
    "threadpoolctl>=3.1",    # diarization: one BLAS thread for small matrices
    "pyannote.metrics>=3.2",     # diarization scoring: DER and JER (4.2.0 tested)
]
EXTRAS = {
    # the recipe's stages beyond the library's core: Kaldi arks, DET plots, ONNX export,
    # shards, .m4a conversion
    "recipe": [
        "kaldiio>=2.18.1",       # ark/scp (WriteHelper, load_mat); older releases import
                                 # pkg_resources, which recent setuptools no longer has
        "matplotlib>=3.5",       # DET curve and study figures
        "onnx>=1.16",            # IR version 10, metadata_props
        "onnxscript>=0.1",       # the dynamo ONNX exporter's translation (torch>=2.6)
        "webdataset>=0.2.86",    # tarfile_to_samples(select_files=...); tests/test_shards.py
                                 # passes with 0.2.86 and 1.0.2
        "imageio-ffmpeg>=0.4",   # get_ffmpeg_exe for stage 0's .m4a conversion
    ],
    "docs": ["mkdocs>=1.5", "mkdocs-material>=9.0", "mkdocstrings[python]>=0.24"],
    "test": ["pytest>=7.0", "kaldi-native-fbank>=1.18", "sherpa-onnx>=1.10", "build>=1.0"],
}

setup(
    name="wespeaker_mfcon",
    version=VERSION,
    description="MFA-Conformer speaker verification with the multi-scale feature contrastive "
                "(MFCon) loss, WeSpeaker-style recipes",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["wespeaker_mfcon", "wespeaker_mfcon.*"]),
    python_requires=">=3.9",
    install_requires=REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["wespeaker-mfcon=wespeaker_mfcon.apps.cli:entry"]},
    classifiers=["Programming Language :: Python :: 3",
                 "Topic :: Multimedia :: Sound/Audio :: Speech"],
)
