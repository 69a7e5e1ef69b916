"""Run a converted DDNN without TensorFlow: manifest, tier runners, Hierarchy orchestrator.

``ddnn_tf.runtime`` imports numpy, the standard library and an interpreter only:
``ai-edge-litert`` for the portable target, larq-compute-engine's interpreter for the
``lce`` target (loaded on first use, without importing TensorFlow). It runs on a device
that has neither TensorFlow, Keras nor Larq.

Example (the committed model, eight blank images, device 5 failed):
    >>> import numpy as np
    >>> from ddnn_tf.runtime import Hierarchy
    >>> h = Hierarchy("tflite_models/fmnist6_mlpcc", target="portable")
    >>> xs = [np.zeros((8, 10, 14, 1), np.float32)] * 6
    >>> result = h.run(xs, thresholds=0.8, fail="5", batch_size=4)
    >>> len(result), round(sum(result.exit_fraction().values()), 6)
    (8, 1.0)
    >>> h.summary_encoding  # each summary: 10 integer class scores, 4 bits each
    'int4'
    >>> result.link_bytes["device_to_local"][0].tolist()  # device 5 failed: it sent nothing
    [5, 5, 5, 5, 5, 0]
"""

from __future__ import annotations

from ddnn_tf.core.manifest import Manifest, load_manifest
from ddnn_tf.runtime.orchestrator import LINKS, Hierarchy, RunResult, draw_presence
from ddnn_tf.runtime.report import evaluate_model
from ddnn_tf.runtime.tiers import TARGETS, TierRunner

__all__ = [
    "LINKS",
    "TARGETS",
    "Hierarchy",
    "Manifest",
    "RunResult",
    "TierRunner",
    "draw_presence",
    "evaluate_model",
    "load_manifest",
]
