"""Run the same Gluon snippet in MXNet 1.9.1 (a subprocess in the side venv) and in dlrun,
and compare what both produce.

A snippet is Python source written for MXNet: it may use ``mx``, ``nd``, ``gluon``,
``autograd``, ``np`` and ``inputs`` (a dict of NumPy arrays the test module made), and it
assigns ``out``, a dict of results (NDArrays, NumPy arrays, numbers, lists of those). In
dlrun it runs with ``mx = dlrun`` and the same names. All the snippets of one test module
run in one MXNet subprocess, which sends back an .npz of every result (and the exception
type of a snippet that raised).
"""
from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

# helpers both frameworks' snippets may call; ``named(net)`` (structural name -> Parameter)
# is each framework's own
COMMON = r'''
import zlib

def fill(net, scale=0.5):
    """Deterministic values for every parameter, drawn from its structural name."""
    for name, p in sorted(named(net).items()):
        rs = np.random.RandomState(zlib.crc32(name.encode()))
        low = 0.5 if name.endswith("running_var") else -scale
        p.set_data(nd.array(rs.uniform(low, low + 2 * scale, p.shape)))

def grads(net):
    return {"d_" + k: p.grad() for k, p in sorted(named(net).items()) if p.grad_req != "null"}

def values(net):
    return {"w_" + k: p.data() for k, p in sorted(named(net).items())}
'''

DRIVER = r'''
import json, re, sys, traceback
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
snippets = json.load(open(sys.argv[1]))
inputs = dict(np.load(sys.argv[2]))
UNFUSED = re.compile(json.load(open(sys.argv[5])))
arrays, meta = {}, {}

def named(net):
    return {UNFUSED.sub(lambda m: f"{m[1]}{m[3] or 'l'}{m[2]}_{m[4]}", k): v
            for k, v in net._collect_params_with_prefix().items()}
''' + COMMON + r'''

def flat(prefix, value):
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            flat(f"{prefix}.{i}", v)
        return
    if isinstance(value, mx.nd.NDArray):
        value = value.asnumpy()
    arrays[prefix] = np.asarray(value)

for name, code in snippets.items():
    np.random.seed(0)
    mx.random.seed(0)
    scope = dict(mx=mx, nd=nd, gluon=gluon, autograd=autograd, np=np, inputs=inputs, fill=fill,
                 grads=grads, values=values)
    try:
        exec(code, scope)
        for key, value in scope["out"].items():
            flat(f"{name}/{key}", value)
        meta[name] = None
    except Exception as e:
        meta[name] = type(e).__name__ + ": " + str(e).splitlines()[0][:200] if str(e) else type(e).__name__
np.savez(sys.argv[3], **arrays)
json.dump(meta, open(sys.argv[4], "w"))
'''


def run_mxnet(python: Path, snippets: dict[str, str], inputs: dict[str, np.ndarray],
              folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str | None]]:
    """Every snippet run in MXNet: ({'snippet/key[.i]': array}, {snippet: None or error})."""
    from dlrun.nn.block import MXNET_UNFUSED

    names = ("snippets.json", "inputs.npz", "out.npz", "meta.json", "pattern.json", "driver.py")
    files = [folder / n for n in names]
    files[0].write_text(json.dumps({k: textwrap.dedent(v) for k, v in snippets.items()}))
    np.savez(files[1], **inputs)
    files[4].write_text(json.dumps(MXNET_UNFUSED.pattern))
    files[5].write_text(DRIVER)
    res = subprocess.run([str(python), str(files[5]), *map(str, files[:5])], capture_output=True,
                         text=True, timeout=600, cwd=folder)
    if res.returncode != 0:
        raise RuntimeError(f"the MXNet subprocess failed:\n{res.stderr[-3000:]}")
    with np.load(files[2]) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads(files[3].read_text())


def _flat(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flat(f"{prefix}.{i}", v, out)
        return
    out[prefix] = np.asarray(value.asnumpy() if hasattr(value, "asnumpy") else value)


def run_dlrun(name: str, code: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The snippet's results in dlrun, keyed as run_mxnet keys them."""
    import dlrun
    from dlrun import autograd, gluon, nd

    helpers = dict(nd=nd, np=np, named=lambda net: net.collect_params())
    exec(COMMON, helpers)
    np.random.seed(0)
    dlrun.random.seed(0)
    scope = dict(mx=dlrun, nd=nd, gluon=gluon, autograd=autograd, np=np,
                 inputs={k: v.copy() for k, v in inputs.items()},
                 **{k: helpers[k] for k in ("fill", "grads", "values")})
    exec(textwrap.dedent(code), scope)
    out: dict[str, np.ndarray] = {}
    for key, value in scope["out"].items():
        _flat(f"{name}/{key}", value, out)
    return out


def compare(name: str, ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray],
            rtol: float = 1e-5, atol: float = 1e-6, dtypes: bool = True) -> None:
    """Assert that every result of snippet ``name`` agrees: the same keys, shapes, dtypes
    (unless ``dtypes`` is False) and values."""
    mine = {k for k in ours if k.startswith(name + "/")}
    other = {k for k in theirs if k.startswith(name + "/")}
    assert mine == other, f"{name}: dlrun gives {sorted(mine)}, MXNet {sorted(other)}"
    for key in sorted(mine):
        a, b = ours[key], theirs[key]
        assert a.shape == b.shape, f"{key}: shape {a.shape} in dlrun, {b.shape} in MXNet"
        if dtypes:
            assert a.dtype == b.dtype, f"{key}: dtype {a.dtype} in dlrun, {b.dtype} in MXNet"
        if a.dtype.kind in "USO" or b.dtype.kind in "USO":
            np.testing.assert_array_equal(a, b, err_msg=key)
            continue
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol,
                                   atol=atol, err_msg=key)
