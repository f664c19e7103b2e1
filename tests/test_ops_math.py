"""Elementwise math, selection, logical ops, the newer reductions (prod, logsumexp, argmin,
topk) and the tensor products (dot, batch_dot, outer, tensordot): forward against NumPy,
float64 gradients, GPU agreement, plus stability, tie and error cases."""
import numpy as np
import pytest

from dlrun.engine import array, autograd, cpu, ops
from tests.gradcheck import check_gradients
from tests.opcases import OpCase, away_from_zero, kw, normal, op_tests


# ---- local input generators ----
def above_minus_one(rng, shape):
    return rng.uniform(-0.7, 2.0, size=shape)


def avoiding(*points, gap=0.05):
    """Normal values kept at least ``gap`` away from each kink in ``points``."""
    def gen(rng, shape):
        x = rng.normal(size=shape)
        for p in points:
            near = np.abs(x - p) < gap
            x[near] += np.where(x[near] >= p, gap, -gap)
        return x
    return gen


def coin(rng, shape):
    return (rng.uniform(size=shape) < 0.5).astype(np.float64)


def softplus_ref(x):
    return np.logaddexp(0, x)


def logsumexp_ref(x, axis=None, keepdims=False):
    return np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))


def topk_ref(x, axis=-1, k=1, is_ascend=False):
    """Values of the k largest (or smallest) along ``axis``, in rank order; ties by position."""
    src = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis
    order = np.argsort(src if is_ascend else -src, axis=ax, kind="stable")
    idx = np.take(order, np.arange(k if k >= 1 else src.shape[ax]), axis=ax)
    return np.take_along_axis(src, idx, axis=ax), idx


def dot_ref(a, b, transpose_a=False, transpose_b=False):
    return np.tensordot(a, b, axes=([0 if transpose_a else a.ndim - 1], [b.ndim - 1 if transpose_b else 0]))


def batch_dot_ref(a, b, transpose_a=False, transpose_b=False):
    return np.matmul(a.swapaxes(1, 2) if transpose_a else a, b.swapaxes(1, 2) if transpose_b else b)


OPS = [
    # elementwise
    OpCase("sign", ops.sign, [(3, 4)], np.sign, gens=[away_from_zero]),
    OpCase("log1p", ops.log1p, [(3, 4)], np.log1p, gens=[above_minus_one]),
    OpCase("expm1", ops.expm1, [(1, 5)], np.expm1),
    OpCase("leaky_relu", ops.leaky_relu, [(3, 4)], lambda x: np.where(x > 0, x, 0.25 * x),
           gens=[away_from_zero]),
    OpCase("leaky_relu", kw(ops.leaky_relu, slope=0.1), [(2, 1, 3)], lambda x: np.where(x > 0, x, 0.1 * x),
           gens=[away_from_zero], tag="slope"),
    OpCase("elu", ops.elu, [(3, 4)], lambda x: np.where(x > 0, x, np.expm1(x)), gens=[away_from_zero]),
    OpCase("elu", kw(ops.elu, alpha=0.5), [(1, 6)], lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)),
           gens=[away_from_zero], tag="alpha"),
    OpCase("softrelu", ops.softrelu, [(3, 4)], softplus_ref),
    OpCase("softrelu", lambda x: ops.softrelu(x * 30), [(4, 5)], lambda x: softplus_ref(x * 30), tag="wide"),
    OpCase("softsign", ops.softsign, [(3, 4)], lambda x: x / (1 + np.abs(x)), gens=[away_from_zero]),
    OpCase("clip", kw(ops.clip, a_min=-0.5, a_max=0.5), [(4, 5)], lambda x: np.clip(x, -0.5, 0.5),
           gens=[avoiding(-0.5, 0.5)]),
    OpCase("maximum", ops.maximum, [(3, 4), (4,)], np.maximum, tag="bcast"),
    OpCase("maximum", ops.maximum, [(2, 1, 4), (3, 1)], np.maximum, tag="bcast2"),
    OpCase("maximum", lambda a: ops.maximum(a, 0.3), [(3, 4)], lambda a: np.maximum(a, 0.3),
           gens=[avoiding(0.3)], tag="scalar"),
    OpCase("minimum", ops.minimum, [(1, 4), (3, 1)], np.minimum, tag="bcast"),
    OpCase("minimum", lambda a: ops.minimum(-0.2, a), [(2, 3)], lambda a: np.minimum(-0.2, a),
           gens=[avoiding(-0.2)], tag="scalar-left"),
    OpCase("where", ops.where, [(3, 4), (3, 4), (3, 4)], np.where, gens=[coin, normal, normal], wrt=[1, 2]),
    OpCase("where", ops.where, [(3, 1), (4,), (2, 3, 4)], np.where, gens=[coin, normal, normal], wrt=[1, 2],
           tag="bcast"),
    OpCase("where", lambda c, a: ops.where(c, a, 0.0), [(1, 5), (2, 5)], lambda c, a: np.where(c, a, 0.0),
           gens=[coin, normal], wrt=[1], tag="scalar"),
    # reductions
    OpCase("prod", ops.prod, [(3, 4)], np.prod, tag="all"),
    OpCase("prod", kw(ops.prod, axis=1), [(3, 4, 2)], lambda x: x.prod(axis=1), tag="axis"),
    OpCase("prod", kw(ops.prod, axis=(0, 2), keepdims=True), [(3, 4, 2)],
           lambda x: x.prod(axis=(0, 2), keepdims=True), tag="keepdims"),
    OpCase("prod", kw(ops.prod, axis=(0, 2)), [(1, 3, 1)], lambda x: x.prod(axis=(0, 2)), tag="size1"),
    OpCase("logsumexp", ops.logsumexp, [(3, 4)], logsumexp_ref, tag="all"),
    OpCase("logsumexp", kw(ops.logsumexp, axis=-1), [(2, 3, 5)], lambda x: logsumexp_ref(x, -1), tag="axis"),
    OpCase("logsumexp", kw(ops.logsumexp, axis=(0, 1), keepdims=True), [(2, 3, 4)],
           lambda x: logsumexp_ref(x, (0, 1), True), tag="keepdims"),
    OpCase("logsumexp", kw(ops.logsumexp, axis=1), [(1, 4)], lambda x: logsumexp_ref(x, 1), tag="batch1"),
    OpCase("topk", kw(ops.topk, k=2, ret_typ="value"), [(3, 5)],
           lambda x: topk_ref(x, -1, 2)[0], tag="value"),
    OpCase("topk", kw(ops.topk, axis=0, k=3, ret_typ="value", is_ascend=True), [(4, 2, 3)],
           lambda x: topk_ref(x, 0, 3, True)[0], tag="axis0-ascend"),
    OpCase("topk", lambda x: ops.topk(x, axis=None, k=4, ret_typ="both")[0], [(3, 4)],
           lambda x: topk_ref(x, None, 4)[0], tag="flat-both"),
    OpCase("topk", kw(ops.topk, axis=1, k=0, ret_typ="value"), [(1, 6)],
           lambda x: topk_ref(x, 1, 0)[0], tag="all-batch1"),
    # tensor products
    OpCase("dot", ops.dot, [(3, 4), (4, 5)], dot_ref, tag="2d"),
    OpCase("dot", ops.dot, [(2, 3, 4), (4, 2, 3)], dot_ref, tag="nd"),
    OpCase("dot", ops.dot, [(4,), (4,)], dot_ref, tag="vec-vec"),
    OpCase("dot", ops.dot, [(4,), (4, 3)], dot_ref, tag="vec-mat"),
    OpCase("dot", ops.dot, [(3, 4), (4,)], dot_ref, tag="mat-vec"),
    OpCase("dot", kw(ops.dot, transpose_a=True), [(4, 3), (4, 5)], lambda a, b: dot_ref(a, b, True), tag="ta"),
    OpCase("dot", kw(ops.dot, transpose_b=True), [(3, 4), (5, 4)], lambda a, b: dot_ref(a, b, False, True),
           tag="tb"),
    OpCase("dot", kw(ops.dot, transpose_a=True, transpose_b=True), [(4, 2, 3), (5, 4)],
           lambda a, b: dot_ref(a, b, True, True), tag="nd-ta-tb"),
    OpCase("batch_dot", ops.batch_dot, [(2, 3, 4), (2, 4, 5)], batch_dot_ref),
    OpCase("batch_dot", kw(ops.batch_dot, transpose_a=True), [(2, 4, 3), (2, 4, 5)],
           lambda a, b: batch_dot_ref(a, b, True), tag="ta"),
    OpCase("batch_dot", kw(ops.batch_dot, transpose_b=True), [(1, 3, 4), (1, 2, 4)],
           lambda a, b: batch_dot_ref(a, b, False, True), tag="tb-batch1"),
    OpCase("outer", ops.outer, [(3,), (4,)], np.outer),
    OpCase("outer", ops.outer, [(2, 3), (1, 4)], np.outer, tag="flattens"),
    OpCase("tensordot", ops.tensordot, [(2, 3, 4), (3, 4, 5)], np.tensordot, tag="axes2"),
    OpCase("tensordot", kw(ops.tensordot, axes=1), [(2, 3), (3, 1, 2)], lambda a, b: np.tensordot(a, b, 1),
           tag="axes1"),
    OpCase("tensordot", kw(ops.tensordot, axes=0), [(2, 3), (4,)], lambda a, b: np.tensordot(a, b, 0),
           tag="axes0"),
    OpCase("tensordot", kw(ops.tensordot, axes=([1, 0], [0, 2])), [(3, 4, 5), (4, 2, 3)],
           lambda a, b: np.tensordot(a, b, ([1, 0], [0, 2])), tag="pairs"),
    OpCase("tensordot", kw(ops.tensordot, axes=(-1, 0)), [(2, 3), (3, 4)],
           lambda a, b: np.tensordot(a, b, (-1, 0)), tag="int-pair"),
]


test_forward, test_gradient, test_gpu = op_tests(OPS)


def _grads(fn, *values):
    """Output and gradients of ``sum(fn(*values))`` with respect to every input."""
    xs = [array(v, dtype=np.float64) for v in values]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        y = fn(*xs)
    y.backward()
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


# ---- numerical stability ----
def test_softrelu_is_exact_and_finite_at_plus_minus_1000():
    y, (g,) = _grads(ops.softrelu, [1000.0, -1000.0, 0.0])
    np.testing.assert_array_equal(y, [1000.0, 0.0, np.log(2)])
    np.testing.assert_array_equal(g, [1.0, 0.0, 0.5])


def test_logsumexp_is_exact_and_finite_at_plus_minus_1000():
    y, (g,) = _grads(lambda x: ops.logsumexp(x, axis=1),
                     [[1000.0, 1000.0], [-1000.0, -1000.0], [1000.0, -1000.0]])
    np.testing.assert_allclose(y, [1000 + np.log(2), -1000 + np.log(2), 1000.0], rtol=1e-15)
    np.testing.assert_allclose(g, [[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]], rtol=1e-15)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_logsumexp_of_all_minus_inf_is_minus_inf():
    assert ops.logsumexp(array(np.full(3, -np.inf), dtype=np.float64)).asnumpy() == -np.inf


def test_elu_has_no_overflow_in_the_branch_not_taken():
    with np.errstate(over="raise"):
        np.testing.assert_array_equal(ops.elu(array([1000.0], dtype=np.float64)).asnumpy(), [1000.0])



def test_sigmoid_keeps_relative_accuracy_far_out_and_is_exact_at_the_ends():
    x = [-1000.0, -100.0, -30.0, 0.0, 30.0, 1000.0]
    y, (g,) = _grads(ops.sigmoid, x)
    exact = [0.0, np.exp(-100.0), np.exp(-30.0) / (1 + np.exp(-30.0)), 0.5,
             1 / (1 + np.exp(-30.0)), 1.0]  # e / (1 + e) below zero: no 1 - p cancellation
    np.testing.assert_allclose(y, exact, rtol=1e-15, atol=0)
    np.testing.assert_allclose(g, np.array(exact) * (1 - np.array(exact)), rtol=1e-14, atol=0)


@pytest.mark.parametrize("op, negative_part, negative_slope", [
    (kw(ops.leaky_relu, slope=0.2), lambda v: 0.2 * v, lambda v: 0.2 + 0 * v),
    (kw(ops.elu, alpha=1.5), lambda v: 1.5 * np.expm1(v), lambda v: 1.5 * np.exp(v)),
], ids=["leaky_relu", "elu"])
def test_piecewise_activations_take_each_branch_exactly(op, negative_part, negative_slope):
    # computed without NumPy's (slow) elementwise where: each side must still be the exact formula
    x = np.array([-np.inf, -50.0, -1.0, -1e-300, -0.0, 0.0, 1e-300, 1.0, 50.0, np.inf])
    with np.errstate(invalid="ignore"):
        expected = np.where(x > 0, x, negative_part(x))
    np.testing.assert_array_equal(op(array(x, dtype=np.float64)).asnumpy(), expected)
    finite = x[np.isfinite(x)]
    _, (g,) = _grads(lambda v: op(v) * 3.0, finite)
    # elu's slope alpha * exp(x) is formed as y + alpha (as MXNet does): exact to ~1 ulp of alpha
    np.testing.assert_allclose(g, 3.0 * np.where(finite > 0, 1.0, negative_slope(finite)),
                               rtol=1e-15, atol=1e-15)

# ---- gradients at the special points ----
@pytest.mark.parametrize("x,expected", [
    ([[2.0, 0.0, 3.0], [1.5, -1.0, 0.5]], [[0.0, 6.0, 0.0], [-0.5, 0.75, -1.5]]),  # one zero
    ([[0.0, 0.0, 3.0], [1.5, -1.0, 0.5]], [[0.0, 0.0, 0.0], [-0.5, 0.75, -1.5]]),  # two zeros
], ids=["one-zero", "two-zeros"])
def test_prod_gradient_with_zero_elements(x, expected):
    check_gradients(lambda a: ops.prod(a, axis=1), [np.array(x)], cpu())
    check_gradients(ops.prod, [np.array(x)], cpu())
    _, (g,) = _grads(lambda a: ops.prod(a, axis=1), x)
    np.testing.assert_array_equal(g, expected)


def test_maximum_and_minimum_split_ties_evenly():
    _, (ga, gb) = _grads(ops.maximum, [1.0, 2.0, 3.0], [1.0, 0.0, 4.0])
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 1.0])
    _, (ga, gb) = _grads(ops.minimum, [[1.0, 2.0], [3.0, 2.0]], [2.0])  # b broadcast over 4 slots
    np.testing.assert_array_equal(ga, [[1.0, 0.5], [0.0, 0.5]])
    np.testing.assert_array_equal(gb, [2.0])
    _, (g,) = _grads(lambda a: ops.maximum(a, 2.0), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g, [0.0, 0.5, 1.0])


def test_clip_gradient_is_one_inside_and_zero_outside():
    _, (g,) = _grads(lambda x: ops.clip(x, -1.0, 1.0), [-2.0, -0.5, 0.0, 0.9, 1.5])
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_sign_gradient_is_zero():
    _, (g,) = _grads(ops.sign, [-2.0, 0.5, 3.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


def test_where_sends_no_gradient_to_the_condition():
    c = array([1.0, 0.0, 1.0], dtype=np.float64)
    c.attach_grad()
    _, (ga, gb) = _grads(lambda a, b: ops.where(c, a, b), [1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(ga, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(c.grad.asnumpy(), [0.0, 0.0, 0.0])


# ---- no-gradient ops ----
def test_logical_ops_give_zero_one_values_of_the_input_dtype():
    a = array([0.0, 0.0, 2.5, -1.0])
    b = array([0.0, 3.0, 0.0, 1.0])
    for op, expected in [(ops.logical_and, [0, 0, 0, 1]), (ops.logical_or, [0, 1, 1, 1]),
                         (ops.logical_xor, [0, 1, 1, 0])]:
        y = op(a, b)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y.asnumpy(), expected)
    np.testing.assert_array_equal(ops.logical_not(a).asnumpy(), [1, 1, 0, 0])
    np.testing.assert_array_equal(ops.logical_and(a, 1.0).asnumpy(), [0, 0, 1, 1])
    np.testing.assert_array_equal(ops.logical_or(array([[0.0], [1.0]]), array([0.0, 0.0])).asnumpy(),
                                  [[0, 0], [1, 1]])


def test_logical_ops_pass_no_gradient():
    _, (g,) = _grads(lambda x: ops.logical_not(x) * x + ops.logical_and(x, x), [0.0, 2.0])
    np.testing.assert_array_equal(g, [1.0, 0.0])  # only through the multiply, by its 0/1 factor


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), (-1, False)])
def test_argmin_matches_numpy(axis, keepdims):
    x = np.random.default_rng(0).normal(size=(4, 6))
    np.testing.assert_array_equal(ops.argmin(array(x), axis=axis, keepdims=keepdims).asnumpy(),
                                  np.argmin(x, axis=axis, keepdims=keepdims))


# ---- topk ----
@pytest.mark.parametrize("axis,k,is_ascend", [(-1, 2, False), (0, 3, True), (1, 1, False), (None, 5, False),
                                              (2, 0, True)])
def test_topk_every_return_type_matches_numpy(axis, k, is_ascend):
    x = np.random.default_rng(1).integers(0, 4, size=(4, 3, 5)).astype(np.float64)  # many ties
    values, indices = topk_ref(x, axis, k, is_ascend)
    args = dict(axis=axis, k=k, is_ascend=is_ascend)
    np.testing.assert_array_equal(ops.topk(array(x), ret_typ="value", **args).asnumpy(), values)
    got_indices = ops.topk(array(x), ret_typ="indices", **args)
    assert got_indices.dtype.kind == "i"
    np.testing.assert_array_equal(got_indices.asnumpy(), indices)
    both = ops.topk(array(x), ret_typ="both", **args)
    np.testing.assert_array_equal(both[0].asnumpy(), values)
    np.testing.assert_array_equal(both[1].asnumpy(), indices)
    mask = np.zeros(x.size if axis is None else x.shape)
    np.put_along_axis(mask, indices, 1, axis=0 if axis is None else axis)
    got_mask = ops.topk(array(x), ret_typ="mask", **args)
    assert got_mask.shape == x.shape and got_mask.dtype == np.float32
    np.testing.assert_array_equal(got_mask.asnumpy(), mask.reshape(x.shape))


def test_topk_value_gradient_scatters_to_the_chosen_positions():
    _, (g,) = _grads(lambda x: ops.topk(x, k=2, ret_typ="value") * array([[10.0, 1.0]], dtype=np.float64),
                     [[3.0, 1.0, 5.0, 2.0]])
    np.testing.assert_array_equal(g, [[1.0, 0.0, 10.0, 0.0]])


# ---- clear errors ----
def test_tensordot_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(3, 5, 5\)"):
        ops.tensordot(array(np.zeros((2, 3, 4))), array(np.zeros((3, 5, 5))))
    with pytest.raises(ValueError, match=r"axis 3 is out of range for shape \(2, 3\)"):
        ops.tensordot(array(np.zeros((2, 3))), array(np.zeros((3, 3))), axes=([3], [0]))
    with pytest.raises(ValueError, match=r"axes=3 .*\(2, 3\)"):
        ops.tensordot(array(np.zeros((2, 3))), array(np.zeros((2, 3))), axes=3)


def test_dot_and_batch_dot_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"dot: .*\(2, 3\).*\(4, 5\)"):
        ops.dot(array(np.zeros((2, 3))), array(np.zeros((4, 5))))
    with pytest.raises(ValueError, match="vectors cannot be transposed"):
        ops.dot(array(np.zeros(3)), array(np.zeros(3)), transpose_a=True)
    with pytest.raises(ValueError, match=r"batch_dot: shapes \(2, 3, 4\) and \(3, 4, 5\)"):
        ops.batch_dot(array(np.zeros((2, 3, 4))), array(np.zeros((3, 4, 5))))
    with pytest.raises(ValueError, match=r"batch_dot: shapes \(3, 4\) and \(4, 5\)"):
        ops.batch_dot(array(np.zeros((3, 4))), array(np.zeros((4, 5))))


def test_clip_and_topk_reject_bad_arguments():
    x = array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="a_min=1.0 and a_max=-1.0"):
        ops.clip(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="ret_typ must be one of"):
        ops.topk(x, ret_typ="values")
    with pytest.raises(ValueError, match=r"k=4 is larger than axis -1 of an array of shape \(2, 3\)"):
        ops.topk(x, k=4)
    with pytest.raises(ValueError, match="out of range"):
        ops.prod(x, axis=2)
