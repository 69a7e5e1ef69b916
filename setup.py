"""ddnn_tf: Distributed Deep Neural Networks over the cloud, the edge and end devices."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="ddnn_tf",
    version="0.1.0",
    description=(
        "Distributed Deep Neural Networks (cloud, edge, end devices) with Larq binarized "
        "layers, per-tier TFLite binaries and a hierarchy orchestrator."
    ),
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ddnn_tf", "ddnn_tf.*"]),
    package_data={"ddnn_tf.data": ["*.json"], "ddnn_tf.mcu": ["firmware/*"]},
    install_requires=[
        # Larq needs Keras 2: tf-keras of TensorFlow's minor version, numpy < 2.
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "larq==0.14.0",
        "larq-compute-engine==0.16.0",
        "tensorflow-model-optimization==0.8.1",
        "ai-edge-litert==2.3.0",
        "numpy>=1.23,<2",
        "fire>=0.5",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "jsonschema>=4.20",
        # Tiers as network services (python -m ddnn_tf.serve / deploy).
        "fastapi==0.163.2",
        "uvicorn==0.54.0",
        "httpx==0.28.1",
        "qrcode==8.2",
        # serve demo --https: a self-signed certificate for the phone on the LAN.
        "cryptography>=42",
    ],
    extras_require={
        # The cloud tier on Ray Serve (serve cloud --engine ray).
        "ray": ["ray[serve]==2.60.0"],
        # Device tiers in TensorFlow Lite Micro (python -m ddnn_tf.mcu --board tflm).
        "mcu": ["tflite-micro==0.dev20261023182759"],
        "dev": [
            "tflite-micro==0.dev20261023182759",
            "pytest>=7",
            "ruff>=0.5",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6",
            "playwright==1.65.2",
            "ray[serve]==2.60.0",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
