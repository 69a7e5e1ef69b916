"""``ddnn deploy MODEL --data fmnist6`` or ``ddnn deploy --config site.toml``: the whole
hierarchy as processes on loopback (:func:`ddnn_tf.serve.deploy.deploy`); its flags are
the fields of the plan, :class:`~ddnn_tf.serve.settings.DeployPlan`, and so are the keys
of a deployment file."""

from __future__ import annotations

import sys

from ddnn_tf.cli.flags import settings_command
from ddnn_tf.serve.settings import DeployPlan

__all__ = ["deploy"]


def _deploy(plan: DeployPlan, json: bool = False) -> None:  # noqa: A002  (the flag is --json)
    import json as _json

    from ddnn_tf.serve.deploy import deploy as run_deploy
    from ddnn_tf.serve.live_report import format_report

    try:
        result = run_deploy(plan)
    except KeyboardInterrupt:
        print("error: interrupted; every process deploy started was stopped.", file=sys.stderr)
        sys.exit(130)
    print(_json.dumps(result, indent=2) if json else format_report(result))


deploy = settings_command(
    DeployPlan,
    _deploy,
    "Run a converted model's hierarchy as processes on loopback and report it.",
    extra={"json": ("bool", False, "print one JSON object instead of the text report")},
    config=True,
)

COMMAND = deploy
