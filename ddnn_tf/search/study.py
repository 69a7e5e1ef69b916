"""The study: where trials are stored, how workers share it, and when a worker stops.

The default storage is a SQLite file in the output directory, so an interrupted search
continues where it stopped. ``postgresql://`` (or any database SQLAlchemy reaches) lets
several ``ddnn search`` processes on several machines work on one study: Optuna's RDB
storage gives each trial to one worker, and its heartbeat fails the trial of a worker
that died, which is then queued again. A study records what it searches (the space, the
objectives, the limits, the data and the board); a worker that opens it with another
search is refused.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ddnn_tf.errors import ConfigError, DeploymentError

__all__ = [
    "HEARTBEAT_S",
    "STUDY_FILE",
    "counted",
    "default_storage",
    "open_storage",
    "open_study",
    "sampler_seed",
    "storage_label",
]

#: The SQLite file of a search's default storage, in its output directory.
STUDY_FILE = "study.db"
#: Seconds between a running trial's heartbeats; a trial silent for 4 of them failed.
HEARTBEAT_S = 30
_SCHEMES = ("sqlite", "postgresql", "mysql")
_SEARCH_ATTR = "ddnn_search"


def default_storage(out: Path) -> str:
    """The SQLite URL of the study file in output directory ``out``."""
    return f"sqlite:///{(Path(out) / STUDY_FILE).resolve()}"


def storage_label(url: str) -> str:
    """The URL with its password hidden, for messages."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect to a study database (creating Optuna's tables in a new one).

    Args:
        url: ``sqlite:///PATH``, ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB``, or
            another SQLAlchemy URL.

    Raises:
        ConfigError: a URL that is not one (argument ``storage``).
        DeploymentError: a database that cannot be reached or opened.
    """
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        parsed = None
    backend = parsed.get_backend_name() if parsed is not None else ""
    if backend not in _SCHEMES:
        raise ConfigError(
            f"expected a database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB), "
            f"got {url!r}.",
            argument="storage",
        )
    connect = {"connect_timeout": 10} if backend == "postgresql" else {}
    if backend == "sqlite":
        connect = {"timeout": 60}  # two processes on one file wait for each other's writes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": connect},
                heartbeat_interval=HEARTBEAT_S,
                grace_period=4 * HEARTBEAT_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
        except ImportError as err:  # the database's Python driver is missing
            raise DeploymentError(
                f"cannot open {storage_label(url)}: {err.__cause__ or err} "
                "(pip install 'ddnn_tf[search]' brings the PostgreSQL driver)."
            ) from None
        except sqlalchemy.exc.SQLAlchemyError as err:
            first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise DeploymentError(
                f"cannot open the study storage {storage_label(url)}: {first}"
            ) from None


def _differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))


def open_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    search: Mapping[str, Any],
    *,
    directions: list[str] | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    first: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Load study ``name``, or create it (``directions`` given) for this search.

    Two workers that start together may both try to create it; the loser loads it.

    Args:
        storage: from :func:`open_storage`.
        name: the study's name.
        search: what this search is (space, objectives, limits, data, board): recorded
            in a new study, compared with an existing one's.
        directions: the objectives' directions; None only loads (``--export``).
        sampler: the sampler this worker uses.
        first: params of the first trial of a new study (the base preset's).

    Raises:
        ConfigError: no such study (when only loading), or one made by another search
            (naming what differs).
    """
    url = storage_label(storage.url)
    for _ in range(20):
        try:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        except KeyError:
            if directions is None:
                names = optuna.get_all_study_names(storage)
                raise ConfigError(
                    f"no study {name!r} in {url}; it holds "
                    f"{', '.join(map(repr, names)) if names else 'none'}.",
                    argument="study",
                ) from None
            try:
                study = optuna.create_study(
                    study_name=name, storage=storage, directions=directions, sampler=sampler
                )
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another worker created it first: load it
            study.set_user_attr(_SEARCH_ATTR, dict(search))
            if first:
                study.enqueue_trial(dict(first))
            return study
        stored = study.user_attrs.get(_SEARCH_ATTR)
        if stored is None:  # its creator has not recorded the search yet
            time.sleep(0.5)
            continue
        if directions is not None and dict(stored) != dict(search):
            differ = _differences(stored, search)
            raise ConfigError(
                f"study {name!r} in {url} was made by another search (it differs in "
                f"{', '.join(differ)}); give another --study, or the same settings.",
                argument="study",
            )
        return study
    raise DeploymentError(f"study {name!r} in {url} never recorded its search settings.")


def search_settings(study: optuna.Study) -> dict[str, Any]:
    """What the study searches, as its creator recorded it."""
    return dict(study.user_attrs.get(_SEARCH_ATTR, {}))


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards ``--trials``: finished (complete, pruned, or failed
    for a reason of its own) or running. An interrupted trial does not: it is queued
    again, and a queued one is not counted until it runs."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and "error" in trial.user_attrs


def sampler_seed(seed: int, worker: str | None) -> int:
    """The sampler's seed: ``seed`` alone for the only worker (the default SQLite file),
    else mixed with the worker's host and process id, so that workers sharing a study
    try different configurations."""
    if worker is None:
        return int(seed)
    digest = hashlib.sha256(f"{seed}:{worker}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
