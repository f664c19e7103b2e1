"""Automatic mixed precision, as Gluon's ``mxnet.contrib.amp``.

``amp.init()`` makes the compute-heavy ops (convolutions, dense layers, matrix products,
the LSTM) run in float16, casting their inputs, while the ops that need the range or the
precision (softmax, log-softmax, the losses, norms, sums and means, BatchNorm and LayerNorm
with their statistics) run in float32; the parameters stay float32 (the master weights: the
casts hand float32 gradients back to them, and the optimizer updates them in float32).
``amp.init_trainer(trainer)`` gives the trainer a dynamic loss scaler, and
``with amp.scale_loss(loss, trainer) as scaled: scaled.backward()`` backpropagates the loss
times the scale, so that small float16 gradients do not flush to zero. The trainer's step
divides the scale back out; a step whose gradients overflowed (inf/NaN) is skipped and the
scale halved; after ``scale_window`` good steps in a row the scale doubles. The scale is part
of the trainer's state (``state_dict``), so checkpoints and resume keep it.

    from dlrun.contrib import amp
    amp.init()
    net = ...; trainer = gluon.Trainer(net.collect_params(), 'sgd', {...})
    amp.init_trainer(trainer)
    with autograd.record():
        loss = loss_fn(net(x), y)
        with amp.scale_loss(loss, trainer) as scaled:
            autograd.backward(scaled)
    trainer.step(batch_size)
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

import numpy as np

from ..engine import NDArray, autograd, registry
from ..engine.ops import cast

FP16_OPS = frozenset({"convolution", "deconvolution", "fully_connected", "matmul", "dot",
                      "batch_dot", "tensordot", "lstm"})
FP32_OPS = frozenset({"softmax", "log_softmax", "softmax_cross_entropy", "logsumexp", "norm",
                      "layer_norm", "batch_norm", "sum", "mean", "prod", "cumsum", "exp", "log",
                      "log1p", "expm1", "power", "erf", "sigmoid"})
DTYPES = {"float16": np.float16, "fp16": np.float16, "bfloat16": "bfloat16", "bf16": "bfloat16"}


class AmpError(ValueError):
    """Mixed precision cannot be used as asked (the message says what to use instead)."""


def target_dtype(name: str, ctx: Any = None) -> Any:
    """The compute dtype of ``name`` ('float16'/'fp16', 'bfloat16'/'bf16') on ``ctx``."""
    if name not in DTYPES:
        raise AmpError(f"mixed precision target {name!r} is not one of {sorted(DTYPES)}")
    if DTYPES[name] != "bfloat16":
        return np.dtype(DTYPES[name])
    where = "on the CPU" if ctx is None or ctx.device_type == "cpu" else "with CuPy"
    raise AmpError(f"bfloat16 mixed precision is not available {where}: NumPy and CuPy have no "
                   "bfloat16 arrays; use float16 (trainer.amp=fp16, amp.init('float16'))")


def _to_half(x: NDArray, dtype: np.dtype) -> NDArray:
    """``x`` in ``dtype`` for an FP16 op. On the CPU, ``x`` rounded to ``dtype`` and back:
    NumPy's float16 matrix products have no BLAS (80 times slower than float32), so there the
    inputs and gradients of the FP16 ops are held in float16 precision (and overflow as
    float16 does) but multiplied in float32, as a GPU's tensor cores accumulate."""
    half = cast(x, dtype=dtype)
    return cast(half, dtype=np.float32) if x.ctx.device_type == "cpu" else half


def _caster(dtype: np.dtype) -> Any:
    f32 = np.dtype(np.float32)

    def cast_inputs(op: Any, inputs: tuple) -> tuple:
        if op.name in FP16_OPS:
            return tuple(_to_half(x, dtype) if isinstance(x, NDArray) and x.dtype.kind == "f"
                         and x.dtype != dtype else x for x in inputs)
        if op.name in FP32_OPS:
            return tuple(cast(x, dtype=f32) if isinstance(x, NDArray) and x.dtype.kind == "f"
                         and x.dtype.itemsize < 4 else x for x in inputs)
        return inputs
    return cast_inputs


def init(target_dtype_name: str = "float16") -> None:
    """Run the ops of ``FP16_OPS`` in ``target_dtype_name`` and those of ``FP32_OPS`` in float32."""
    registry.autocast = _caster(target_dtype(target_dtype_name))


def shutdown() -> None:
    """Turn the op casts of :func:`init` off (every op in its inputs' dtype again)."""
    registry.autocast = None


def is_enabled() -> bool:
    return registry.autocast is not None


class LossScaler:
    """Dynamic loss scaling: overflow halves the scale (the step is skipped), ``scale_window``
    good steps in a row double it."""

    def __init__(self, init_scale: float = 2.0 ** 16, scale_factor: float = 2.0,
                 scale_window: int = 2000, min_scale: float = 1.0):
        self.loss_scale = float(init_scale)
        self.scale_factor, self.scale_window, self.min_scale = float(scale_factor), int(scale_window), float(min_scale)
        self.good_steps = 0
        self.skipped = 0

    def has_overflow(self, grads: Sequence[Any]) -> bool:
        """Whether any of ``grads`` holds an inf or NaN (one host read per device)."""
        from ..optim.trainer import global_norm
        return not math.isfinite(global_norm(grads))

    def update_scale(self, overflow: bool) -> None:
        if overflow:
            self.loss_scale = max(self.loss_scale / self.scale_factor, self.min_scale)
            self.good_steps = 0
            self.skipped += 1
        else:
            self.good_steps += 1
            if self.good_steps >= self.scale_window:
                self.loss_scale *= self.scale_factor
                self.good_steps = 0

    def state(self) -> dict:
        return {"loss_scale": self.loss_scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state(self, state: dict) -> None:
        self.loss_scale = float(state["loss_scale"])
        self.good_steps, self.skipped = int(state["good_steps"]), int(state.get("skipped", 0))


def init_trainer(trainer: Any, **scaler_args: Any) -> LossScaler:
    """Give ``trainer`` a dynamic loss scaler (``LossScaler(**scaler_args)``); returns it."""
    trainer._amp_loss_scaler = LossScaler(**scaler_args)
    return trainer._amp_loss_scaler


@contextlib.contextmanager
def scale_loss(loss: NDArray | list, trainer: Any) -> Iterator[Any]:
    """``loss`` (or a list of losses) times the trainer's loss scale, to backpropagate."""
    scaler = getattr(trainer, "_amp_loss_scaler", None)
    if scaler is None:
        raise AmpError("scale_loss needs a trainer with a loss scaler: call "
                       "amp.init_trainer(trainer) first")
    scale = scaler.loss_scale
    yield [x * scale for x in loss] if isinstance(loss, (list, tuple)) else loss * scale


@contextlib.contextmanager
def implicit_scaling(trainer: Any) -> Iterator[None]:
    """Every ``backward()`` of the block seeds its head with the trainer's loss scale instead
    of ones (the runner's ``trainer.amp``: the tasks call ``loss.backward()`` as they are)."""
    scaler = trainer._amp_loss_scaler
    previous = autograd.set_head_scale(lambda: scaler.loss_scale)
    try:
        yield
    finally:
        autograd.set_head_scale(previous)


def enable(trainer: Any, mode: str, ctx: Any) -> LossScaler:
    """The runner's ``trainer.amp=MODE`` ('fp16'; 'bf16' is refused) for the run's one
    ``trainer`` on ``ctx``: the op casts on, a loss scaler, and every ``backward()`` seeded
    with its scale (the tasks call ``loss.backward()`` as they are)."""
    if autograd._state.head_scale is not None:
        raise AmpError(f"trainer.amp={mode} works with the one trainer of a run; this task builds "
                       "several (a GAN's generator and discriminator): use trainer.amp=none")
    target_dtype(mode, ctx)
    init(mode)
    scaler = init_trainer(trainer)
    autograd.set_head_scale(lambda: scaler.loss_scale)
    return scaler


__all__ = ["AmpError", "enable", "FP16_OPS", "FP32_OPS", "LossScaler", "implicit_scaling", "init",
           "init_trainer", "is_enabled", "scale_loss", "shutdown", "target_dtype"]
