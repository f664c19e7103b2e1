"""The differential lane's fixtures: the side venv (made once, else the lane skips with
its reason) and one MXNet subprocess per test module running all its snippets."""
from __future__ import annotations

import pytest

from .harness import run_mxnet
from .make_venv import ensure_venv


def pytest_collection_modifyitems(items):
    for item in items:
        if "mxnet_compat" in str(item.fspath):
            item.add_marker(pytest.mark.mxnet)


@pytest.fixture(scope="session")
def mxnet_python():
    python, reason = ensure_venv()
    if python is None:
        pytest.skip(f"MXNet 1.9.1 is not available: {reason}")
    return python


@pytest.fixture(scope="module")
def oracle_folder(request, tmp_path_factory):
    """The folder the module's MXNet snippets run in (files they write stay there)."""
    return tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])


@pytest.fixture(scope="module")
def oracle(request, mxnet_python, oracle_folder):
    """(arrays, errors) of every snippet of the requesting module (its SNIPPETS and INPUTS)."""
    module = request.module
    snippets = {k: v for k, v in module.SNIPPETS.items() if k not in getattr(module, "UNAVAILABLE", ())}
    return run_mxnet(mxnet_python, snippets, getattr(module, "INPUTS", {}), oracle_folder)
