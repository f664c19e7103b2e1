"""Recording of imperative computations and reverse-mode differentiation over the record."""
from __future__ import annotations

import itertools
import threading
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .backend import device_scope, scope_of

if TYPE_CHECKING:
    from .ndarray import NDArray


class AutogradError(RuntimeError):
    """backward() was asked for something the recorded graph cannot give."""


class _State(threading.local):
    def __init__(self) -> None:
        self.recording = False
        self.training = False
        self.tracer: Any = None  # the jit's Tracer while hybridize() traces a call
        # False during a backward() that frees the graph as it goes: a node standing for a
        # whole sub-graph (a hybridized block) may then free its parts as it goes too
        self.retain_graph = True
        # dlrun.contrib.amp's implicit loss scaling: the head gradient is this (a callable
        # giving the scale) times ones, instead of ones
        self.head_scale: Callable[[], float] | None = None


_state = _State()
_ids = itertools.count()


def set_head_scale(scale: Callable[[], float] | None) -> Callable[[], float] | None:
    """Seed every ``backward()`` without head gradients with ``scale()`` instead of ones (None:
    ones again); returns the previous setting. Mixed precision's loss scaling uses it."""
    previous, _state.head_scale = _state.head_scale, scale
    return previous


def is_recording() -> bool:
    """True inside ``record()`` (and not inside a nested ``pause()``)."""
    return _state.recording


def is_training() -> bool:
    """True in training mode: dropout drops, batch norm uses batch statistics."""
    return _state.training


@contextmanager
def _scope(recording: bool | None, training: bool | None) -> Iterator[None]:
    old = (_state.recording, _state.training)
    if recording is not None:
        _state.recording = recording
    if training is not None:
        _state.training = training
    try:
        yield
    finally:
        _state.recording, _state.training = old


def record(train_mode: bool = True) -> Any:
    """Record operations for differentiation (training mode by default)."""
    return _scope(True, train_mode)


def pause(train_mode: bool = False) -> Any:
    """Stop recording inside a ``record()`` block (predict mode by default)."""
    return _scope(False, train_mode)


def train_mode() -> Any:
    """Training-mode behaviour of layers without changing recording."""
    return _scope(None, True)


def predict_mode() -> Any:
    """Predict-mode behaviour of layers without changing recording."""
    return _scope(None, False)


class Node:
    """One recorded operation (or a leaf variable) in the graph of a computation.

    ``parents[i]`` is ``(node, output_index)`` for the i-th positional input, or None where
    that input needs no gradient. Node ids increase with creation, so sorting by id
    descending is a topological order of any recorded graph.
    """

    __slots__ = ("id", "name", "vjp", "parents", "n_out", "leaf", "out_meta")

    def __init__(self, name: str, vjp: Callable | None, parents: tuple, n_out: int,
                 out_meta: tuple, leaf: "weakref.ref[NDArray] | None" = None):
        self.id = next(_ids)
        self.name = name
        self.vjp = vjp
        self.parents = parents
        self.n_out = n_out
        self.out_meta = out_meta  # ((shape, dtype), ...) per output, to make zero gradients
        self.leaf = leaf


def leaf_node(array: "NDArray") -> Node:
    """The graph node of a variable whose gradient is written to ``array.grad``."""
    return Node("variable", None, (), 1, ((array.shape, array.dtype),), weakref.ref(array))


def _collect(heads: Sequence[Node]) -> list[Node]:
    """Every node reachable from ``heads``, in reverse creation (topological) order."""
    seen: set[int] = set()
    stack = list(heads)
    nodes: list[Node] = []
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        nodes.append(node)
        for parent in node.parents:
            if parent is not None:
                stack.append(parent[0])
    nodes.sort(key=lambda n: n.id, reverse=True)
    return nodes


def _accumulate(grads: dict, node: Node, index: int, value: Any) -> None:
    slots = grads.get(node.id)
    if slots is None:
        slots = grads[node.id] = [None] * node.n_out
    if slots[index] is None:
        slots[index] = value
    else:
        with scope_of(value):  # on the gradient's device, which CuPy does not make current
            slots[index] = slots[index] + value


def graph_freed(name: str) -> AutogradError:
    """The error of a backward() through the node ``name`` that an earlier one freed."""
    return AutogradError(f"the graph through '{name}' was already freed by an earlier backward(); "
                         "pass retain_graph=True to the first backward() to differentiate twice")


def backward(heads: Sequence["NDArray"], head_grads: Sequence[Any] | None = None,
             retain_graph: bool = False, train_mode: bool = True) -> None:
    """Accumulate d(heads)/d(variable) into every variable's ``.grad``.

    A head without a head gradient gets ones, as in MXNet. The graph is freed afterwards
    unless ``retain_graph`` is set.
    """
    _propagate(heads, head_grads, retain_graph, train_mode, None)


def grad(heads: "NDArray | Sequence[NDArray]", variables: "NDArray | Sequence[NDArray]",
         head_grads: Sequence[Any] | None = None, retain_graph: bool | None = None,
         create_graph: bool = False, train_mode: bool = True) -> list["NDArray"]:
    """Gradients of ``heads`` w.r.t. ``variables``, returned without touching any ``.grad``.

    ``variables`` may be variables (attach_grad) or intermediate results of the recording.
    """
    from .ndarray import NDArray

    if create_graph:
        raise NotImplementedError(
            "create_graph=True (higher-order gradients) is not supported: backward passes are "
            "not recorded; compute second derivatives by finite differences of autograd.grad")
    heads = [heads] if isinstance(heads, NDArray) else list(heads)
    variables = [variables] if isinstance(variables, NDArray) else list(variables)
    for v in variables:
        if v._node is None:
            raise AutogradError(f"a variable of shape {v.shape} is not part of the recorded graph; "
                                "call attach_grad() on it before autograd.record()")
    wanted = {(v._node.id, v._index) for v in variables}
    captured = _propagate(heads, head_grads, bool(retain_graph), train_mode, wanted)
    return [NDArray(captured[(v._node.id, v._index)], v._ctx) if (v._node.id, v._index) in captured
            else NDArray(v._ctx.xp.zeros(v.shape, dtype=v.dtype), v._ctx) for v in variables]


def _propagate(heads: Sequence["NDArray"], head_grads: Sequence[Any] | None, retain_graph: bool,
               train_mode: bool, wanted: set | None) -> dict:
    """The reverse sweep. With ``wanted`` it returns those (node id, output) gradients and
    leaves ``.grad`` alone; without, it writes every variable's ``.grad``."""
    if head_grads is None:
        head_grads = [None] * len(heads)
    if len(head_grads) != len(heads):
        raise AutogradError(f"got {len(heads)} heads but {len(head_grads)} head gradients")
    grads: dict[int, list] = {}
    captured: dict[tuple, Any] = {}
    roots = []
    xp = heads[0]._ctx.xp if heads else None
    for head, hg in zip(heads, head_grads):
        with device_scope(head._ctx):
            _seed_head(grads, head, hg, xp)
        roots.append(head._node)


    retained, _state.retain_graph = _state.retain_graph, retain_graph
    try:
        with _scope(False, train_mode):
            _sweep(_collect(roots), grads, captured, wanted, retain_graph, xp)
    finally:
        _state.retain_graph = retained
    return captured


def _seed_head(grads: dict, head: "NDArray", hg: Any, xp: Any) -> None:
    """Put ``head``'s gradient (``hg``, ones by default) in ``grads``."""
    from .ndarray import NDArray  # circular at import time only

    if head._node is None:
        raise AutogradError(
            f"cannot differentiate an array of shape {head.shape} that was not computed "
            "under autograd.record() from an array with attach_grad(); wrap the "
            "computation in `with autograd.record():`")
    if hg is None:
        scale = 1.0 if _state.head_scale is None else _state.head_scale()
        g = xp.full(head.shape, scale, dtype=head.dtype)
    else:
        g = hg._data if isinstance(hg, NDArray) else xp.asarray(hg, dtype=head.dtype)
        if g.shape != head.shape:
            raise AutogradError(
                f"head gradient has shape {g.shape} but its head has shape {head.shape}")
    _accumulate(grads, head._node, head._index, g)


def _sweep(nodes: list[Node], grads: dict, captured: dict, wanted: set | None,
           retain_graph: bool, xp: Any) -> None:
    """Run the vjps of ``nodes`` (in topological order) on the gradients in ``grads``."""
    for node in nodes:
        slots = grads.pop(node.id, None)
        if slots is None:
            continue
        if wanted is not None:
            for index, g in enumerate(slots):
                if (node.id, index) in wanted and g is not None:
                    captured[(node.id, index)] = g
        if node.leaf is not None:
            array = node.leaf()
            if array is not None and wanted is None:
                with scope_of(slots[0]):
                    array._write_grad(slots[0])
            continue
        if node.vjp is None:
            raise graph_freed(node.name)
        with scope_of(next(g for g in slots if g is not None)):  # the node's device is current
            if node.n_out == 1:
                in_grads = node.vjp(slots[0])
            else:
                in_grads = node.vjp(tuple(
                    xp.zeros(shape, dtype) if g is None else g
                    for g, (shape, dtype) in zip(slots, node.out_meta)))
        for parent, g in zip(node.parents, in_grads):
            if parent is not None and g is not None:
                _accumulate(grads, parent[0], parent[1], g)
        if not retain_graph:
            node.vjp = None
            node.parents = ()
