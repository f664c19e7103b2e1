"""Parameter: a named weight with deferred shape inference, its gradient and update settings."""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import numpy as np

from ..engine import NDArray, current_context
from ..engine.backend import Context
from ..engine.ndarray import GRAD_REQS, array
from . import init as _init


class DeferredInitializationError(RuntimeError):
    """A parameter's shape is still unknown: run one forward pass first."""


class Parameter:
    """A trainable (or ``grad_req='null'``) array of a block.

    A 0 in ``shape`` marks a dimension that the first forward pass infers. Initialized with
    a list of contexts (``ctx=[cpu(0), cpu(1)]``, as Gluon's multi-device training), it holds
    one copy per context: ``data(ctx)`` is that context's copy (the input's, inside a block's
    forward), ``list_data()``/``list_grad()`` all of them; a Trainer sums their gradients and
    writes the same update to every copy.
    """

    def __init__(self, name: str = "weight", grad_req: str = "write", shape: Any = None,
                 dtype: Any = np.float32, lr_mult: float = 1.0, wd_mult: float = 1.0,
                 init: Any = None, allow_deferred_init: bool = True, differentiable: bool = True):
        if grad_req not in GRAD_REQS:
            raise ValueError(f"grad_req must be one of {GRAD_REQS}, got {grad_req!r}")
        self.name = name
        self._shape = None if shape is None else tuple(int(n) for n in (
            (shape,) if isinstance(shape, int) else shape))
        self.dtype = np.dtype(dtype)
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult
        self.init = _init.create(init)
        self.allow_deferred_init = allow_deferred_init
        self._grad_req = grad_req if differentiable else "null"
        self._data: NDArray | None = None  # the copy on the first context
        self._replicas: list[NDArray] = []  # the copies on the other contexts, in order
        # (initializer, contexts, structural name) until the values exist
        self._deferred: tuple | None = None

    def __repr__(self) -> str:
        return f"Parameter {self.name} (shape={self._shape}, dtype={self.dtype.name})"

    @property
    def shape(self) -> tuple | None:
        return self._shape

    @shape.setter
    def shape(self, new: tuple) -> None:
        new = tuple(int(n) for n in new)
        old = self._shape
        if old is not None and (len(old) != len(new) or any(
                o and n and o != n for o, n in zip(old, new))):
            raise ValueError(f"parameter '{self.name}' has shape {old}, which the input asks to "
                             f"change to {new}; check the layer's in_units/in_channels or the input shape")
        self._shape = new if old is None else tuple(o or n for o, n in zip(old, new))

    @property
    def grad_req(self) -> str:
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        if req not in GRAD_REQS:
            raise ValueError(f"grad_req must be one of {GRAD_REQS}, got {req!r}")
        self._grad_req = req
        for data in self._copies():
            data.attach_grad(req)

    def _shape_known(self) -> bool:
        return self._shape is not None and all(n > 0 for n in self._shape)

    def _copies(self) -> list[NDArray]:
        return [] if self._data is None else [self._data, *self._replicas]

    def initialize(self, init: Any = None, ctx: Context | list[Context] | None = None,
                   default_init: Any = None, force_reinit: bool = False, path: str | None = None) -> None:
        """Give the parameter values now, or at the first forward when its shape is unknown.

        Its own initializer (``init`` argument, else the one it was created with) is applied
        as is; otherwise ``default_init`` (Uniform) picks by ``path``, the structural name.
        ``ctx`` may be a list of contexts: one copy of the same values on each.
        """
        if self._data is not None and not force_reinit:
            warnings.warn(f"parameter '{path or self.name}' is already initialized; "
                          "pass force_reinit=True to initialize it again", stacklevel=2)
            return
        own = _init.create(init) or self.init
        chosen = own or _init.create(default_init) or _init.Uniform()
        contexts = _contexts(ctx)
        self._data, self._replicas = None, []
        self._deferred = (chosen, contexts, path or self.name)
        if self._shape_known():
            self._materialize()
        elif not self.allow_deferred_init:
            raise DeferredInitializationError(
                f"cannot initialize parameter '{path or self.name}' of unknown shape {self._shape}")

    def _materialize(self) -> None:
        chosen, contexts, path = self._deferred
        self._set(chosen(path, self._shape, self.dtype), contexts)
        self._deferred = None

    def _set(self, values: Any, contexts: list[Context]) -> None:
        copies = []
        for ctx in contexts:
            data = array(values, ctx=ctx, dtype=self.dtype)
            data.attach_grad(self._grad_req)
            copies.append(data)
        self._data, self._replicas = copies[0], copies[1:]

    def list_ctx(self) -> list[Context]:
        """The contexts holding a copy (those it will be initialized on, before that)."""
        if self._data is None:
            return list(self._deferred[1]) if self._deferred else []
        return [d.ctx for d in self._copies()]

    def list_data(self) -> list[NDArray]:
        """The copy on every context, in ``list_ctx()`` order."""
        self.data()
        return self._copies()

    def list_grad(self) -> list[NDArray]:
        """The gradient of every copy, in ``list_ctx()`` order."""
        return [self.grad(d.ctx) for d in self.list_data()]

    def data(self, ctx: Context | None = None) -> NDArray:
        """The parameter's array (finishing a deferred initialization once the shape is known):
        the copy on ``ctx``; without ``ctx``, the only copy, or the current context's."""
        if self._data is None:
            if self._deferred is None:
                raise RuntimeError(f"parameter '{self.name}' has not been initialized; "
                                   "call net.initialize() (or param.initialize()) first")
            if not self._shape_known():
                raise DeferredInitializationError(
                    f"parameter '{self.name}' has shape {self._shape} with unknown dimensions; "
                    "run a forward pass with real data before asking for its value")
            self._materialize()
        if ctx is None:
            if not self._replicas:
                return self._data
            ctx = current_context()
        for data in self._copies():
            if data.ctx == ctx:
                return data
        where = ", ".join(str(c) for c in self.list_ctx())
        raise RuntimeError(f"parameter '{self.name}' lives on {where}, not {ctx}; call "
                           f"net.reset_ctx({ctx}) or initialize with ctx={ctx}")

    def grad(self, ctx: Context | None = None) -> NDArray:
        """The gradient buffer of the parameter (of its copy on ``ctx``)."""
        data = self.data(ctx)
        if data.grad is None:
            raise RuntimeError(f"parameter '{self.name}' has grad_req='null' and no gradient")
        return data.grad

    def set_data(self, values: Any, ctx: Context | None = None) -> None:
        """Replace the values (shape must match; sets the shape if it was deferred).

        A parameter without values yet gets them on ``ctx`` (else its initialize() context).
        """
        values = values.asnumpy() if isinstance(values, NDArray) else np.asarray(values)
        self.shape = values.shape
        if tuple(values.shape) != self._shape:
            raise ValueError(f"parameter '{self.name}' has shape {self._shape}, "
                             f"cannot set values of shape {values.shape}")
        if self._data is not None:
            for data in self._copies():
                data[...] = values.astype(self.dtype)
            return
        self._set(values, _contexts(ctx) if ctx else (self._deferred[1] if self._deferred else
                                                      [current_context()]))
        self._deferred = None

    def cast(self, dtype: Any) -> None:
        """Convert the values (and future initialization) to ``dtype``."""
        self.dtype = np.dtype(dtype)
        if self._data is not None:
            self._set(self._data.asnumpy().astype(self.dtype), self.list_ctx())

    def reset_ctx(self, ctx: Context | list[Context]) -> None:
        """Move the values (or a pending initialization) to ``ctx`` (or a list of contexts)."""
        if self._data is not None:
            self._set(self._data.asnumpy(), _contexts(ctx))
        elif self._deferred is not None:
            self._deferred = (self._deferred[0], _contexts(ctx)) + self._deferred[2:]

    def zero_grad(self) -> None:
        """Set the gradient to zero (needed with grad_req='add')."""
        for data in self._copies():
            if data.grad is not None:
                data.grad[...] = 0


class Constant(Parameter):
    """A parameter that holds ``value`` and is never trained (``grad_req='null'``)."""

    def __init__(self, name: str, value: Any):
        value = value.asnumpy() if isinstance(value, NDArray) else np.asarray(value, np.float32)
        super().__init__(name, grad_req="null", shape=value.shape, dtype=value.dtype,
                         init=_init.Constant(value))

    def __repr__(self) -> str:
        return f"Constant {self.name} (shape={self._shape}, dtype={self.dtype.name})"


def _contexts(ctx: Context | list[Context] | tuple | None) -> list[Context]:
    """``ctx`` as a non-empty list of distinct contexts (the current context when None)."""
    contexts = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx or current_context()]
    if not contexts or len(set(contexts)) != len(contexts):
        raise ValueError(f"ctx must be a context or a list of distinct contexts, got {ctx!r}")
    return contexts


class ParameterDict(OrderedDict):
    """Structural name ('features.0.weight') -> Parameter, in registration order."""

    store: "ParameterDict | None" = None  # where get() keeps the parameters it makes

    def get(self, name: str, *default: Any, **kwargs: Any) -> Any:
        """Gluon's ``get(name, shape=..., init=...)``: the parameter ``name``, made with
        ``kwargs`` when there is none (``get(name, default)`` is the dict's lookup)."""
        if default or (name in self and not kwargs):
            return super().get(name, *default)
        if name in self:
            return self[name]
        param = self[name] = Parameter(name, **kwargs)
        if self.store is not None:
            self.store[name] = param
        return param

    def __repr__(self) -> str:
        return "\n".join(f"  {k}: {v}" for k, v in self.items()) or "{}"

    def initialize(self, init: Any = None, ctx: Context | list[Context] | None = None,
                   verbose: bool = False, force_reinit: bool = False) -> None:
        """Initialize every parameter, on ``ctx`` (a context or a list of them)."""
        for path, p in self.items():
            p.initialize(None, ctx, default_init=init, force_reinit=force_reinit, path=path)

    def zero_grad(self) -> None:
        for p in self.values():
            p.zero_grad()

    def reset_ctx(self, ctx: Context | list[Context]) -> None:
        for p in self.values():
            p.reset_ctx(ctx)

    def setattr(self, name: str, value: Any) -> None:
        """Set an attribute (lr_mult, wd_mult, grad_req) on every parameter."""
        for p in self.values():
            setattr(p, name, value)
