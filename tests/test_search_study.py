"""Several workers on one study (``ddnn_tf.search.study``): a real PostgreSQL server on
loopback, two ``ddnn search`` processes, no trial lost or run twice, one front."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from conftest import ROOT
from optuna.trial import TrialState

#: Tiny trials, as in tests/test_search.py.
TINY = ("epochs=1", "upper_epochs=0", "cloud_layers=1")
ROOMY = {"max_flash": 65536, "max_ram": 65536}


def _postgres_bin(program: str) -> str:
    found = shutil.which(program) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if not found:
        pytest.fail(f"PostgreSQL's {program} is not installed: run `make postgres` (as root).")
    return found if isinstance(found, str) else found[-1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server on a free loopback port, in a temporary directory (run as the
    ``postgres`` user when the tests run as root: the server refuses root)."""
    home = Path(tempfile.mkdtemp(prefix="ddnn_pg_"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = "ddnn"
    data = home / "data"
    subprocess.run(
        [*as_user, _postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", user],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    ctl = [*as_user, _postgres_bin("pg_ctl"), "-D", str(data)]
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*ctl, "-o", options, "-l", str(home / "log"), "-w", "start"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def two_device_npz(two_devices, tmp_path_factory):
    """The two-device synthetic data as an .npz file, so that worker processes load it."""
    import numpy as np

    d = two_devices
    path = tmp_path_factory.mktemp("npz") / "two.npz"
    arrays = {
        f"x{i}": np.round(255 * np.concatenate([d.train.x[i], d.val.x[i], d.test.x[i]])).astype(
            np.uint8
        )
        for i in range(2)
    }
    y = np.concatenate([d.train.y, d.val.y, d.test.y])
    split = np.repeat([0, 0, 1], [len(d.train), len(d.val), len(d.test)])
    np.savez(path, **arrays, y=y, split=split)
    return path


def test_two_workers_share_one_postgresql_study(postgres_url, two_device_npz, tmp_path):
    from ddnn_tf.search import run_search

    out = tmp_path / "out"
    flags = dict(mcu="host", fix=TINY, storage=postgres_url, study="two", out=out, **ROOMY)
    # the study is created once; then two workers start together on it
    created = run_search("npz", path=str(two_device_npz), trials=0, progress=False, **flags)
    assert created.counts["trials"] == 0
    argv = [sys.executable, "-m", "ddnn_tf.search", "--data", "npz", "--path",
            str(two_device_npz), "--mcu", "host", "--fix", ",".join(TINY), "--storage",
            postgres_url, "--study", "two", "--out", str(out), "--trials", "2",
            "--max-flash", "65536", "--max-ram", "65536", "--json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    reports = []
    for w in workers:
        stdout, stderr = w.communicate(timeout=600)
        assert w.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout))
    ran = [set(r["ran_here"]) for r in reports]
    assert ran[0] and ran[1], ran  # both worked
    assert not ran[0] & ran[1], ran  # no trial ran twice
    study = optuna.load_study(study_name="two", storage=postgres_url)
    numbers = {t.number for t in study.trials}
    assert numbers == ran[0] | ran[1]  # none lost
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert 2 <= len(numbers) <= 3  # 2, or 3 when both saw 1 done and started together
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    final = run_search("npz", path=str(two_device_npz), trials=0, progress=False, **flags)
    assert final.counts["trials"] == len(numbers) and final.ran_here == []
    best = {t.number for t in study.best_trials if all(v <= 0 for v in t.constraints.values())}
    assert {r["trial"] for r in final.front} == best
    assert all(r["test_accuracy"] is not None for r in final.front)  # one machine: all here
