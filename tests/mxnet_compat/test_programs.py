"""The corpus: Gluon 1.x programs (tests/mxnet_compat/programs/) run unchanged on MXNet 1.9.1
and, with ``mxnet`` replaced by ``dlrun`` in their import lines only, on dlrun; what they
print must agree. Each program's header says how: ``# compare: rtol=R atol=A`` (every
number within float tolerance: the randomness is seeded alike, through NumPy) or
``# compare: band=B`` (every number within B: MXNet's and dlrun's own random streams
differ, so an accuracy lands in the same band, not on the same digits). The text between
the numbers must be identical. ``# needs: shared-data`` programs read the MNIST copy in
the shared data folder and skip where it is absent.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

PROGRAMS = Path(__file__).parent / "programs"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
NAMES = sorted(p.stem for p in PROGRAMS.glob("*.py"))
IMPORT = re.compile(r"^(\s*(?:import|from)\s+)mxnet\b", re.MULTILINE)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\bnan\b|\binf\b")

DRIVER = r'''
import contextlib, io, json, os, runpy, sys, traceback
results = {}
for name, path in json.loads(sys.argv[1]).items():
    folder = os.path.join(sys.argv[2], name)
    os.makedirs(folder, exist_ok=True)
    os.chdir(folder)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            runpy.run_path(path, run_name="__main__")
        results[name] = {"out": buffer.getvalue(), "error": None}
    except BaseException:
        results[name] = {"out": buffer.getvalue(), "error": traceback.format_exc()[-2000:]}
json.dump(results, open(sys.argv[3], "w"))
'''


# decided before MXNet runs: its MNIST makes the root folder when it does not find the files
HAVE_SHARED = (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def available(name: str) -> bool:
    """The program can run here (a ``needs: shared-data`` one only with the shared MNIST)."""
    return HAVE_SHARED or header(name).get("needs") != "shared-data"


def header(name: str) -> dict:
    """The program's ``# key: value`` header lines."""
    out = {}
    for line in (PROGRAMS / f"{name}.py").read_text().splitlines():
        m = re.match(r"#\s*(compare|needs|source):\s*(.*)", line)
        if m:
            out[m[1]] = m[2].strip()
    return out


@pytest.fixture(scope="module")
def mxnet_outputs(mxnet_python, tmp_path_factory):
    """What every program prints on MXNet, from one subprocess."""
    folder = tmp_path_factory.mktemp("mx_programs")
    driver, result = folder / "driver.py", folder / "result.json"
    driver.write_text(DRIVER)
    paths = {n: str(PROGRAMS / f"{n}.py") for n in NAMES if available(n)}
    subprocess.run([str(mxnet_python), str(driver), json.dumps(paths), str(folder), str(result)],
                   check=True, timeout=900, env=dict(os.environ, DATA_ROOT=str(SHARED)))
    return json.loads(result.read_text())


def run_on_dlrun(name: str, folder: Path, monkeypatch) -> str:
    """The program's output on dlrun: its source with ``mxnet`` -> ``dlrun`` in the imports."""
    source = IMPORT.sub(r"\g<1>dlrun", (PROGRAMS / f"{name}.py").read_text())
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DATA_ROOT", str(SHARED))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(source, str(PROGRAMS / f"{name}.py"), "exec"), {"__name__": "__main__"})
    return buffer.getvalue()


def skeleton(text: str) -> str:
    """The printed text with every number as '#', without blanks and line breaks (NumPy
    pads and wraps its columns by the widths of the values)."""
    return re.sub(r"\s+", "", NUMBER.sub("#", text))


def compare_outputs(ours: str, theirs: str, spec: str) -> None:
    """Same text between the numbers (spacing aside); every number within the header's
    tolerance."""
    assert skeleton(ours) == skeleton(theirs), \
        f"the printed text differs:\n--- dlrun\n{ours}\n--- MXNet\n{theirs}"
    a = np.array([float(x) for x in NUMBER.findall(ours)])
    b = np.array([float(x) for x in NUMBER.findall(theirs)])
    opts = dict(kv.split("=") for kv in spec.split())
    if "band" in opts:
        np.testing.assert_allclose(a, b, rtol=0, atol=float(opts["band"]), equal_nan=True)
    else:
        np.testing.assert_allclose(a, b, rtol=float(opts.get("rtol", 1e-5)),
                                   atol=float(opts.get("atol", 1e-6)), equal_nan=True)


def test_the_corpus_has_thirty_programs():
    assert len(NAMES) >= 30, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_program_prints_what_mxnet_prints(name, mxnet_outputs, tmp_path, monkeypatch):
    info = header(name)
    if not available(name):
        pytest.skip(f"the shared MNIST copy is not at {SHARED / 'mnist'}")
    theirs = mxnet_outputs[name]
    assert theirs["error"] is None, f"{name} fails on MXNet:\n{theirs['error']}"
    ours = run_on_dlrun(name, tmp_path, monkeypatch)
    compare_outputs(ours, theirs["out"], info.get("compare", ""))
