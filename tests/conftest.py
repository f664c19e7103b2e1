"""Shared fixtures: running the ``dlrun`` command in a subprocess, a real MLflow server.

Tests in lanes: a test that runs the ``dlrun`` command (through the ``run_dlrun`` fixture or
``dlrun_command()``, in its body, its fixtures or a helper of its module) or a real MLflow
server is an end-to-end test and gets the ``slow`` mark here; others that start MPI jobs or train for long
carry ``@pytest.mark.slow`` themselves. ``pytest -m "not slow"`` is the fast lane.
"""
from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread per process, set before NumPy loads (subprocesses inherit it): the suite runs
# its processes side by side on 2 cores (MPI ranks, servers, killed-and-resumed runs), and
# OpenBLAS's second thread then spins waiting for a core, which made tests 1.5-5x slower in
# wall time and CPU (tests/test_inception.py + tests/test_resume.py: 213 s -> 139 s loaded).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

from dlrun.engine.testing import emulate_unless_real  # noqa: E402

from .mlflow_server import MlflowServer

# the GPU lane: the real GPU where CuPy sees one, else DLRUN_EMULATE_GPU=2 (subprocesses too)
emulate_unless_real()


@dataclass
class Completed:
    """A finished ``dlrun`` process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def run_dirs(self) -> list[Path]:
        """Hydra run folders under this run's working directory, oldest first."""
        return sorted(p for p in (self.cwd / "outputs" / "runs").glob("*/*") if p.is_dir())

    def __str__(self) -> str:  # shown by assertion failures
        return (f"dlrun {' '.join(self.args)} -> exit {self.returncode}\n--- stdout\n{self.stdout}"
                f"\n--- stderr\n{self.stderr}")


def dlrun_command() -> list[str]:
    """The installed ``dlrun`` console script of this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "dlrun"
    if script.exists():
        return [str(script)]
    found = shutil.which("dlrun")
    return [found] if found else [sys.executable, "-m", "dlrun.runner.main"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a ``dlrun`` subprocess: no debug switches, no colour forcing."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HYDRA_FULL_ERROR", "FORCE_COLOR", "MLFLOW_TRACKING_URI", "DLRUN_DATA")}
    local = "127.0.0.1,localhost"
    env.update({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1",
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                "no_proxy": ",".join(filter(None, [env.get("no_proxy"), local])),
                "NO_PROXY": ",".join(filter(None, [env.get("NO_PROXY"), local]))})
    env.update(extra)
    return env


# --- lanes ---------------------------------------------------------------------------------------
SLOW_FIXTURES = frozenset({"run_dlrun", "mlflow_server"})  # fixtures that start dlrun or a server
SLOW_CALLS = frozenset({"dlrun_command"})                   # names whose use starts dlrun


def _code_names(code) -> set[str]:
    """The global names a code object (and the functions, lambdas, comprehensions in it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _code_names(const)
    return names


def _starts_dlrun(func, seen: set | None = None) -> bool:
    """Whether ``func`` names ``dlrun_command``, itself or through functions of its module."""
    seen = set() if seen is None else seen
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None or code in seen:
        return False
    seen.add(code)
    names = _code_names(code)
    if names & SLOW_CALLS:
        return True
    module = sys.modules.get(getattr(func, "__module__", ""), None)
    helpers = (getattr(module, n, None) for n in names)
    return any(_starts_dlrun(h, seen) for h in helpers
               if inspect.isfunction(h) and h.__module__ == func.__module__)


def _is_end_to_end(item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    if names & SLOW_FIXTURES:
        return True
    funcs = [getattr(item, "function", None)]  # the test, and the fixtures it asks for
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    funcs += [defs[-1].func for name, defs in fixtures.items() if name in names and defs]
    return any(_starts_dlrun(f) for f in funcs if f is not None)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if _is_end_to_end(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def run_dlrun(tmp_path: Path):
    """``run_dlrun(*args, cwd=..., env=..., timeout=...)``: runs dlrun to completion.

    The working directory defaults to a fresh temporary folder, so that ``outputs/``
    (run folders and the SQLite MLflow store) lands there and not in the checkout.
    """

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 180) -> Completed:
        cwd = Path(cwd or tmp_path)
        proc = subprocess.run([*dlrun_command(), *args], cwd=cwd, env=env or clean_env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        return Completed(list(args), proc.returncode, proc.stdout, proc.stderr, cwd)

    return run


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real ``mlflow server`` on 127.0.0.1 (free port, SQLite store in tmp), stopped after."""
    server = MlflowServer(tmp_path / "mlflow-server", clean_env())
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    server.stop()
