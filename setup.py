"""ddnn_tf: Distributed Deep Neural Networks (cloud, edge, end devices) with Larq.

``pip install ddnn_tf`` installs what a device, gateway or phone host needs to run a
converted model (numpy, the LiteRT interpreter, jsonschema); the extras add the rest.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Larq needs Keras 2: tf-keras of TensorFlow's minor version, and numpy < 2.
TRAIN = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "larq==0.14.0",
    "larq-compute-engine==0.16.0",
    "tensorflow-model-optimization==0.8.1",
]
# Tiers as network services (ddnn serve / device / deploy).
SERVE = [
    "fastapi==0.163.2",
    "uvicorn==0.54.0",
    "httpx==0.28.1",
    "qrcode==8.2",
    "cryptography>=42",  # serve demo --https: a self-signed certificate for the LAN
    "paho-mqtt==2.2.0",  # --transport mqtt (the broker itself: Debian's mosquitto)
    "aiohttp==3.14.5",  # ddnn bench serve's client: light enough to measure the servers
    "orjson==3.13.0",  # the cloud's answers, encoded in a twentieth of the json module's time
]
RAY = ["ray[serve]==2.60.0"]
MCU = ["tflite-micro==0.dev20261023182759"]
# The hierarchy search (ddnn search): Optuna, and the PostgreSQL driver of a shared study.
SEARCH = ["optuna==5.1.0", "psycopg[binary]==3.3.9"]
# The paper's tables and plots, and the notebook.
EXPERIMENTS = ["matplotlib>=3.7", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6"]
TOOLS = [
    "pytest>=7",
    "pytest-xdist>=3.5",  # make test: one worker per core, a test file per worker
    "ruff>=0.5",
    "playwright==1.65.2",
    "import-linter>=2.1",
    "mkdocs-material>=9.5",
    "mkdocstrings-python>=1.10",
    "scikit-learn>=1.3",  # scripts/make_cancer3.py writes the packaged cancer3 data from it
]

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
    package_data={
        "ddnn_tf.data": ["*.json", "*.npz"],
        "ddnn_tf.mcu": ["firmware/*", "instruction_model.json"],
        "ddnn_tf.core.cost": ["hardware/*.json"],
    },
    install_requires=[
        "numpy>=1.23,<2",
        "ai-edge-litert==2.3.0",
        "jsonschema>=4.20",
        "tqdm>=4.60",
        "fire>=0.5",
        "tomli>=2; python_version < '3.11'",  # deployment files (tomllib from 3.11)
    ],
    extras_require={
        "train": TRAIN,
        "serve": SERVE,
        "ray": SERVE + RAY,
        "experiments": TRAIN + EXPERIMENTS,
        # Device tiers in TensorFlow Lite Micro (ddnn mcu --board tflm); the C target,
        # the firmware build and the QEMU runs need only the toolchain (make mcu).
        "mcu": MCU,
        # the search trains, compiles the device tiers (make mcu) and plots its front
        "search": TRAIN + SEARCH + ["matplotlib>=3.7"],
        "dev": TRAIN + SERVE + RAY + EXPERIMENTS + MCU + SEARCH + TOOLS,
    },
    entry_points={"console_scripts": ["ddnn = ddnn_tf.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
