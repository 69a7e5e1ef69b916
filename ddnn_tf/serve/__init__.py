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

__all__ = [
    "FEATURES_TYPE",
    "TOKEN_ENV",
    "CloudSpec",
    "CloudTier",
    "ServiceError",
    "add_cloud_routes",
    "create_cloud_app",
    "create_gateway_app",
    "describe_model",
    "model_graph",
    "model_id",
]

_WHERE = {
    "FEATURES_TYPE": "wire",
    "CloudSpec": "wire",
    "model_graph": "wire",
    "model_id": "wire",
    "TOKEN_ENV": "settings",
    "ServiceError": "protocol",
    "CloudTier": "cloud",
    "add_cloud_routes": "cloud",
    "create_cloud_app": "cloud",
    "describe_model": "wire",
    "create_gateway_app": "gateway",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ddnn_tf.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ddnn_tf.serve' has no attribute {name!r}")
