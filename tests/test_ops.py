"""Every differentiable op: forward against NumPy (or a loop reference), float64 gradient check,
and the GPU result against the CPU one where a GPU is present."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from dlrun.engine import NDArray, array, cpu, ops
from tests.contexts import CONTEXTS, GPU_SKIP_REASON, HAS_GPU
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


def _kw(fn, **fixed):
    return lambda *xs: fn(*xs, **fixed)


OPS = [
    # broadcasting arithmetic
    OpCase("add", ops.add, [(3, 4), (4,)], np.add, tag="bcast"),
    OpCase("add", ops.add, [(2, 1, 4), (3, 1)], np.add, tag="bcast2"),
    OpCase("subtract", ops.subtract, [(3, 4), (3, 1)], np.subtract),
    OpCase("multiply", ops.multiply, [(2, 3, 4), (1, 4)], np.multiply),
    OpCase("divide", ops.divide, [(3, 4), (4,)], np.divide, gens=[normal, positive]),
    OpCase("power", ops.power, [(3, 4), (3, 4)], np.power, gens=[positive, normal]),
    OpCase("power", lambda a: ops.power(a, 3), [(3, 4)], lambda a: a ** 3, tag="scalar"),
    OpCase("rpower", lambda a: ops.power(2.0, a), [(5,)], lambda a: 2.0 ** a),
    OpCase("negative", ops.negative, [(3, 4)], np.negative),
    OpCase("scalar_mix", lambda a: (2 - a) / 3 * a + 1, [(4, 2)], lambda a: (2 - a) / 3 * a + 1),
    # unary
    OpCase("exp", ops.exp, [(3, 4)], np.exp),
    OpCase("log", ops.log, [(3, 4)], np.log, gens=[positive]),
    OpCase("sqrt", ops.sqrt, [(3, 4)], np.sqrt, gens=[positive]),
    OpCase("square", ops.square, [(3, 4)], np.square),
    OpCase("abs", ops.abs, [(3, 4)], np.abs, gens=[away_from_zero]),
    OpCase("tanh", ops.tanh, [(3, 4)], np.tanh),
    OpCase("sigmoid", ops.sigmoid, [(3, 4)], lambda x: 1 / (1 + np.exp(-x))),
    OpCase("relu", ops.relu, [(3, 4)], lambda x: np.maximum(x, 0), gens=[away_from_zero]),
    # reductions
    OpCase("sum", ops.sum, [(3, 4, 2)], np.sum, tag="all"),
    OpCase("sum", _kw(ops.sum, axis=1), [(3, 4, 2)], lambda x: x.sum(axis=1), tag="axis"),
    OpCase("sum", _kw(ops.sum, axis=(0, 2), keepdims=True), [(3, 4, 2)],
           lambda x: x.sum(axis=(0, 2), keepdims=True), tag="keepdims"),
    OpCase("mean", _kw(ops.mean, axis=-1), [(3, 4)], lambda x: x.mean(axis=-1)),
    OpCase("max", _kw(ops.max, axis=1), [(3, 5)], lambda x: x.max(axis=1)),
    OpCase("max", ops.max, [(3, 5)], np.max, tag="all"),
    OpCase("min", _kw(ops.min, axis=0, keepdims=True), [(3, 5)], lambda x: x.min(axis=0, keepdims=True)),
    OpCase("norm", ops.norm, [(3, 4)], np.linalg.norm, tag="l2"),
    OpCase("norm", _kw(ops.norm, ord=1, axis=1), [(3, 4)], lambda x: np.abs(x).sum(axis=1),
           gens=[away_from_zero], tag="l1"),
    # linear algebra
    OpCase("matmul", ops.matmul, [(3, 4), (4, 5)], np.matmul),
    OpCase("matmul", ops.matmul, [(2, 3, 4), (4, 5)], np.matmul, tag="batch-bcast"),
    OpCase("matmul", ops.matmul, [(2, 1, 3, 4), (5, 4, 2)], np.matmul, tag="batch-bcast2"),
    OpCase("matmul", ops.matmul, [(4,), (4, 3)], np.matmul, tag="vec-mat"),
    OpCase("matmul", ops.matmul, [(2, 3, 4), (4,)], np.matmul, tag="mat-vec"),
    OpCase("fully_connected", ops.fully_connected, [(4, 2, 3), (5, 6), (5,)], fc_ref),
    OpCase("fully_connected", _kw(ops.fully_connected, flatten=False), [(4, 2, 3), (5, 3)],
           lambda x, w: fc_ref(x, w, flatten=False), tag="noflatten"),
    # shape
    OpCase("reshape", _kw(ops.reshape, shape=(0, -1)), [(2, 3, 4)], lambda x: x.reshape(2, 12)),
    OpCase("transpose", _kw(ops.transpose, axes=(2, 0, 1)), [(2, 3, 4)], lambda x: x.transpose(2, 0, 1)),
    OpCase("transpose", ops.transpose, [(2, 3)], np.transpose, tag="default"),
    OpCase("flatten", ops.flatten, [(2, 3, 4)], lambda x: x.reshape(2, -1)),
    OpCase("getitem", _kw(ops.getitem, key=(slice(None, None, -2), slice(1, -1))), [(5, 4)],
           lambda x: x[::-2, 1:-1], tag="slices"),
    OpCase("getitem", _kw(ops.getitem, key=(np.array([0, 2, 0]),)), [(3, 4)],
           lambda x: x[np.array([0, 2, 0])], tag="gather-repeats"),
    # neural
    OpCase("log_softmax", ops.log_softmax, [(3, 5)], log_softmax_ref),
    OpCase("log_softmax", _kw(ops.log_softmax, axis=0), [(3, 5)], lambda x: log_softmax_ref(x, 0), tag="axis0"),
    OpCase("softmax", _kw(ops.softmax, axis=1), [(2, 4, 3)], lambda x: np.exp(log_softmax_ref(x, 1))),
    OpCase("pick", ops.pick, [(4, 5), (4,)], pick_ref, gens=[normal, labels(5)], wrt=[0]),
    OpCase("pick", _kw(ops.pick, axis=1, keepdims=True), [(2, 3, 4), (2, 4)],
           lambda x, i: pick_ref(x, i, 1, True), gens=[normal, labels(3)], wrt=[0], tag="axis1"),
    OpCase("convolution", _kw(ops.convolution, stride=2, pad=1), [(2, 3, 7, 7), (4, 3, 3, 3), (4,)],
           lambda x, w, b: conv_loops(x, w, b, stride=2, pad=1), tag="2d"),
    OpCase("convolution", _kw(ops.convolution, dilation=2, groups=2), [(1, 4, 7, 6), (6, 2, 2, 3)],
           lambda x, w: conv_loops(x, w, dilation=2, groups=2), tag="2d-dilated-grouped"),
    OpCase("convolution", _kw(ops.convolution, stride=2, pad=2), [(2, 2, 9), (3, 2, 4), (3,)],
           lambda x, w, b: conv_loops(x, w, b, stride=2, pad=2), tag="1d"),
    OpCase("convolution", _kw(ops.convolution, pad=(1, 0, 1)), [(1, 2, 4, 3, 4), (2, 2, 2, 2, 3)],
           lambda x, w: conv_loops(x, w, pad=(1, 0, 1)), tag="3d"),
    OpCase("pooling", _kw(ops.pooling, kernel=2), [(2, 3, 6, 6)], lambda x: pool_loops(x, 2), tag="max2d"),
    OpCase("pooling", _kw(ops.pooling, kernel=3, stride=2, pad=1), [(1, 2, 7, 6)],
           lambda x: pool_loops(x, 3, 2, 1), tag="max2d-overlap-pad"),
    OpCase("pooling", _kw(ops.pooling, kernel=3, stride=2, ceil_mode=True), [(1, 2, 8, 8)],
           lambda x: pool_loops(x, 3, 2, 0, ceil_mode=True), tag="max2d-ceil"),
    OpCase("pooling", _kw(ops.pooling, kernel=2, pool_type="avg"), [(2, 3, 6, 4)],
           lambda x: pool_loops(x, 2, pool_type="avg"), tag="avg2d"),
    OpCase("pooling", _kw(ops.pooling, kernel=3, stride=2, pad=1, pool_type="avg", count_include_pad=False),
           [(1, 2, 7, 6)], lambda x: pool_loops(x, 3, 2, 1, "avg", count_include_pad=False),
           tag="avg2d-exclude-pad"),
    OpCase("pooling", _kw(ops.pooling, kernel=3, stride=2, pad=1, pool_type="avg", ceil_mode=True),
           [(1, 1, 8, 8)], lambda x: pool_loops(x, 3, 2, 1, "avg", ceil_mode=True), tag="avg2d-ceil"),
    OpCase("pooling", _kw(ops.pooling, kernel=2, stride=1, pool_type="avg"), [(2, 2, 5)],
           lambda x: pool_loops(x, 2, 1, pool_type="avg"), tag="avg1d"),
    OpCase("pooling", _kw(ops.pooling, kernel=2), [(1, 2, 4, 4, 4)], lambda x: pool_loops(x, 2), tag="max3d"),
]


@pytest.mark.parametrize("case", OPS, ids=[c.id for c in OPS])
def test_forward_matches_reference(case: OpCase):
    xs = case.inputs()
    got = case.fn(*[array(x, dtype=np.float64) for x in xs]).asnumpy()
    np.testing.assert_allclose(got, case.reference(*xs), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", OPS, ids=[c.id for c in OPS])
def test_gradient_matches_finite_differences(case: OpCase):
    check_gradients(case.fn, case.inputs(), cpu(), wrt=case.wrt)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("case", OPS, ids=[c.id for c in OPS])
def test_gpu_matches_cpu(case: OpCase):
    from dlrun.engine import gpu
    xs = [x.astype(np.float32) if x.dtype.kind == "f" else x for x in case.inputs()]
    results = []
    for ctx in (cpu(), gpu(0)):
        arrays = [array(x, ctx=ctx) for x in xs]
        for i in case.wrt or range(len(xs)):
            arrays[i].attach_grad()
        from dlrun.engine import autograd
        with autograd.record():
            y = case.fn(*arrays)
        y.backward()
        results.append([y.asnumpy()] + [arrays[i].grad.asnumpy() for i in case.wrt or range(len(xs))])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_gradients_with_non_contiguous_inputs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 3)).T  # a transposed view: not C-contiguous
    w = rng.normal(size=(5, 4))
    x = NDArray(a, cpu())
    assert not x._data.flags.c_contiguous
    check_gradients(lambda x, w: ops.tanh(ops.matmul(x, w.T)), [a, w], cpu())
    y = ops.sum(ops.exp(x), axis=0)
    np.testing.assert_allclose(y.asnumpy(), np.exp(a).sum(axis=0))


def test_edge_sizes_batch_of_one_and_size_one_dims():
    check_gradients(lambda x, w, b: ops.fully_connected(x, w, b), [np.ones((1, 3)) * 0.3, np.eye(2, 3) + 0.1, np.ones(2)], cpu())
    check_gradients(lambda a, b: a * b, [np.full((1, 1, 3), 0.7), np.linspace(-1, 1, 6).reshape(2, 1, 3)], cpu())


def test_comparisons_have_no_gradient_and_give_zero_one_values():
    x = array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((x > 1.5).asnumpy(), [0, 1, 1])
    np.testing.assert_array_equal((x <= 2).asnumpy(), [1, 1, 0])
    np.testing.assert_array_equal((x == 2).asnumpy(), [0, 1, 0])
    assert (x > 1.5).dtype == x.dtype


def test_argmax():
    x = np.random.default_rng(0).normal(size=(4, 6))
    np.testing.assert_array_equal(ops.argmax(array(x), axis=1).asnumpy(), x.argmax(axis=1))


def test_max_splits_gradient_between_ties():
    from dlrun.engine import autograd
    x = array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])
    x.attach_grad()
    with autograd.record():
        y = ops.max(x, axis=1)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_log_softmax_is_stable_for_huge_logits():
    x = array([[1000.0, 0.0, -1000.0]])
    y = ops.log_softmax(x).asnumpy()
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0, 0], 0.0, atol=1e-6)


def test_pick_rejects_out_of_range_labels():
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        ops.pick(array(np.zeros((2, 3))), array(np.array([0, 3])))


def test_convolution_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="3 channels"):
        ops.convolution(array(np.zeros((1, 3, 5, 5))), array(np.zeros((2, 2, 3, 3))))


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, -1\)|\(4, -1\).*\(2, 3\)"):
        ops.reshape(array(np.zeros((2, 3))), shape=(4, -1))


@pytest.mark.parametrize("ctx", CONTEXTS)
def test_dropout_fresh_mask_each_call_and_scaling(ctx):
    from dlrun.engine import autograd, random
    random.seed(0)
    x = array(np.ones((200, 50)), ctx=ctx())
    with autograd.record():
        a = ops.dropout(x, p=0.3).asnumpy()
        b = ops.dropout(x, p=0.3).asnumpy()
    assert not np.array_equal(a, b)
    kept = a != 0
    np.testing.assert_allclose(a[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.02
