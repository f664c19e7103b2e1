"""The runner's layers import downwards only: no import cycle among the modules of dlrun/runner.

Layers, bottom-up: config -> build -> services (tracking, spool, checkpoint, resume,
distributed, console, interrupt, export, sync) -> loop and tasks -> experiment and sweep ->
main. The graph holds every ``import`` and ``from ... import`` anywhere in a file (inside
functions too: an import placed in a function to dodge a cycle is still a cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import dlrun.runner

RUNNER = Path(dlrun.runner.__file__).parent
PACKAGE = "dlrun.runner"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNNER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def runner_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(RUNNER.rglob("*.py"))}


def imported_modules(path: Path, name: str, modules: set[str]) -> set[str]:
    """The modules among ``modules`` that ``path`` (module ``name``) imports, relative imports
    resolved: ``from X import y`` imports the module ``X.y`` when there is one, else ``X``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m not in (name, PACKAGE)}


def import_graph() -> dict[str, set[str]]:
    """{module: the dlrun.runner modules it imports} (a package stands for its __init__)."""
    modules = runner_modules()
    return {name: imported_modules(path, name, set(modules)) for name, path in modules.items()}


# the layers, bottom-up; a module may import its own layer's and those below
LAYERS = [["config", "ranges"], ["build"],
          ["tracking", "records", "spool", "checkpoint", "resume", "distributed", "console", "interrupt",
           "callbacks", "updates",
           "export", "sync", "runstore", "sqlstore", "mlflow_model", "preprocess", "plots",
           "pairing", "explain", "runlog", "preflight", "limits", "report"],
          ["loop", "tasks", "assemble"], ["experiment", "sweep", "predict", "publish", "predict_input"], ["main"]]


def layer_of(module: str) -> int | None:
    first = module[len(PACKAGE) + 1:].split(".")[0]
    return next((i for i, names in enumerate(LAYERS) if first in names), None)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_relative_imports_inside_functions():
    graph = import_graph()
    assert "dlrun.runner.experiment" in graph["dlrun.runner.main"]      # inside _run
    assert "dlrun.runner.tracking" in graph["dlrun.runner.experiment"]
    assert "dlrun.runner.sweep.trial" in graph["dlrun.runner.sweep.table"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_runner_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in dlrun/runner: " + " -> ".join(cycle)


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    unplaced = sorted(m for m in graph if m != PACKAGE and layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"
    upward = [f"{m} -> {t}" for m, targets in graph.items() if m != PACKAGE
              for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not upward, "imports of a layer above: " + "; ".join(upward)
    # the sweep sits beside the experiment: main runs the one inside the other
    beside = [f"{m} -> {t}" for m, targets in graph.items() for t in targets
              if m.startswith(f"{PACKAGE}.sweep") and t == f"{PACKAGE}.experiment"]
    assert not beside, "the sweep imports the experiment: " + "; ".join(beside)



def test_runner_modules_and_functions_stay_small():
    """No file in dlrun/runner over 400 lines, no function over 80: one job each."""
    long_files, long_functions = [], []
    for name, path in runner_modules().items():
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_files.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert not long_files, long_files
    assert not long_functions, long_functions
