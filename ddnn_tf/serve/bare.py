"""The serving benchmark's baseline (``python -m ddnn_tf.serve.bare``): a bare FastAPI
``POST /v1/cloud`` that reads the body and answers a fixed result shaped as the cloud's
for one record, on the cloud's app and server settings
(:data:`ddnn_tf.serve.http.APP_OPTIONS`, :func:`ddnn_tf.serve.run_server.run_app`): the
cost of the HTTP stack alone, which :func:`ddnn_tf.serve.bench.bench_serve` measures
beside the cloud."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ddnn_tf.serve.http import APP_OPTIONS, add_status_routes
from ddnn_tf.serve.run_server import run_app

__all__ = ["app"]

_ANSWER = {"model": "bare", "exit": "cloud", "results": [{"prediction": 0, "probs": [0.1] * 10}]}
app = FastAPI(**APP_OPTIONS)


@app.post("/v1/cloud")
async def cloud(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(_ANSWER)


add_status_routes(app, {}, None)  # after /v1/cloud: its requests match it first


if __name__ == "__main__":
    run_app(app, "127.0.0.1", 0)
