"""CuPy's real API as the contract of dlrun's GPU path (issue 22, item 1).

``tests/cupy_api.json`` is CuPy's public API (written by ``tools/cupy_api_snapshot.py`` from
the installed package: names, parameters, ``cupy.ndarray``'s and ``cupy.random.Generator``'s
methods). This test walks dlrun's source with ``ast`` and checks every call dlrun makes on the
array module of a device (``xp.<name>(...)``, ``cupy.cuda.<name>``, ...), every array method
called inside an op (the functions that take ``xp``: their arrays are device arrays on a GPU)
and every generator method: the name must exist in CuPy and take the keywords used.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import dlrun
from dlrun.engine.testing import load_snapshot

SOURCE = Path(dlrun.__file__).parent
SNAPSHOT = load_snapshot()
MODULE_NAMES = {"xp": "cupy", "cp": "cupy", "cupy": "cupy", "cupyx": "cupyx"}
MODULE_CALLS = {"_import_cupy", "array_module", "module_of"}  # calls that return the module
RNG_NAMES = {"rng"}  # an op's generator (``needs_rng``); ``g`` in dlrun.engine.random's draws
ARRAY_METHODS = {m for m in dir(np.ndarray) if not m.startswith("_")}


def dotted(node: ast.AST) -> list[str] | None:
    """``xp.random.default_rng`` as ['cupy', 'random', 'default_rng'] when rooted at the array
    module (a name such as ``xp``, ``self.xp``, ``array_module(ctx)``), else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        if node.attr == "xp" and not parts:
            return None
        if node.attr == "xp":
            return ["cupy", *reversed(parts)]
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in MODULE_NAMES:
        return [MODULE_NAMES[node.id], *reversed(parts)]
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in MODULE_CALLS:
        return ["cupy", *reversed(parts)]
    if isinstance(node, ast.Call) and parts:  # xp.exp(x).sum, xp.cuda.Device(0).synchronize
        inner = dotted(node.func)
        return None if inner is None else [*inner, "()", *reversed(parts)]
    return None


def check_params(what: str, params: list | None, call: ast.Call) -> list[str]:
    """The keywords (and positional count) of ``call`` that the snapshot's ``params`` refuse."""
    if params is None:
        return []
    kinds = dict((name, kind) for name, kind in params)
    problems = []
    if "**" not in kinds.values():
        problems += [f"{what}() has no keyword {k.arg!r} in CuPy {SNAPSHOT['cupy']}"
                     for k in call.keywords if k.arg is not None and kinds.get(k.arg) not in ("PK", "K")]
    positional = sum(not isinstance(a, ast.Starred) for a in call.args)
    most = sum(kind in ("P", "PK") for kind in kinds.values())
    if "*" not in kinds.values() and positional > most:
        problems.append(f"{what}() takes at most {most} positional arguments in CuPy, {positional} given")
    return problems


RETURNS = {"cupy.random.default_rng": "cupy.random.Generator", "cupy.cuda.get_current_stream":
           "cupy.cuda.Stream", "cupy.get_default_memory_pool": "cupy.cuda.MemoryPool"}


def lookup(path: list[str]) -> tuple[dict | None, str]:
    """The snapshot's entry for a dotted path (the longest module prefix, then a member; after
    ``()``, a member of what the call returns: an instance of the class, else an array)."""
    if "()" in path:
        at = path.index("()")
        called = ".".join(path[:at])
        entry, _ = lookup(path[:at])
        if entry is None or len(path) != at + 2:
            return entry and {"kind": "unknown"}, called
        cls = RETURNS.get(called, called if entry["kind"] == "class" else "cupy.ndarray")
        return SNAPSHOT["classes"].get(cls, {}).get(path[-1], None if cls in SNAPSHOT["classes"]
                                                    else {"kind": "unknown"}), cls
    for split in range(len(path) - 1, 0, -1):
        module = ".".join(path[:split])
        members = SNAPSHOT["modules"].get(module)
        if members is not None:
            rest = path[split:]
            entry = members.get(rest[0])
            if entry is not None and len(rest) == 2 and entry["kind"] in ("class", "ufunc"):
                cls = "cupy.ufunc" if entry["kind"] == "ufunc" else f"{module}.{rest[0]}"
                entry = SNAPSHOT["classes"].get(cls, {}).get(rest[1])
            elif len(rest) > 1:
                return None, module
            return entry, module
    return None, path[0]


class Checker(ast.NodeVisitor):
    """Collects the calls of one file that CuPy would refuse."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[str] = []
        self.in_op = 0  # depth inside functions that take ``xp`` (their arrays are device arrays)
        self.rng_names = {"g"} if filename.endswith("engine/random.py") else set()

    def report(self, node: ast.AST, message: str) -> None:
        self.problems.append(f"{self.filename}:{node.lineno}: {message}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        takes_xp = any(a.arg == "xp" for a in node.args.args + node.args.kwonlyargs)
        self.in_op += takes_xp
        self.generic_visit(node)
        self.in_op -= takes_xp

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = dotted(node)
        if path is not None and len(path) > 1:
            entry, module = lookup(path)
            if entry is None and ".".join(path) not in SNAPSHOT["modules"]:
                name = f"{module}.{path[-1]}" if "()" in path else ".".join(path)
                self.report(node, f"{name} is not in CuPy {SNAPSHOT['cupy']}")
            return  # the chain's inner attributes are part of this one
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        path = dotted(func)
        if path is not None and len(path) > 1:
            entry, _ = lookup(path)
            if entry is not None:
                params = entry.get("params")
                name = ".".join(path).replace(".()", "()")
                self.problems += [f"{self.filename}:{node.lineno}: {p}"
                                  for p in check_params(name, params, node)]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and (
                func.value.id in self.rng_names or (self.in_op and func.value.id in RNG_NAMES)):
            self.check_method("cupy.random.Generator", func.attr, node)
        elif self.in_op and isinstance(func, ast.Attribute) and func.attr in ARRAY_METHODS \
                and dotted(func.value) is None and not _is_module(func.value):
            self.check_method("cupy.ndarray", func.attr, node)
        self.generic_visit(node)

    def check_method(self, cls: str, name: str, node: ast.Call) -> None:
        entry = SNAPSHOT["classes"][cls].get(name)
        if entry is None:
            self.report(node, f"{cls}.{name} is not in CuPy {SNAPSHOT['cupy']}")
        else:
            self.problems += [f"{self.filename}:{node.lineno}: {p}"
                              for p in check_params(f"{cls}.{name}", entry.get("params"), node)]


def _is_module(node: ast.AST) -> bool:
    """``np.x``, ``math.x``, ``self.x``...: a call on a module or object, not an array."""
    return isinstance(node, ast.Name) and node.id in ("np", "numpy", "math", "self", "cls", "ops",
                                                        "functools", "autograd", "backend")


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every call in ``source`` that CuPy's API (the snapshot) refuses."""
    checker = Checker(filename)
    checker.visit(ast.parse(source, filename))
    return checker.problems


def dlrun_sources() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if "testing" not in p.relative_to(SOURCE).parts)


def test_the_snapshot_is_cupys_api():
    assert SNAPSHOT["cupy"].count(".") == 2 and SNAPSHOT["generated_by"] == "tools/cupy_api_snapshot.py"
    cupy, ndarray = SNAPSHOT["modules"]["cupy"], SNAPSHOT["classes"]["cupy.ndarray"]
    assert len(cupy) > 400 and {"asnumpy", "fuse", "ElementwiseKernel"} <= set(cupy)
    assert ["where", "K"] not in cupy["sum"]["params"]  # NumPy's sum has where=, CuPy's has not
    assert {"get", "set", "toDlpack"} <= set(ndarray) and "resize" not in ndarray
    assert "normal" not in SNAPSHOT["classes"]["cupy.random.Generator"]  # default_rng() lacks it


def test_every_cupy_call_of_dlrun_is_in_cupys_api():
    problems = [p for path in dlrun_sources()
                for p in violations(path.read_text(), str(path.relative_to(SOURCE.parent)))]
    assert not problems, "\n".join(problems)


def test_the_contract_catches_calls_cupy_lacks():
    """A call CuPy lacks, inserted into a real op of dlrun, fails the contract."""
    path = SOURCE / "engine" / "ops" / "reduce.py"
    source = path.read_text()
    assert violations(source) == []
    anchor = "def sum(xp, x, axis=None, keepdims=False):\n"
    assert anchor in source
    planted = {
        "xp.nanargmedian(x)": "cupy.nanargmedian is not in CuPy",
        "xp.sum(x, where=x > 0)": "cupy.sum() has no keyword 'where'",
        "rng.normal(0, 1, 3)": "cupy.random.Generator.normal is not in CuPy",
        "xp.random.default_rng(0).normal(0, 1, 3)": "cupy.random.Generator.normal is not in CuPy",
        "xp.exp(x).sum(where=x > 0)": "cupy.exp().sum() has no keyword 'where'",
        "x.resize((2, 3))": "cupy.ndarray.resize is not in CuPy",
        "x.sum(axis=0, where=x > 0)": "cupy.ndarray.sum() has no keyword 'where'",
        "xp.cuda.Device(0).nonexistent": "cupy.cuda.Device.nonexistent is not in CuPy",
    }
    for call, expected in planted.items():
        bad = source.replace(anchor, f"{anchor}    {call}\n")
        found = violations(bad)
        assert len(found) == 1 and expected in found[0], (call, found)


@pytest.mark.parametrize("call", ["xp.take_along_axis(a, i, axis=1)", "xp.cuda.Device(1).synchronize()",
                                  "a.astype(xp.float16, copy=False)", "xp.add.at(a, i, b)"])
def test_the_contract_passes_calls_cupy_has(call):
    assert violations(f"def op(xp, a, i, b):\n    {call}\n") == []
