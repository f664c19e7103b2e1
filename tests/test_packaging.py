"""Issue 17, item 10: pyproject.toml declares every package dlrun imports (threadpoolctl was
imported but not declared) and bounds each one's major to the tested ones, which the
installed versions are."""
from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
# import name -> the distribution that provides it, where they differ
DISTRIBUTION = {"hydra": "hydra-core", "sklearn": "scikit-learn", "cupy": "cupy-cuda12x", "PIL": "pillow", "yaml": "pyyaml"}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    found = {}
    for text in reqs:
        req = Requirement(text)
        if req.name != "dlrun":
            found[req.name.lower()] = req
    return found


def imported_packages() -> set[str]:
    names: set[str] = set()
    for root in ("dlrun", "hydra_plugins"):
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "dlrun"}


def test_every_imported_package_is_declared():
    declared = requirements()
    missing = sorted(n for n in imported_packages()
                     if DISTRIBUTION.get(n, n).lower() not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_dependency_has_an_upper_bound_on_its_major():
    for name, req in requirements().items():
        uppers = [s for s in req.specifier if s.operator == "<"]
        assert uppers, f"{req}: no upper bound"
        assert all(Version(s.version).release[1:] in ((), (0,), (0, 0)) for s in uppers), \
            f"{req}: the bound is on a major"


def test_the_installed_versions_are_inside_the_bounds():
    """The installed versions are the tested ones: a bound below them is a bound untested."""
    checked = 0
    for name, req in requirements().items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra not installed here (cupy without a GPU)
        assert req.specifier.contains(version, prereleases=True), f"{name} {version} vs {req}"
        checked += 1
    assert checked >= 10
