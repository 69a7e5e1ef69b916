"""The numpy core: everything about a DDNN that needs no TensorFlow and no interpreter.

:mod:`~ddnn_tf.core.topology` (the hierarchy), :mod:`~ddnn_tf.core.graph` (its tiers and
wiring), :mod:`~ddnn_tf.core.exits` and :mod:`~ddnn_tf.core.calibration` (the exit rule),
:mod:`~ddnn_tf.core.comm` (wire codecs), :mod:`~ddnn_tf.core.cost` (bytes, energy, battery
life and latency on hardware profiles),
:mod:`~ddnn_tf.core.evaluation` (the result of an evaluation),
:mod:`~ddnn_tf.core.manifest` and :mod:`~ddnn_tf.core.schemas` (a converted model's
description), :mod:`~ddnn_tf.core.tflite_check` (tier binaries checked before an
interpreter sees them), :mod:`~ddnn_tf.core.vocab` (the words they share).
Only numpy, jsonschema and the standard library are imported here.
"""

__all__: list[str] = []
