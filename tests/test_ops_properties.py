"""Property tests: on random shapes, axes and float64 values, the forward of every elementwise,
reduction and shape op equals NumPy's."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from dlrun.engine import array, ops

PROPERTY = settings(max_examples=30, deadline=None)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
SHAPES_1D = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def floats(lo=-10.0, hi=10.0):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


FEW_VALUES = st.sampled_from([-1.0, 0.0, 0.0, 1.0, 2.5])  # ties, zeros and non-0/1 truth values


def arrays(shape=SHAPES, elements=None):
    return hnp.arrays(np.float64, shape, elements=elements if elements is not None else floats())


def run(op, *xs, **kwargs):
    """``op`` on float64 NDArrays made from ``xs`` (Python scalars pass through), as NumPy."""
    out = op(*[array(x, dtype=x.dtype) if isinstance(x, np.ndarray) else x for x in xs], **kwargs)
    return tuple(o.asnumpy() for o in out) if isinstance(out, tuple) else out.asnumpy()


def assert_same(got, expected):
    if isinstance(expected, (list, tuple)):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same(g, e)
        return
    expected = np.asarray(expected)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


# ---- elementwise, one input ----
UNARY = [
    ("negative", ops.negative, np.negative, None),
    ("exp", ops.exp, np.exp, None),
    ("log", ops.log, np.log, floats(0.01)),
    ("sqrt", ops.sqrt, np.sqrt, floats(0.0)),
    ("square", ops.square, np.square, None),
    ("abs", ops.abs, np.abs, None),
    ("sign", ops.sign, np.sign, FEW_VALUES),
    ("log1p", ops.log1p, np.log1p, floats(-0.99)),
    ("expm1", ops.expm1, np.expm1, None),
    ("tanh", ops.tanh, np.tanh, None),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), None),
    ("relu", ops.relu, lambda x: np.maximum(x, 0), None),
    ("leaky_relu", ops.leaky_relu, lambda x: np.where(x > 0, x, 0.25 * x), None),
    ("elu", ops.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), None),
    ("softrelu", ops.softrelu, lambda x: np.logaddexp(0, x), floats(-1000.0, 1000.0)),
    ("softsign", ops.softsign, lambda x: x / (1 + np.abs(x)), None),
    ("logical_not", ops.logical_not, lambda x: np.logical_not(x).astype(x.dtype), FEW_VALUES),
    ("copy", ops.copy, np.copy, None),
]


@pytest.mark.parametrize("name,op,ref,elements", UNARY, ids=[u[0] for u in UNARY])
@PROPERTY
@given(data=st.data())
def test_unary_matches_numpy(name, op, ref, elements, data):
    x = data.draw(arrays(elements=elements))
    assert_same(run(op, x), ref(x))


@PROPERTY
@given(x=arrays(), bounds=st.lists(floats(-5.0, 5.0), min_size=2, max_size=2).map(sorted))
def test_clip_matches_numpy(x, bounds):
    assert_same(run(ops.clip, x, *bounds), np.clip(x, *bounds))


@PROPERTY
@given(x=arrays(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cast_matches_numpy(x, dtype):
    y = ops.cast(array(x, dtype=np.float64), dtype=dtype)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.asnumpy(), x.astype(dtype))


# ---- elementwise, two or three inputs with broadcasting ----
def _on_truth(fn):
    return lambda a, b: fn(a != 0, b != 0).astype(np.float64)


BINARY = [
    ("add", ops.add, np.add, None, None),
    ("subtract", ops.subtract, np.subtract, None, None),
    ("multiply", ops.multiply, np.multiply, None, None),
    ("divide", ops.divide, np.divide, None, floats(0.1)),
    ("power", ops.power, np.power, floats(0.1, 5.0), floats(-3.0, 3.0)),
    ("maximum", ops.maximum, np.maximum, FEW_VALUES, FEW_VALUES),
    ("minimum", ops.minimum, np.minimum, FEW_VALUES, FEW_VALUES),
    ("equal", ops.equal, lambda a, b: (a == b).astype(a.dtype), FEW_VALUES, FEW_VALUES),
    ("not_equal", ops.not_equal, lambda a, b: (a != b).astype(a.dtype), FEW_VALUES, FEW_VALUES),
    ("greater", ops.greater, lambda a, b: (a > b).astype(a.dtype), FEW_VALUES, FEW_VALUES),
    ("greater_equal", ops.greater_equal, lambda a, b: (a >= b).astype(a.dtype), FEW_VALUES, FEW_VALUES),
    ("lesser", ops.lesser, lambda a, b: (a < b).astype(a.dtype), FEW_VALUES, FEW_VALUES),
    ("lesser_equal", ops.lesser_equal, lambda a, b: (a <= b).astype(a.dtype), FEW_VALUES, FEW_VALUES),
    ("logical_and", ops.logical_and, _on_truth(np.logical_and), FEW_VALUES, FEW_VALUES),
    ("logical_or", ops.logical_or, _on_truth(np.logical_or), FEW_VALUES, FEW_VALUES),
    ("logical_xor", ops.logical_xor, _on_truth(np.logical_xor), FEW_VALUES, FEW_VALUES),
]
BROADCASTING = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)


@pytest.mark.parametrize("name,op,ref,elements_a,elements_b", BINARY, ids=[b[0] for b in BINARY])
@PROPERTY
@given(data=st.data())
def test_binary_matches_numpy_with_broadcasting_and_scalars(name, op, ref, elements_a, elements_b, data):
    shapes = data.draw(BROADCASTING).input_shapes
    a = data.draw(arrays(shapes[0], elements_a))
    b = data.draw(arrays(shapes[1], elements_b))
    assert_same(run(op, a, b), ref(a, b))
    scalar = float(data.draw(elements_b if elements_b is not None else floats()))
    assert_same(run(op, a, scalar), ref(a, np.float64(scalar)))


@PROPERTY
@given(data=st.data())
def test_where_matches_numpy(data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4)).input_shapes
    cond = data.draw(arrays(shapes[0], FEW_VALUES))
    a, b = data.draw(arrays(shapes[1])), data.draw(arrays(shapes[2]))
    assert_same(run(ops.where, cond, a, b), np.where(cond, a, b))


# ---- reductions ----
def axes_for(ndim):
    return st.one_of(st.none(), st.integers(-ndim, ndim - 1), hnp.valid_tuple_axes(ndim, min_size=1))


def logsumexp_ref(x, axis, keepdims):
    return np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))


REDUCTIONS = [
    ("sum", ops.sum, np.sum),
    ("mean", ops.mean, np.mean),
    ("max", ops.max, np.max),
    ("min", ops.min, np.min),
    ("prod", ops.prod, np.prod),
    ("logsumexp", ops.logsumexp, logsumexp_ref),
    ("norm-l2", ops.norm, lambda x, axis, keepdims: np.sqrt((x * x).sum(axis=axis, keepdims=keepdims))),
    ("norm-l1", lambda x, **kw: ops.norm(x, ord=1, **kw),
     lambda x, axis, keepdims: np.abs(x).sum(axis=axis, keepdims=keepdims)),
]


@pytest.mark.parametrize("name,op,ref", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@PROPERTY
@given(data=st.data())
def test_reduction_matches_numpy(name, op, ref, data):
    x = data.draw(arrays(SHAPES_1D))
    axis = data.draw(axes_for(x.ndim))
    keepdims = data.draw(st.booleans())
    assert_same(run(op, x, axis=axis, keepdims=keepdims), ref(x, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("op,ref", [(ops.argmax, np.argmax), (ops.argmin, np.argmin)], ids=["argmax", "argmin"])
@PROPERTY
@given(data=st.data())
def test_arg_extremum_matches_numpy(op, ref, data):
    x = data.draw(arrays(SHAPES_1D, FEW_VALUES | floats()))
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1))
    keepdims = data.draw(st.booleans())
    np.testing.assert_array_equal(run(op, x, axis=axis, keepdims=keepdims),
                                  ref(x, axis=axis, keepdims=keepdims))


@PROPERTY
@given(data=st.data())
def test_topk_matches_numpy(data):
    x = data.draw(arrays(SHAPES_1D, FEW_VALUES | floats()))
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1))
    src, ax = (x.reshape(-1), 0) if axis is None else (x, axis)
    k = data.draw(st.integers(1, src.shape[ax]))
    is_ascend = data.draw(st.booleans())
    sorted_values = np.sort(src, axis=ax) if is_ascend else -np.sort(-src, axis=ax)
    values = np.take(sorted_values, np.arange(k), axis=ax)
    got_values, got_indices = run(ops.topk, x, axis=axis, k=k, ret_typ="both", is_ascend=is_ascend)
    assert_same(got_values, values)
    assert_same(np.take_along_axis(src, got_indices, axis=ax), values)  # the indices point at them
    mask = run(ops.topk, x, axis=axis, k=k, ret_typ="mask", is_ascend=is_ascend).reshape(src.shape)
    assert_same(mask.sum(axis=ax), np.full(np.delete(src.shape, ax), float(k)))
    np.testing.assert_array_equal(np.take_along_axis(mask, got_indices, axis=ax), 1.0)


# ---- shape ops ----
@PROPERTY
@given(data=st.data())
def test_reshape_with_minus_one_and_zero(data):
    x = data.draw(arrays(SHAPES_1D))
    target = list(data.draw(st.permutations(x.shape)))
    i = data.draw(st.integers(0, len(target) - 1))
    target[i] = -1
    unchanged = [j for j, n in enumerate(target) if n == x.shape[j]]
    for j in data.draw(st.lists(st.sampled_from(unchanged), unique=True)) if unchanged else ():
        target[j] = 0  # Gluon: copy this dimension from the input
    resolved = [x.shape[j] if n == 0 else n for j, n in enumerate(target)]
    assert_same(run(ops.reshape, x, shape=tuple(target)), x.reshape(resolved))


@PROPERTY
@given(data=st.data())
def test_transpose_swapaxes_flatten(data):
    x = data.draw(arrays(SHAPES_1D))
    axes = data.draw(st.none() | st.permutations(range(x.ndim)))
    assert_same(run(ops.transpose, x, axes=axes), np.transpose(x, axes))
    d1, d2 = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_same(run(ops.swapaxes, x, dim1=d1, dim2=d2), np.swapaxes(x, d1, d2))
    assert_same(run(ops.flatten, x), x.reshape(x.shape[0], -1))


@PROPERTY
@given(data=st.data())
def test_getitem_basic_and_integer_array_indexing(data):
    x = data.draw(arrays(SHAPES_1D))
    key = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True))
    assert_same(run(ops.getitem, x, key=key), x[key])
    rows = data.draw(hnp.arrays(np.int64, st.integers(1, 5), elements=st.integers(-x.shape[0], x.shape[0] - 1)))
    assert_same(run(ops.getitem, x, key=(rows,)), x[rows])


@PROPERTY
@given(data=st.data())
def test_slice_axis_matches_slicing(data):
    x = data.draw(arrays(SHAPES_1D))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    begin = data.draw(st.integers(-n, n - 1))
    end = data.draw(st.none() | st.integers(-n, n))
    key = (slice(None),) * (axis % x.ndim) + (slice(begin, end),)
    assert_same(run(ops.slice_axis, x, axis=axis, begin=begin, end=end), x[key])


@PROPERTY
@given(data=st.data())
def test_expand_dims_and_squeeze(data):
    x = data.draw(arrays(SHAPES))
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    assert_same(run(ops.expand_dims, x, axis=axis), np.expand_dims(x, axis))
    assert_same(run(ops.squeeze, x), np.squeeze(x))
    ones = [i for i, n in enumerate(x.shape) if n == 1]
    if ones:
        axes = tuple(data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
        assert_same(run(ops.squeeze, x, axis=axes), np.squeeze(x, axis=axes))


@PROPERTY
@given(data=st.data())
def test_broadcast_to(data):
    target = data.draw(SHAPES)
    lead = data.draw(st.integers(0, len(target)))
    shape = tuple(1 if data.draw(st.booleans()) else n for n in target[lead:])
    x = data.draw(arrays(shape))
    assert_same(run(ops.broadcast_to, x, shape=target), np.broadcast_to(x, target))


@PROPERTY
@given(data=st.data())
def test_concat_and_stack(data):
    shape = data.draw(SHAPES_1D)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    parts = [data.draw(arrays(shape[:axis % len(shape)] + (m,) + shape[axis % len(shape) + 1:])) for m in sizes]
    assert_same(run(ops.concat, *parts, dim=axis), np.concatenate(parts, axis=axis))
    same = [data.draw(arrays(shape)) for _ in sizes]
    new_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert_same(run(ops.stack, *same, axis=new_axis), np.stack(same, axis=new_axis))


@PROPERTY
@given(data=st.data())
def test_split_and_split_v2(data):
    x = data.draw(arrays(SHAPES_1D))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    sections = data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    expected = np.split(x, sections, axis=axis)
    assert_same(run(ops.split, x, num_outputs=sections, axis=axis),
                expected if sections > 1 else expected[0])
    if sections == n:
        squeezed = [p.squeeze(axis) for p in expected]
        assert_same(run(ops.split, x, num_outputs=sections, axis=axis, squeeze_axis=True),
                    squeezed if sections > 1 else squeezed[0])
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    expected = np.split(x, cuts, axis=axis)
    assert_same(run(ops.split_v2, x, cuts, axis=axis), expected if len(expected) > 1 else expected[0])


@PROPERTY
@given(data=st.data())
def test_tile_and_repeat(data):
    x = data.draw(arrays(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))
    reps = data.draw(st.integers(1, 3) | st.lists(st.integers(1, 3), max_size=4).map(tuple))
    assert_same(run(ops.tile, x, reps=reps), np.tile(x, reps))
    repeats = data.draw(st.integers(1, 3))
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1)) if x.ndim else None
    assert_same(run(ops.repeat, x, repeats=repeats, axis=axis), np.repeat(x, repeats, axis=axis))


@PROPERTY
@given(data=st.data())
def test_pad(data):
    x = data.draw(arrays(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)))
    mode = data.draw(st.sampled_from(["constant", "edge", "reflect"]))
    pairs = [tuple(data.draw(st.lists(st.integers(0, 3), min_size=2, max_size=2))) for _ in range(x.ndim)]
    flat = tuple(n for pair in pairs for n in pair)
    value = data.draw(floats())
    got = run(ops.pad, x, mode=mode, pad_width=flat, constant_value=value)
    extra = dict(constant_values=value) if mode == "constant" else {}
    assert_same(got, np.pad(x, pairs, mode=mode, **extra))


@PROPERTY
@given(data=st.data())
def test_flip(data):
    x = data.draw(arrays(SHAPES_1D))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1) | hnp.valid_tuple_axes(x.ndim, min_size=1))
    assert_same(run(ops.flip, x, axis=axis), np.flip(x, axis=axis))


@PROPERTY
@given(data=st.data())
def test_take_and_one_hot(data):
    x = data.draw(arrays(SHAPES_1D))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    mode = data.draw(st.sampled_from(["clip", "wrap"]))
    idx = data.draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
                               elements=st.integers(-2 * n, 2 * n)))
    assert_same(run(ops.take, x, idx, axis=axis, mode=mode), np.take(x, idx, axis=axis, mode=mode))
    depth = data.draw(st.integers(1, 5))
    labels = data.draw(hnp.arrays(np.int64, SHAPES, elements=st.integers(-1, depth)))
    expected = (labels[..., None] == np.arange(depth)).astype(np.float32)
    np.testing.assert_array_equal(run(ops.one_hot, labels, depth=depth), expected)


@PROPERTY
@given(data=st.data())
def test_sequence_mask_and_last(data):
    axis = data.draw(st.sampled_from([0, 1]))
    x = data.draw(arrays(hnp.array_shapes(min_dims=2, max_dims=4, max_side=4)))
    steps, batch = x.shape[axis], x.shape[1 - axis]
    lengths = np.array(data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)), float)
    value = data.draw(floats())
    time = np.arange(steps)[:, None] if axis == 0 else np.arange(steps)
    valid = (time < lengths) if axis == 0 else (time < lengths[:, None])
    expected = np.where(valid.reshape(valid.shape + (1,) * (x.ndim - 2)), x, value)
    assert_same(run(ops.SequenceMask, x, lengths, use_sequence_length=True, value=value, axis=axis), expected)
    rows = np.arange(batch)
    last = lengths.astype(int) - 1
    assert_same(run(ops.SequenceLast, x, lengths, use_sequence_length=True, axis=axis),
                x[last, rows] if axis == 0 else x[rows, last])
