"""The DDNN's tiers as network services (FastAPI on uvicorn, or Ray Serve for the cloud).

* :func:`create_cloud_app` / :func:`add_cloud_routes`: the cloud tier (``serve cloud``);
* :func:`create_gateway_app`: the local aggregator that end devices talk to
  (``serve gateway``), which forwards the samples that did not exit to the cloud;
* :mod:`ddnn_tf.serve.wire`: the binary message formats, shared with the devices;
* :mod:`ddnn_tf.serve.results`: the gateway's answers, delivered as they are made
  (``GET /v1/answers``) and forgotten after a bounded window, with a journal for restarts;
* :mod:`ddnn_tf.serve.mqtt` / :mod:`ddnn_tf.serve.broker`: MQTT beside HTTP, and a
  mosquitto of our own on loopback.

Nothing here imports TensorFlow: the tiers run through :mod:`ddnn_tf.runtime`. The
names below are imported on first use, so ``import ddnn_tf.serve.bench`` stays light.
"""

from __future__ import annotations

import importlib

_WHERE = {
    name: module
    for module, names in {
        "wire": ("FEATURES_TYPE", "CloudSpec", "describe_model", "model_graph", "model_id"),
        "settings": ("TOKEN_ENV",),
        "protocol": ("ServiceError",),
        "cloud": ("CloudTier", "add_cloud_routes", "create_cloud_app"),
        "gateway": ("create_gateway_app",),
    }.items()
    for name in names
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ddnn_tf.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ddnn_tf.serve' has no attribute {name!r}")
