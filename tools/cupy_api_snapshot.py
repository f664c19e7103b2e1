"""Write CuPy's public API, as the installed ``cupy`` package has it, to a JSON snapshot.

The snapshot is the contract dlrun's GPU path is checked against without a GPU
(``tests/test_cupy_contract.py``) and the list of names the emulated CuPy exposes
(``dlrun.engine.testing``). CuPy imports and can be introspected on a machine without a GPU:

    python -m venv /tmp/cupyenv && /tmp/cupyenv/bin/pip install cupy-cuda13x nvidia-nccl-cu13
    /tmp/cupyenv/bin/python tools/cupy_api_snapshot.py tests/cupy_api.json

Every public name of ``cupy``, ``cupyx``, ``cupy.random``, ``cupy.linalg``, ``cupy.fft``,
``cupy.lib.stride_tricks``, ``cupy.cuda`` (and its ``runtime`` and ``nccl``) is recorded with
its kind and, where the signature can be read (Python's ``inspect``, else the signature line
Cython embeds in the docstring), its parameters as ``[name, kind]`` pairs: kind ``P``
positional-only, ``PK`` positional or keyword, ``K`` keyword-only, ``*`` and ``**`` the
catch-alls. Classes (``cupy.ndarray``, ``cupy.random.Generator``, ``cupy.ufunc``, the
``cupy.cuda`` devices, streams, events and memory pools) list their methods and attributes.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

MODULES = ("cupy", "cupyx", "cupy.random", "cupy.linalg", "cupy.fft", "cupy.lib.stride_tricks",
           "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.nccl", "cupyx.scipy.special")
CLASSES = ("cupy.ndarray", "cupy.random.Generator", "cupy.ufunc", "cupy.cuda.Device",
           "cupy.cuda.Stream", "cupy.cuda.Event", "cupy.cuda.MemoryPool",
           "cupy.cuda.MemoryPointer", "cupy.cuda.nccl.NcclCommunicator")
_KINDS = {inspect.Parameter.POSITIONAL_ONLY: "P", inspect.Parameter.POSITIONAL_OR_KEYWORD: "PK",
          inspect.Parameter.KEYWORD_ONLY: "K", inspect.Parameter.VAR_POSITIONAL: "*",
          inspect.Parameter.VAR_KEYWORD: "**"}


def split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def params_from_doc(obj: Any, name: str) -> list[list[str]] | None:
    """The parameters in the signature line Cython embeds as the docstring's first line."""
    first = (getattr(obj, "__doc__", None) or "").lstrip().split("\n", 1)[0].replace("\\*", "*")
    match = re.match(r"^[\w.]*?" + re.escape(name) + r"\((.*)\)( *->.*)?$", first)
    if not match:
        return None
    out: list[list[str]] = []
    kind = "PK"
    for part in split_top(match.group(1)):
        pname = part.split("=", 1)[0].split(":", 1)[0].split()[-1]  # "int device" -> device
        if pname == "/":
            out = [[n, "P"] for n, _ in out]
        elif pname == "*":
            kind = "K"
        elif pname.startswith("**"):
            out.append([pname[2:], "**"])
        elif pname.startswith("*"):
            out.append([pname[1:], "*"])
            kind = "K"
        elif pname.isidentifier():
            out.append([pname, kind])
    if out and out[0][0] == "self":
        out = out[1:]
    return out


def params_of(obj: Any, name: str) -> list[list[str]] | None:
    """``obj``'s parameters (``self`` left out), or None where they cannot be read."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return params_from_doc(obj, name)
    out = [[p.name, _KINDS[p.kind]] for p in sig.parameters.values()]
    return out[1:] if out and out[0][0] == "self" else out


def kind_of(obj: Any) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if type(obj).__name__ in ("ufunc", "_GUFunc"):
        return "ufunc"
    if callable(obj):
        return "function"
    return "constant"


def describe_module(module: Any) -> dict[str, Any]:
    """{public name: {kind, params}} of a module."""
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    out: dict[str, Any] = {}
    for name in sorted(set(names)):
        obj = getattr(module, name, None)
        if obj is None or name == "annotations":
            continue
        kind = kind_of(obj)
        entry: dict[str, Any] = {"kind": kind}
        if kind in ("function", "ufunc"):
            entry["params"] = params_of(obj, name)
        elif kind == "class":
            entry["params"] = params_of(obj, name) or params_of(obj.__init__, "__init__")
        out[name] = entry
    return out


# instances to read the attributes a Cython class sets per instance (Stream.ptr), without a GPU
INSTANCES = {"cupy.cuda.Stream": "null"}


def describe_class(cls: type, instance: Any = None) -> dict[str, Any]:
    """{public member: {kind, params}} of a class (``__dunder__`` protocol methods included)."""
    out: dict[str, Any] = {}
    for name in sorted(set(dir(cls)) | set(dir(instance) if instance is not None else ())):
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        obj = inspect.getattr_static(cls, name, None)
        if callable(obj) or type(obj).__name__ in ("method_descriptor", "cython_function_or_method"):
            out[name] = {"kind": "method", "params": params_of(getattr(cls, name), name)}
        else:
            out[name] = {"kind": "attribute"}
    return out


def resolve(dotted: str) -> Any:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def snapshot() -> dict[str, Any]:
    """The whole snapshot, as written to JSON."""
    warnings.simplefilter("ignore")
    import cupy
    import numpy

    modules = {}
    for name in MODULES:
        try:
            modules[name] = describe_module(importlib.import_module(name))
        except ImportError as e:  # nccl without libnccl: say so rather than record nothing
            raise SystemExit(f"cannot import {name} ({e}); install what it needs and run again")
    classes = {}
    for name in CLASSES:
        cls = resolve(name) if name != "cupy.ufunc" else type(cupy.add)
        instance = getattr(cls, INSTANCES[name]) if name in INSTANCES else None
        classes[name] = describe_class(cls, instance)
    return {"cupy": cupy.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0], "generated_by": "tools/cupy_api_snapshot.py",
            "modules": modules, "classes": classes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the JSON file to write (tests/cupy_api.json)")
    args = parser.parse_args(argv)
    data = snapshot()
    args.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    counts = {k: len(v) for k, v in data["modules"].items()}
    print(f"CuPy {data['cupy']}: {counts}, ndarray members {len(data['classes']['cupy.ndarray'])}")


if __name__ == "__main__":
    main()
