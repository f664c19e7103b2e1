"""Float64 central finite-difference checks of the engine's vector-Jacobian products."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dlrun.engine import NDArray, array, autograd


def numeric_vjp(f: Callable[..., np.ndarray], inputs: list[np.ndarray], head: np.ndarray,
                i: int, eps: float = 1e-6) -> np.ndarray:
    """d/d inputs[i] of sum(f(*inputs) * head), by central differences."""
    x = inputs[i]
    grad = np.zeros(x.shape)  # C order, so that the flat view below writes through
    flat = grad.reshape(-1)
    for j in range(x.size):
        old = x.flat[j]
        x.flat[j] = old + eps
        up = np.sum(f(*inputs) * head)
        x.flat[j] = old - eps
        down = np.sum(f(*inputs) * head)
        x.flat[j] = old
        flat[j] = (up - down) / (2 * eps)
    return grad


def check_gradients(fn: Callable[..., NDArray], inputs: list[np.ndarray], ctx: Any,
                    wrt: list[int] | None = None, rtol: float = 1e-5, atol: float = 1e-7,
                    seed: int = 0) -> None:
    """Assert that backward() through ``fn`` matches finite differences for every input in ``wrt``."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    wrt = list(range(len(inputs))) if wrt is None else wrt
    arrays = [array(a, ctx=ctx, dtype=np.float64) for a in inputs]
    for i in wrt:
        arrays[i].attach_grad()
    with autograd.record():
        out = fn(*arrays)
    head = np.random.default_rng(seed).normal(size=out.shape)
    out.backward(array(head, ctx=ctx, dtype=np.float64))

    def forward(*xs: np.ndarray) -> np.ndarray:
        return fn(*[array(x, ctx=ctx, dtype=np.float64) for x in xs]).asnumpy()

    for i in wrt:
        expected = numeric_vjp(forward, inputs, head, i)
        np.testing.assert_allclose(arrays[i].grad.asnumpy(), expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
