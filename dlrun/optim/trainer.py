"""Trainer: applies an optimizer to a set of parameters (Gluon's Trainer)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Iterable, Mapping

import numpy as np

from ..engine import NDArray
from ..engine.backend import device_scope
from ..nn.parameter import Parameter
from .checks import check_range
from .optimizer import Optimizer, create

_META = "__meta__"
_FORMAT = 1


def _host(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.get()  # CuPy arrays copy to the host with get()


def global_norm(arrays: Iterable[Any]) -> float:
    """The L2 norm of all ``arrays`` (NDArrays or raw xp arrays) together, accumulated in float64."""
    partial: dict[Any, Any] = {}  # per device, summed there: one host sync per device
    for a in arrays:
        x = a._data if isinstance(a, NDArray) else a
        x = x.astype("float64", copy=False).ravel()
        key = getattr(getattr(x, "device", None), "id", "host")
        partial[key] = partial.get(key, 0.0) + x @ x
    return math.sqrt(sum(float(v) for v in partial.values()))


def clip_global_norm(arrays: Iterable[Any], max_norm: float, scale: float = 1.0) -> float:
    """Rescale ``arrays`` in place so that the global L2 norm of ``scale * arrays`` is at most
    ``max_norm``; return that norm before clipping (as Gluon's ``utils.clip_global_norm``).

    A NaN or infinite norm leaves the arrays untouched (scaling would spread the NaN/inf to
    every entry); the caller sees the non-finite norm and decides (skip the step, stop).
    """
    arrays = list(arrays)
    max_norm = check_range("clip_global_norm", "max_norm", max_norm, 0, low_open=True)
    norm = scale * global_norm(arrays)
    if math.isfinite(norm) and norm > max_norm:
        factor = max_norm / norm
        for a in arrays:
            x = a._data if isinstance(a, NDArray) else a
            x *= factor
    return norm


def _reducer(kvstore: Any, params: list[Parameter], bucket_bytes: int | None) -> Any:
    """The gradient reducer ``kvstore`` asks for (None: one process, nothing to reduce)."""
    if kvstore is None or kvstore in ("local", "device"):
        return None
    from ..parallel import GradientReducer, current
    from ..parallel.kvstore import KVStore, create
    from ..parallel.reducer import BUCKET_BYTES

    store = kvstore if isinstance(kvstore, KVStore) else create(str(kvstore))
    if store.num_workers == 1 or store.type in ("local", "device"):
        return None
    return GradientReducer(params, current(), bucket_bytes or BUCKET_BYTES)


def _sum_copies(p: Parameter) -> None:
    """Every copy of a parameter held on several contexts gets the sum of their gradients."""
    copies = p.list_data()
    if len(copies) > 1:
        total = copies[0].grad.copy()
        for other in copies[1:]:
            total += other.grad.as_in_context(total.ctx)
        for data in copies:
            data.grad[...] = total


class Trainer:
    """``Trainer(params, 'sgd', {'learning_rate': 0.1})`` or ``Trainer(params, optimizer_object)``.

    ``step(batch_size)`` = ``allreduce_grads()`` then ``update(batch_size)``: gradients are
    rescaled by 1/batch_size (losses are summed over the batch by backward) and every
    parameter whose grad_req is not 'null' is updated.

    ``kvstore`` picks how gradients are combined across the processes of a data-parallel job
    (``dlrun.parallel``): None, 'local' or 'device' for one process; 'dist_sync', 'nccl' (or
    a KVStore of those kinds) to sum them over every rank of the MPI job, in large buckets
    (NCCL for GPU arrays, MPI for host arrays). Then ``step(batch_size)`` takes this rank's
    batch size and rescales by the batch summed over the ranks, so that W workers of batch B
    take the step one worker of batch W*B would. Rank 0's parameters are broadcast to all
    ranks when the trainer is created (or, for parameters whose shapes are still deferred,
    at ``broadcast_params()`` or the first step). ``bucket_bytes`` sizes the flat buffers
    gradients are reduced in (default 25 MiB).

    ``clip_global_norm=c`` clips the global L2 norm of all gradients, *after* the 1/batch_size
    rescaling, to c (so c = 5 means what papers mean by gradient-norm clipping 5). ``step`` and
    ``update`` then return the norm before clipping (None without clipping); when that norm
    is NaN or infinite the update is skipped, leaving weights and optimizer state as they
    were, and the caller decides what to do (the runner reports divergence).
    """

    def __init__(self, params: Mapping[str, Parameter] | Iterable[Parameter],
                 optimizer: str | Optimizer, optimizer_params: dict | None = None,
                 kvstore: Any = None, clip_global_norm: float | None = None,
                 bucket_bytes: int | None = None):
        self._params = list(params.values() if isinstance(params, Mapping) else params)
        for p in self._params:
            if not isinstance(p, Parameter):
                raise TypeError(f"Trainer needs Parameters (net.collect_params()), got {type(p).__name__}")
        if isinstance(optimizer, Optimizer):
            if optimizer_params:
                raise ValueError("optimizer_params must be empty when optimizer is an Optimizer instance")
            self._optimizer = optimizer
        else:
            self._optimizer = create(optimizer, **(optimizer_params or {}))
        self._optimizer.param_dict = dict(enumerate(self._params))
        self._scale = self._optimizer.rescale_grad
        self.clip_global_norm = (None if clip_global_norm is None else check_range(
            "Trainer", "clip_global_norm", clip_global_norm, 0, low_open=True))
        self._states: dict[int, Any] = {}
        self._reducer = _reducer(kvstore, self._params, bucket_bytes)
        self._amp_loss_scaler: Any = None  # dlrun.contrib.amp.init_trainer: dynamic loss scaling
        self._synced = False
        if self._reducer is not None and all(p._data is not None for p in self._params):
            self.broadcast_params()

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    @property
    def learning_rate(self) -> float:
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr: float) -> None:
        self._optimizer.set_learning_rate(lr)

    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> float | None:
        """Reduce gradients (across contexts and workers) and update the parameters."""
        return self.update(self.allreduce_grads(batch_size), ignore_stale_grad)

    def allreduce_grads(self, batch_size: int | None = None) -> int | None:
        """Sum gradients across the contexts of a parameter (every copy then holds the sum,
        as Gluon's) and across workers (a single process has none); with ``batch_size``
        (this rank's), return the batch size summed over the workers."""
        for _, p in self._trainable():
            _sum_copies(p)
        if self._reducer is None:
            return batch_size
        if not self._synced:
            self.broadcast_params()
        total = self._reducer.allreduce([] if batch_size is None else [batch_size])
        return None if batch_size is None else int(round(total[0]))

    def broadcast_params(self) -> None:
        """Give every rank of a data-parallel job rank 0's parameter values (nothing to do in
        one process). Call it once the parameters have their shapes."""
        if self._reducer is not None:
            self._reducer.broadcast_params()
            self._synced = True

    def _trainable(self) -> list[tuple[int, Parameter]]:
        return [(i, p) for i, p in enumerate(self._params) if p.grad_req != "null"]

    def _fresh(self, ignore_stale_grad: bool) -> list[tuple[int, Parameter]]:
        """The trainable parameters whose gradients a backward wrote since the last update;
        a stale one raises, as in Gluon, unless ``ignore_stale_grad`` (then it is skipped)."""
        fresh = []
        for i, p in self._trainable():
            stale = [d.ctx for d in p.list_data() if not d._fresh_grad]
            if stale and not ignore_stale_grad:
                raise UserWarning(
                    f"the gradient of parameter '{p.name}' on {stale[0]} has not been updated by "
                    "backward since the last step: the model used only some of its parameters "
                    "(or step ran twice); if that is intended, call step(batch_size, "
                    "ignore_stale_grad=True) to skip the parameters with stale gradients")
            if not stale:
                fresh.append((i, p))
        return fresh

    def update(self, batch_size: int | None = None, ignore_stale_grad: bool = False) -> float | None:
        """Apply the optimizer to every trainable parameter with a fresh gradient (see the
        class for the return value and ``step`` for stale gradients)."""
        scale = self._scale if batch_size is None else self._scale / batch_size
        norm = None
        trainable = self._fresh(ignore_stale_grad)
        if self._amp_loss_scaler is not None:  # mixed precision: unscale, skip an overflow
            scale /= self._amp_loss_scaler.loss_scale
            overflow = self._amp_loss_scaler.has_overflow([p.list_data()[0].grad for _, p in trainable])
            self._amp_loss_scaler.update_scale(overflow)
            if overflow:
                self._consume(trainable)
                return None
        if self.clip_global_norm is not None:
            norm = scale * global_norm(p.list_data()[0].grad for _, p in trainable)
            if not math.isfinite(norm):
                return norm
            if norm > self.clip_global_norm:
                scale *= self.clip_global_norm / norm
        self._optimizer.rescale_grad = scale
        for i, p in trainable:
            weight, *copies = p.list_data()
            if i not in self._states:
                self._states[i] = self._optimizer.create_state(i, weight)
            self._optimizer.update(i, weight, weight.grad, self._states[i])
            for copy in copies:
                copy[...] = weight
        self._consume(trainable)
        return norm

    @staticmethod
    def _consume(trainable: list[tuple[int, Parameter]]) -> None:
        """The gradients of ``trainable`` are used: stale until the next backward."""
        for _, p in trainable:
            for data in p.list_data():
                data._fresh_grad = False

    # ---- optimizer state: arrays in .npz, scalars in JSON, no pickle ----
    def state_dict(self) -> dict[str, np.ndarray]:
        """The optimizer state as named host arrays: ``'<index>.<slot>'`` for each parameter's
        state arrays, and ``'__meta__'`` a JSON string with the update counts, the learning
        rate, the schedule's state and each state's layout. Arrays of parameters not yet
        updated are absent (they start from zeros on their first update)."""
        out: dict[str, np.ndarray] = {}
        layouts = {}
        for i, state in sorted(self._states.items()):
            layout, arrays = Optimizer.flatten_state(state)
            layouts[str(i)] = layout
            for k, a in enumerate(arrays):
                out[f"{i}.{k}"] = _host(a)
        meta = {"format": _FORMAT, "optimizer": self._optimizer.scalar_state(), "layouts": layouts,
                "num_params": len(self._params)}
        if self._amp_loss_scaler is not None:
            meta["amp"] = self._amp_loss_scaler.state()
        out[_META] = np.array(json.dumps(meta))
        return out

    def load_state_dict(self, saved: Mapping[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` gave (parameters must have their values already)."""
        if _META not in saved:
            raise ValueError("not a dlrun optimizer state: the '__meta__' entry is missing")
        meta = json.loads(str(saved[_META]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"optimizer state format {meta.get('format')} is not {_FORMAT}")
        if meta["num_params"] != len(self._params):
            raise ValueError(f"the saved optimizer state is for {meta['num_params']} parameters, "
                             f"this trainer has {len(self._params)}")
        self._optimizer.check_scalar_state(meta["optimizer"])
        states = {}
        for key, layout in meta["layouts"].items():
            i = int(key)
            weight = self._params[i].list_data()[0]
            state = self._optimizer.create_state(i, weight)
            n = len(Optimizer.flatten_state(state)[1])
            arrays = [saved[f"{i}.{k}"] for k in range(n) if f"{i}.{k}" in saved]
            with device_scope(weight.ctx):
                Optimizer.load_state(state, layout, arrays, where=f"parameter {i} ({self._params[i].name})")
            states[i] = state
        self._optimizer.load_scalar_state(meta["optimizer"])
        self._states = states
        if "amp" in meta and self._amp_loss_scaler is not None:
            self._amp_loss_scaler.load_state(meta["amp"])

    def save_states(self, fname: str | os.PathLike) -> None:
        """Write the optimizer state to ``fname`` (.npz, no pickle), atomically."""
        fname = os.fspath(fname)
        folder = os.path.dirname(os.path.abspath(fname))
        fd, tmp = tempfile.mkstemp(prefix=".states-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.state_dict())
            os.replace(tmp, fname)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load_states(self, fname: str | os.PathLike) -> None:
        """Load what ``save_states`` wrote; the continued training equals the uninterrupted one."""
        with np.load(os.fspath(fname), allow_pickle=False) as f:
            self.load_state_dict({k: f[k] for k in f.files})
