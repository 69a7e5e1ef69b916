"""The DDNN's tiers as network services (FastAPI on uvicorn, or Ray Serve for the cloud).

* :func:`create_cloud_app` / :func:`cloud_router`: the cloud tier (``serve cloud``);
* :func:`create_gateway_app`: the local aggregator that end devices talk to
  (``serve gateway``), which forwards the samples that did not exit to the cloud;
* :mod:`ddnn_tf.serve.wire`: the binary message formats, shared with the devices.

Nothing here imports TensorFlow: the tiers run through :mod:`ddnn_tf.runtime`.
"""

from __future__ import annotations

from ddnn_tf.serve.cloud import CloudTier, cloud_router, create_cloud_app, describe_model
from ddnn_tf.serve.http import TOKEN_ENV, ServiceError
from ddnn_tf.serve.wire import FEATURES_TYPE, CloudSpec, model_id

__all__ = [
    "FEATURES_TYPE",
    "TOKEN_ENV",
    "CloudSpec",
    "CloudTier",
    "ServiceError",
    "cloud_router",
    "create_cloud_app",
    "create_gateway_app",
    "describe_model",
    "model_id",
]


def __getattr__(name: str):
    if name == "create_gateway_app":
        from ddnn_tf.serve.gateway import create_gateway_app

        return create_gateway_app
    raise AttributeError(name)
