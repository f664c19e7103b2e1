"""The op test harness: a test file declares OpCases; ``op_tests`` makes the three checks
(forward against NumPy or a loop reference, float64 finite-difference gradients, GPU against
CPU where a GPU is present)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from dlrun.engine import array, autograd, cpu
from tests.contexts import GPU_SKIP_REASON, HAS_GPU
from tests.gradcheck import check_gradients


# ---- input generators: random, never all-zero, away from kinks where the op has one ----
def normal(rng, shape):
    return rng.normal(size=shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(rng, shape):
    x = rng.normal(size=shape)
    return x + np.sign(x) * 0.2


def labels(n_classes):
    def gen(rng, shape):
        return rng.integers(0, n_classes, size=shape)
    return gen


# ---- loop references for convolution and pooling ----
def conv_loops(x, w, b=None, stride=1, pad=0, dilation=1, groups=1):
    nd = w.ndim - 2
    stride, pad, dilation = ((v,) * nd if isinstance(v, int) else v for v in (stride, pad, dilation))
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    K = w.shape[2:]
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out = [(x.shape[2 + i] + 2 * pad[i] - dilation[i] * (K[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((N, O, *out))
    og = O // groups
    for n, o in itertools.product(range(N), range(O)):
        g = o // og
        for pos in itertools.product(*(range(m) for m in out)):
            acc = 0.0
            for c in range(Cg):
                for k in itertools.product(*(range(m) for m in K)):
                    idx = tuple(pos[i] * stride[i] + k[i] * dilation[i] for i in range(nd))
                    acc += w[(o, c) + k] * xpad[(n, g * Cg + c) + idx]
            y[(n, o) + pos] = acc + (0 if b is None else b[o])
    return y


def pool_loops(x, kernel, stride=None, pad=0, pool_type="max", ceil_mode=False, count_include_pad=True):
    nd = x.ndim - 2
    kernel = (kernel,) * nd if isinstance(kernel, int) else kernel
    stride = kernel if stride is None else ((stride,) * nd if isinstance(stride, int) else stride)
    pad = (pad,) * nd if isinstance(pad, int) else pad
    S = x.shape[2:]
    rnd = np.ceil if ceil_mode else np.floor
    out = [int(rnd((S[i] + 2 * pad[i] - kernel[i]) / stride[i])) + 1 for i in range(nd)]
    y = np.zeros(x.shape[:2] + tuple(out))
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*(range(m) for m in out)):
            vals, count = [], 0
            for k in itertools.product(*(range(m) for m in kernel)):
                idx = tuple(pos[i] * stride[i] + k[i] - pad[i] for i in range(nd))
                inside = all(0 <= idx[i] < S[i] for i in range(nd))
                in_padded = all(-pad[i] <= idx[i] < S[i] + pad[i] for i in range(nd))
                if inside:
                    vals.append(x[(n, c) + idx])
                if inside or (count_include_pad and in_padded):
                    count += 1
            if pool_type == "max":
                y[(n, c) + pos] = max(vals)
            else:
                y[(n, c) + pos] = sum(vals) / count
    return y


def log_softmax_ref(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def pick_ref(x, index, axis=-1, keepdims=False):
    y = np.take_along_axis(x, np.expand_dims(index.astype(int), axis), axis=axis)
    return y if keepdims else y.squeeze(axis)


def fc_ref(x, w, b=None, flatten=True):
    x2 = x.reshape(x.shape[0], -1) if flatten else x
    return x2 @ w.T + (0 if b is None else b)


@dataclass
class OpCase:
    name: str
    fn: Callable[..., Any]
    shapes: list
    reference: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    gens: list | None = None  # one input generator per input (default: normal)
    wrt: list | None = None  # inputs to differentiate (default: all)
    tag: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}{'-' + self.tag if self.tag else ''}"

    def inputs(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        gens = self.gens or [normal] * len(self.shapes)
        return [g(rng, s) for g, s in zip(gens, self.shapes)]


def kw(fn, **fixed):
    return lambda *xs: fn(*xs, **fixed)


def op_tests(cases: list[OpCase]) -> tuple:
    """The forward, gradient and GPU tests over ``cases``, to assign to test_* names."""
    ids = [c.id for c in cases]

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_forward_matches_reference(case: OpCase):
        xs = case.inputs()
        got = case.fn(*[array(x, dtype=np.float64) for x in xs]).asnumpy()
        np.testing.assert_allclose(got, case.reference(*xs), rtol=1e-10, atol=1e-12)

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_gradient_matches_finite_differences(case: OpCase):
        check_gradients(case.fn, case.inputs(), cpu(), wrt=case.wrt)

    @pytest.mark.gpu
    @pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)
    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_gpu_matches_cpu(case: OpCase):
        from dlrun.engine import gpu
        xs = [x.astype(np.float32) if x.dtype.kind == "f" else x for x in case.inputs()]
        wrt = case.wrt if case.wrt is not None else range(len(xs))
        results = []
        for ctx in (cpu(), gpu(0)):
            arrays = [array(x, ctx=ctx) for x in xs]
            for i in wrt:
                arrays[i].attach_grad()
            with autograd.record():
                y = case.fn(*arrays)
            y.backward()
            results.append([y.asnumpy()] + [arrays[i].grad.asnumpy() for i in wrt])
        for c, g in zip(*results):
            np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)

    return test_forward_matches_reference, test_gradient_matches_finite_differences, test_gpu_matches_cpu
