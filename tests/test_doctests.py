"""Every docstring example in the package runs, and shows what it prints."""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest
from conftest import ROOT

import ddnn_tf

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(ddnn_tf.__path__, prefix="ddnn_tf.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name repository files such as tflite_models/...
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={"np": np, **vars(module)}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{name}: {results.failed} of {results.attempted} examples failed"


def test_the_package_has_examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    count = sum(
        len(t.examples) for name in MODULES for t in finder.find(importlib.import_module(name))
    )
    assert count >= 30
