"""The Griffe extension that readies docstrings for the docs site (scripts/mkdocs_docstrings.py)."""

import doctest
import importlib.util
import logging

import griffe  # mkdocstrings-python's, in the [dev] extra
import pytest
from conftest import ROOT

_SPEC = importlib.util.spec_from_file_location(
    "mkdocs_docstrings", ROOT / "scripts" / "mkdocs_docstrings.py"
)
ext = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ext)


@pytest.fixture(scope="module")
def loaded():
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)], extensions=griffe.load_extensions())
    pkg = loader.load("ddnn_tf")
    return pkg, loader.modules_collection


def test_examples_run():
    results = doctest.testmod(ext)
    assert results.attempted >= 2 and results.failed == 0


def test_roles_become_links_to_rendered_objects_or_code(loaded):
    pkg, collection = loaded
    scope = pkg["runtime.orchestrator"]
    text = (
        ":class:`~ddnn_tf.runtime.Hierarchy`, :func:`ddnn_tf.core.comm.pack_features`, "
        ":func:`exit_points`, :meth:`_run_batch`, :mod:`numpy`"
    )
    out = ext.rewrite_roles(text, scope, collection)
    assert "[`Hierarchy`][ddnn_tf.runtime.orchestrator.Hierarchy]" in out  # re-export followed
    assert "[`ddnn_tf.core.comm.pack_features()`][ddnn_tf.core.comm.pack_features]" in out
    assert "[`exit_points()`][ddnn_tf.core.exits.exit_points]" in out  # an imported name
    assert "`_run_batch()`" in out and "[`_run_batch" not in out  # private: code only
    assert "`numpy`" in out and ":mod:" not in out


def test_a_stale_package_path_is_a_warning(loaded, caplog):
    pkg, collection = loaded
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.ddnn_docstrings"):
        out = ext.rewrite_roles(":func:`ddnn_tf.comm.pack_features`", pkg, collection, "x")
    assert out == "`ddnn_tf.comm.pack_features()`"
    assert "ddnn_tf.comm.pack_features" in caplog.text and "does not exist" in caplog.text


def test_doctests_outside_examples_are_fenced_and_examples_left_alone():
    text = "Intro.\n\n>>> f()\n1\n\nExamples:\n    >>> g()\n    2\n"
    out = ext.fence_doctests(text).splitlines()
    assert out[:6] == ["Intro.", "", "```pycon", ">>> f()", "1", "```"]
    assert out[-2:] == ["    >>> g()", "    2"]


def test_the_package_has_no_stale_role_paths(caplog):
    extensions = griffe.load_extensions(ext.DocstringsForMkDocs)
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)], extensions=extensions)
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.ddnn_docstrings"):
        pkg = loader.load("ddnn_tf")
    assert "does not exist" not in caplog.text, caplog.text
    # the extension ran: roles are gone, #: comments became docstrings
    assert ":class:`" not in pkg["errors"].docstring.value
    assert pkg["core.vocab.LINKS"].docstring.value.startswith("The links whose bytes")
