"""The ops of the walking skeleton (arithmetic, activations, reductions, matmul, shape,
convolution, pooling, softmax family): forward, gradients and GPU agreement, plus edge cases."""
import numpy as np
import pytest

from dlrun.engine import NDArray, array, autograd, cpu, ops
from tests.contexts import CONTEXTS
from tests.gradcheck import check_gradients
from tests.opcases import (OpCase, kw, away_from_zero, conv_loops, fc_ref, labels, log_softmax_ref,
                           normal, op_tests, pick_ref, pool_loops, positive)

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
    OpCase("sum", kw(ops.sum, axis=1), [(3, 4, 2)], lambda x: x.sum(axis=1), tag="axis"),
    OpCase("sum", kw(ops.sum, axis=(0, 2), keepdims=True), [(3, 4, 2)],
           lambda x: x.sum(axis=(0, 2), keepdims=True), tag="keepdims"),
    OpCase("mean", kw(ops.mean, axis=-1), [(3, 4)], lambda x: x.mean(axis=-1)),
    OpCase("max", kw(ops.max, axis=1), [(3, 5)], lambda x: x.max(axis=1)),
    OpCase("max", ops.max, [(3, 5)], np.max, tag="all"),
    OpCase("min", kw(ops.min, axis=0, keepdims=True), [(3, 5)], lambda x: x.min(axis=0, keepdims=True)),
    OpCase("norm", ops.norm, [(3, 4)], np.linalg.norm, tag="l2"),
    OpCase("norm", kw(ops.norm, ord=1, axis=1), [(3, 4)], lambda x: np.abs(x).sum(axis=1),
           gens=[away_from_zero], tag="l1"),
    # linear algebra
    OpCase("matmul", ops.matmul, [(3, 4), (4, 5)], np.matmul),
    OpCase("matmul", ops.matmul, [(2, 3, 4), (4, 5)], np.matmul, tag="batch-bcast"),
    OpCase("matmul", ops.matmul, [(2, 1, 3, 4), (5, 4, 2)], np.matmul, tag="batch-bcast2"),
    OpCase("matmul", ops.matmul, [(4,), (4, 3)], np.matmul, tag="vec-mat"),
    OpCase("matmul", ops.matmul, [(2, 3, 4), (4,)], np.matmul, tag="mat-vec"),
    OpCase("fully_connected", ops.fully_connected, [(4, 2, 3), (5, 6), (5,)], fc_ref),
    OpCase("fully_connected", kw(ops.fully_connected, flatten=False), [(4, 2, 3), (5, 3)],
           lambda x, w: fc_ref(x, w, flatten=False), tag="noflatten"),
    # shape
    OpCase("reshape", kw(ops.reshape, shape=(0, -1)), [(2, 3, 4)], lambda x: x.reshape(2, 12)),
    OpCase("transpose", kw(ops.transpose, axes=(2, 0, 1)), [(2, 3, 4)], lambda x: x.transpose(2, 0, 1)),
    OpCase("transpose", ops.transpose, [(2, 3)], np.transpose, tag="default"),
    OpCase("flatten", ops.flatten, [(2, 3, 4)], lambda x: x.reshape(2, -1)),
    OpCase("getitem", kw(ops.getitem, key=(slice(None, None, -2), slice(1, -1))), [(5, 4)],
           lambda x: x[::-2, 1:-1], tag="slices"),
    OpCase("getitem", kw(ops.getitem, key=(np.array([0, 2, 0]),)), [(3, 4)],
           lambda x: x[np.array([0, 2, 0])], tag="gather-repeats"),
    # neural
    OpCase("log_softmax", ops.log_softmax, [(3, 5)], log_softmax_ref),
    OpCase("log_softmax", kw(ops.log_softmax, axis=0), [(3, 5)], lambda x: log_softmax_ref(x, 0), tag="axis0"),
    OpCase("softmax", kw(ops.softmax, axis=1), [(2, 4, 3)], lambda x: np.exp(log_softmax_ref(x, 1))),
    OpCase("pick", ops.pick, [(4, 5), (4,)], pick_ref, gens=[normal, labels(5)], wrt=[0]),
    OpCase("pick", kw(ops.pick, axis=1, keepdims=True), [(2, 3, 4), (2, 4)],
           lambda x, i: pick_ref(x, i, 1, True), gens=[normal, labels(3)], wrt=[0], tag="axis1"),
    OpCase("softmax_cross_entropy", ops.softmax_cross_entropy, [(4, 5), (4,)],
           lambda x, i: -pick_ref(log_softmax_ref(x), i, -1, True), gens=[normal, labels(5)], wrt=[0]),
    OpCase("softmax_cross_entropy", kw(ops.softmax_cross_entropy, axis=1), [(2, 3, 4), (2, 4)],
           lambda x, i: -pick_ref(log_softmax_ref(x, 1), i, 1, True), gens=[normal, labels(3)], wrt=[0],
           tag="axis1"),
    OpCase("convolution", kw(ops.convolution, stride=2, pad=1), [(2, 3, 7, 7), (4, 3, 3, 3), (4,)],
           lambda x, w, b: conv_loops(x, w, b, stride=2, pad=1), tag="2d"),
    OpCase("convolution", kw(ops.convolution, dilation=2, groups=2), [(1, 4, 7, 6), (6, 2, 2, 3)],
           lambda x, w: conv_loops(x, w, dilation=2, groups=2), tag="2d-dilated-grouped"),
    OpCase("convolution", kw(ops.convolution, stride=2, pad=2), [(2, 2, 9), (3, 2, 4), (3,)],
           lambda x, w, b: conv_loops(x, w, b, stride=2, pad=2), tag="1d"),
    OpCase("convolution", kw(ops.convolution, pad=(1, 0, 1)), [(1, 2, 4, 3, 4), (2, 2, 2, 2, 3)],
           lambda x, w: conv_loops(x, w, pad=(1, 0, 1)), tag="3d"),
    # the GEMM layout puts the batch last for short output rows, first for rows of 16 or more
    OpCase("convolution", kw(ops.convolution, stride=(1, 2), pad=1, dilation=(2, 1), groups=2),
           [(3, 4, 6, 7), (6, 2, 2, 3), (6,)],
           lambda x, w, b: conv_loops(x, w, b, stride=(1, 2), pad=1, dilation=(2, 1), groups=2),
           tag="2d-batch-last-all-settings"),
    OpCase("convolution", kw(ops.convolution, pad=(0, 1), groups=2), [(2, 2, 3, 17), (4, 1, 2, 2), (4,)],
           lambda x, w, b: conv_loops(x, w, b, pad=(0, 1), groups=2), tag="2d-batch-first-long-rows"),
    OpCase("pooling", kw(ops.pooling, kernel=2), [(2, 3, 6, 6)], lambda x: pool_loops(x, 2), tag="max2d"),
    OpCase("pooling", kw(ops.pooling, kernel=3, stride=2, pad=1), [(1, 2, 7, 6)],
           lambda x: pool_loops(x, 3, 2, 1), tag="max2d-overlap-pad"),
    OpCase("pooling", kw(ops.pooling, kernel=3, stride=2, ceil_mode=True), [(1, 2, 8, 8)],
           lambda x: pool_loops(x, 3, 2, 0, ceil_mode=True), tag="max2d-ceil"),
    OpCase("pooling", kw(ops.pooling, kernel=2, pool_type="avg"), [(2, 3, 6, 4)],
           lambda x: pool_loops(x, 2, pool_type="avg"), tag="avg2d"),
    OpCase("pooling", kw(ops.pooling, kernel=3, stride=2, pad=1, pool_type="avg", count_include_pad=False),
           [(1, 2, 7, 6)], lambda x: pool_loops(x, 3, 2, 1, "avg", count_include_pad=False),
           tag="avg2d-exclude-pad"),
    OpCase("pooling", kw(ops.pooling, kernel=3, stride=2, pad=1, pool_type="avg", ceil_mode=True),
           [(1, 1, 8, 8)], lambda x: pool_loops(x, 3, 2, 1, "avg", ceil_mode=True), tag="avg2d-ceil"),
    OpCase("pooling", kw(ops.pooling, kernel=2, stride=1, pool_type="avg"), [(2, 2, 5)],
           lambda x: pool_loops(x, 2, 1, pool_type="avg"), tag="avg1d"),
    OpCase("pooling", kw(ops.pooling, kernel=2), [(1, 2, 4, 4, 4)], lambda x: pool_loops(x, 2), tag="max3d"),
]


test_forward, test_gradient, test_gpu = op_tests(OPS)


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
    with pytest.raises(IndexError, match=r"softmax_cross_entropy.*\[0, 3\).*-1 to 1"):
        ops.softmax_cross_entropy(array(np.zeros((2, 3))), array(np.array([-1, 1])))


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    x = array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    x.attach_grad()
    with autograd.record():
        y = ops.softmax_cross_entropy(x, array(np.array([1, 2])))
    y.backward()
    np.testing.assert_allclose(y.asnumpy()[:, 0], [1000.0, np.log(3.0)], rtol=1e-6)
    np.testing.assert_allclose(x.grad.asnumpy(), [[1, -1, 0], [1 / 3, 1 / 3, -2 / 3]], atol=1e-6)


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
