"""Block: the unit of a network. Children and parameters register by attribute assignment."""
from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from ..engine.backend import Context
from .parameter import Parameter, ParameterDict


class ParameterFileError(ValueError):
    """A parameter file does not fit the network it is loaded into."""


class Block:
    """Base class of layers and models (Gluon 2.0 style: define ``forward``).

    ``prefix`` and ``params`` of Gluon 1.x are accepted and ignored: parameter names are
    structural, e.g. ``features.0.weight``.
    """

    def __init__(self, prefix: str | None = None, params: Any = None):
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "_reg_params", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        children, params = self.__dict__.get("_children"), self.__dict__.get("_reg_params")
        if children is None:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before assigning attributes")
        children.pop(name, None)
        params.pop(name, None)
        if isinstance(value, Block):
            children[name] = value
        elif isinstance(value, Parameter):
            params[name] = value
        object.__setattr__(self, name, value)

    def name_scope(self) -> contextlib.AbstractContextManager:
        """Gluon 1.x naming scope; names are structural now, so this does nothing."""
        return contextlib.nullcontext()

    def register_child(self, block: "Block", name: str | None = None) -> "Block":
        """Add ``block`` as a child under ``name`` (its index by default)."""
        self._children[name or str(len(self._children))] = block
        return block

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """Every parameter of this block and its descendants, by structural name.

        ``select`` is a regular expression the names must match (``'.*weight'``).
        """
        out = ParameterDict()
        seen: set[int] = set()
        stack: list[tuple[str, Block]] = [("", self)]
        while stack:  # iterative pre-order walk: deep models do not hit the recursion limit
            prefix, block = stack.pop()
            for name, p in block._reg_params.items():
                if id(p) not in seen and (select is None or re.fullmatch(select, prefix + name)):
                    seen.add(id(p))
                    out[prefix + name] = p
            stack.extend((f"{prefix}{name}.", child)
                         for name, child in reversed(block._children.items()))
        return out

    def initialize(self, init: Any = None, ctx: Context | None = None, verbose: bool = False,
                   force_reinit: bool = False) -> None:
        """Initialize every parameter (on first use where shapes are inferred)."""
        self.collect_params().initialize(init, ctx, force_reinit=force_reinit)

    def zero_grad(self) -> None:
        self.collect_params().zero_grad()

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """Compile to a graph (not implemented yet: blocks keep running imperatively)."""
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    def apply(self, fn: Callable[["Block"], None]) -> "Block":
        """Call ``fn`` on every descendant and then on this block."""
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ---- persistence: .npz of structural names, never pickle ----
    def save_parameters(self, filename: str) -> None:
        """Write every parameter to ``filename`` (.npz), atomically."""
        arrays = {name: p.data().asnumpy() for name, p in self.collect_params().items()}
        tmp = f"{filename}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, filename)

    def load_parameters(self, filename: str, ctx: Context | None = None,
                        allow_missing: bool = False, ignore_extra: bool = False) -> None:
        """Load parameters saved by :meth:`save_parameters`; mismatches are listed in the error."""
        params = self.collect_params()
        try:
            with np.load(filename, allow_pickle=False) as f:
                loaded = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise ParameterFileError(f"cannot read parameter file {filename}: {e}") from None
        missing = [k for k in params if k not in loaded]
        extra = [k for k in loaded if k not in params]
        wrong = [f"{k}: file {loaded[k].shape} vs network {params[k].shape}" for k in params
                 if k in loaded and params[k].shape is not None and (
                     len(params[k].shape) != loaded[k].ndim or any(
                         n and n != m for n, m in zip(params[k].shape, loaded[k].shape)))]
        problems = []
        if missing and not allow_missing:
            problems.append(f"missing in the file: {', '.join(missing)} (pass allow_missing=True to skip)")
        if extra and not ignore_extra:
            problems.append(f"not in the network: {', '.join(extra)} (pass ignore_extra=True to skip)")
        if wrong:
            problems.append(f"shape mismatch: {'; '.join(wrong)}")
        if problems:
            raise ParameterFileError(f"{filename} does not fit {type(self).__name__}: " + " | ".join(problems))
        for name, p in params.items():
            if name in loaded:
                p.set_data(loaded[name], ctx)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)" if len(lines) > 1 else f"{type(self).__name__}({self._extra_repr()})"

    def _extra_repr(self) -> str:
        return ""


class HybridBlock(Block):
    """A block that ``hybridize()`` will be able to compile.

    Gluon 1.x code that defines ``hybrid_forward(self, F, x, ...)`` runs unchanged: ``F`` is
    the ``dlrun.nd`` namespace and the block's own parameters arrive as keyword arguments.
    """

    def forward(self, *args: Any) -> Any:
        if type(self).hybrid_forward is HybridBlock.hybrid_forward:
            raise NotImplementedError(f"{type(self).__name__} must define forward()")
        from .. import nd
        params = {name: p.data() for name, p in self._reg_params.items()}
        return self.hybrid_forward(nd, *args, **params)

    def hybrid_forward(self, F: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class Sequential(Block):
    """Children run one after another; ``add`` appends them (named 0, 1, ...)."""

    def add(self, *blocks: Block) -> None:
        for block in blocks:
            self.register_child(block)

    def forward(self, x: Any, *args: Any) -> Any:
        for block in self._children.values():
            x = block(x, *args)
            args = ()
        return x

    def __getitem__(self, index: int) -> Block:
        return list(self._children.values())[index]

    def __len__(self) -> int:
        return len(self._children)


class HybridSequential(Sequential, HybridBlock):
    """A Sequential of hybridizable blocks."""

    forward = Sequential.forward
