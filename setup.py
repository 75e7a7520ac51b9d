from setuptools import find_packages, setup

setup(
    name="wespeaker_mfcon",
    version="0.1.0",
    description="MFA-Conformer speaker verification with the multi-scale feature contrastive "
                "(MFCon) loss, WeSpeaker-style recipes",
    packages=find_packages(include=["wespeaker_mfcon", "wespeaker_mfcon.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "numpy",
        "scipy",
        "kaldiio",
        "soundfile",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "webdataset",
        "imageio-ffmpeg",
        "silero-vad",
        "scikit-learn",
        "spectralcluster",
        "threadpoolctl",
        "pyannote.metrics",
    ],
    extras_require={"test": ["pytest", "kaldi-native-fbank", "sherpa-onnx"]},
    entry_points={"console_scripts": ["wespeaker-mfcon=wespeaker_mfcon.apps.cli:entry"]},
)
