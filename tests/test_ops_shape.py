"""Shape ops: swapping, inserting and removing axes, broadcasting, joining and splitting,
tiling, padding, flipping, gathering, one-hot and sequence masking, against NumPy."""
import numpy as np
import pytest

from dlrun.engine import array, autograd, ops
from tests.opcases import OpCase, kw, labels, normal, op_tests


def ints(lo, hi):
    def gen(rng, shape):
        return rng.integers(lo, hi, size=shape)
    return gen


def split_ref(x, sections, axis, squeeze=False):
    parts = np.split(x, sections, axis=axis)
    parts = [p.squeeze(axis) if squeeze else p for p in parts]
    return np.concatenate([p * (i + 1) for i, p in enumerate(parts)], axis=axis if not squeeze else 0)


def split_fn(op, *args, axis, squeeze_axis=False):
    """The pieces joined again, each scaled differently, so that every piece's gradient is checked."""
    def fn(x):
        parts = op(x, *args, axis=axis, squeeze_axis=squeeze_axis)
        return ops.concat(*[p * (i + 1) for i, p in enumerate(parts)], dim=axis if not squeeze_axis else 0)
    return fn


def sequence_mask_ref(data, lengths, value=0.0, axis=0):
    y = data.copy()
    for n, length in enumerate(lengths.astype(int)):
        index = (slice(length, None), n) if axis == 0 else (n, slice(length, None))
        y[index] = value
    return y


def sequence_last_ref(data, lengths=None, axis=0):
    steps = data.shape[axis]
    lengths = np.full(data.shape[1 - axis], steps) if lengths is None else lengths.astype(int)
    return np.stack([data[length - 1, n] if axis == 0 else data[n, length - 1]
                     for n, length in enumerate(lengths)])


OPS = [
    OpCase("swapaxes", kw(ops.swapaxes, dim1=0, dim2=2), [(2, 3, 4)], lambda x: x.swapaxes(0, 2)),
    OpCase("swapaxes", kw(ops.swapaxes, dim1=-1, dim2=1), [(1, 3, 1)], lambda x: x.swapaxes(-1, 1),
           tag="negative-size1"),
    OpCase("expand_dims", kw(ops.expand_dims, axis=1), [(2, 3)], lambda x: x[:, None]),
    OpCase("expand_dims", kw(ops.expand_dims, axis=-1), [(1, 3)], lambda x: x[..., None], tag="negative"),
    OpCase("squeeze", ops.squeeze, [(1, 3, 1, 2)], np.squeeze, tag="all"),
    OpCase("squeeze", kw(ops.squeeze, axis=-2), [(1, 3, 1, 2)], lambda x: x.squeeze(-2), tag="negative"),
    OpCase("squeeze", kw(ops.squeeze, axis=(0, 2)), [(1, 3, 1, 2)], lambda x: x.squeeze((0, 2)), tag="axes"),
    OpCase("broadcast_to", kw(ops.broadcast_to, shape=(2, 3, 4)), [(3, 1)],
           lambda x: np.broadcast_to(x, (2, 3, 4))),
    OpCase("broadcast_to", kw(ops.broadcast_to, shape=(3, 0)), [(1, 4)],
           lambda x: np.broadcast_to(x, (3, 4)), tag="keep-dim"),
    OpCase("concat", ops.concat, [(2, 3), (2, 1), (2, 4)], lambda *xs: np.concatenate(xs, axis=1)),
    OpCase("concat", kw(ops.concat, dim=-1), [(1, 2, 2), (1, 2, 3)], lambda *xs: np.concatenate(xs, -1),
           tag="negative"),
    OpCase("concat", kw(ops.concat, dim=0), [(1, 3), (2, 3)], lambda *xs: np.concatenate(xs, 0), tag="dim0"),
    OpCase("stack", ops.stack, [(2, 3), (2, 3), (2, 3)], lambda *xs: np.stack(xs)),
    OpCase("stack", kw(ops.stack, axis=-1), [(1, 3), (1, 3)], lambda *xs: np.stack(xs, -1), tag="negative"),
    OpCase("split", lambda x: ops.split(x, 3, axis=1)[1] * 2 + ops.split(x, 3, axis=1)[2], [(2, 6, 2)],
           lambda x: x[:, 2:4] * 2 + x[:, 4:]),
    OpCase("split", split_fn(ops.split, 2, axis=-1), [(1, 3, 4)], lambda x: split_ref(x, 2, -1),
           tag="negative"),
    OpCase("split", split_fn(ops.split, 3, axis=0, squeeze_axis=True), [(3, 2)],
           lambda x: split_ref(x, 3, 0, squeeze=True), tag="squeeze"),
    OpCase("split_v2", split_fn(ops.split_v2, (1, 3), axis=0), [(5, 2)], lambda x: split_ref(x, [1, 3], 0),
           tag="indices"),
    OpCase("split_v2", split_fn(ops.split_v2, 2, axis=-2), [(1, 4, 3)], lambda x: split_ref(x, 2, -2),
           tag="sections"),
    OpCase("tile", kw(ops.tile, reps=(2, 1, 3)), [(2, 3)], lambda x: np.tile(x, (2, 1, 3)), tag="more-reps"),
    OpCase("tile", kw(ops.tile, reps=(2,)), [(1, 2, 3)], lambda x: np.tile(x, 2), tag="fewer-reps"),
    OpCase("repeat", kw(ops.repeat, repeats=2), [(2, 3)], lambda x: np.repeat(x, 2), tag="flat"),
    OpCase("repeat", kw(ops.repeat, repeats=3, axis=-1), [(2, 1, 2)], lambda x: np.repeat(x, 3, -1),
           tag="negative"),
    OpCase("pad", kw(ops.pad, mode="constant", pad_width=(0, 0, 1, 0, 2, 1, 0, 3), constant_value=0.5),
           [(2, 1, 3, 2)], lambda x: np.pad(x, [(0, 0), (1, 0), (2, 1), (0, 3)], constant_values=0.5),
           tag="constant"),
    OpCase("pad", kw(ops.pad, mode="edge", pad_width=(0, 0, 0, 0, 2, 1, 1, 3)), [(1, 2, 3, 3)],
           lambda x: np.pad(x, [(0, 0), (0, 0), (2, 1), (1, 3)], mode="edge"), tag="edge"),
    OpCase("pad", kw(ops.pad, mode="reflect", pad_width=(1, 2, 2, 1)), [(3, 4)],
           lambda x: np.pad(x, [(1, 2), (2, 1)], mode="reflect"), tag="reflect"),
    OpCase("pad", kw(ops.pad, mode="reflect", pad_width=(0, 0, 4, 3)), [(1, 3)],
           lambda x: np.pad(x, [(0, 0), (4, 3)], mode="reflect"), tag="reflect-wide"),
    OpCase("flip", kw(ops.flip, axis=1), [(2, 3, 2)], lambda x: x[:, ::-1]),
    OpCase("reverse", kw(ops.reverse, axis=(0, -1)), [(1, 3, 2)], lambda x: x[::-1, :, ::-1]),
    OpCase("take", ops.take, [(3, 2), (2, 4)], lambda a, i: np.take(a, i, axis=0),
           gens=[normal, labels(3)], wrt=[0], tag="repeats"),
    OpCase("take", kw(ops.take, axis=-1, mode="wrap"), [(2, 1, 4), (5,)],
           lambda a, i: np.take(a, i, axis=-1, mode="wrap"), gens=[normal, ints(-6, 9)], wrt=[0], tag="wrap"),
    OpCase("take", kw(ops.take, axis=1, mode="clip"), [(1, 4, 2), (2, 3)],
           lambda a, i: np.take(a, i, axis=1, mode="clip"), gens=[normal, ints(-3, 7)], wrt=[0], tag="clip"),
    OpCase("take", kw(ops.take, mode="raise"), [(4,), (3,)], lambda a, i: a[i],
           gens=[normal, labels(4)], wrt=[0], tag="raise"),
    OpCase("one_hot", lambda x, i: x * ops.one_hot(i, depth=4, on_value=2.0, off_value=-0.5, dtype="float64"),
           [(3, 4), (3,)], lambda x, i: x * np.where(np.arange(4) == i[:, None], 2.0, -0.5),
           gens=[normal, labels(4)], wrt=[0]),
    OpCase("SequenceMask", kw(ops.SequenceMask, use_sequence_length=True), [(4, 3, 2), (3,)],
           sequence_mask_ref, gens=[normal, ints(0, 5)], wrt=[0], tag="time-major"),
    OpCase("SequenceMask", kw(ops.SequenceMask, use_sequence_length=True, value=-1.0, axis=1),
           [(3, 4), (3,)], lambda d, n: sequence_mask_ref(d, n, -1.0, axis=1),
           gens=[normal, ints(0, 5)], wrt=[0], tag="batch-major"),
    OpCase("SequenceMask", ops.SequenceMask, [(3, 1, 2)], lambda d: d, tag="no-lengths"),
    OpCase("SequenceLast", kw(ops.SequenceLast, use_sequence_length=True), [(4, 3, 2), (3,)],
           sequence_last_ref, gens=[normal, ints(1, 5)], wrt=[0], tag="time-major"),
    OpCase("SequenceLast", kw(ops.SequenceLast, use_sequence_length=True, axis=1), [(3, 4), (3,)],
           lambda d, n: sequence_last_ref(d, n, axis=1), gens=[normal, ints(1, 5)], wrt=[0], tag="batch-major"),
    OpCase("SequenceLast", ops.SequenceLast, [(3, 1, 2)], sequence_last_ref, tag="no-lengths"),
    OpCase("slice_axis", kw(ops.slice_axis, axis=1, begin=1, end=None), [(2, 4, 2)], lambda x: x[:, 1:]),
    OpCase("slice_axis", kw(ops.slice_axis, axis=-1, begin=-3, end=-1), [(1, 4)], lambda x: x[:, -3:-1],
           tag="negative"),
]
test_forward, test_gradient, test_gpu = op_tests(OPS)


def test_split_gives_every_output_and_zero_gradient_to_unused_ones():
    x = np.arange(24.0).reshape(2, 6, 2)
    a = array(x, dtype=np.float64)
    a.attach_grad()
    with autograd.record():
        parts = ops.split(a, 3, axis=1)
        y = parts[1] * 2
    assert isinstance(parts, tuple) and len(parts) == 3
    for got, want in zip(parts, np.split(x, 3, axis=1)):
        np.testing.assert_array_equal(got.asnumpy(), want)
    y.backward()
    expected = np.zeros_like(x)
    expected[:, 2:4] = 2
    np.testing.assert_array_equal(a.grad.asnumpy(), expected)
    squeezed = ops.split(a, 2, axis=-1, squeeze_axis=True)
    np.testing.assert_array_equal(squeezed[1].asnumpy(), x[..., 1])
    one = ops.split(a, 1, axis=0)
    assert not isinstance(one, tuple) and one.shape == x.shape


def test_split_v2_outputs():
    x = np.arange(10.0).reshape(5, 2)
    for got, want in zip(ops.split_v2(array(x), (1, 3)), np.split(x, [1, 3])):
        np.testing.assert_array_equal(got.asnumpy(), want)
    for got, want in zip(ops.split_v2(array(x), 5, squeeze_axis=True), x):
        np.testing.assert_array_equal(got.asnumpy(), want)


def test_one_hot_values_dtype_and_out_of_range():
    y = ops.one_hot(array(np.array([[0, 2], [5, -1]])), depth=3)
    assert y.dtype == np.float32 and y.shape == (2, 2, 3)
    np.testing.assert_array_equal(y.asnumpy(), [[[1, 0, 0], [0, 0, 1]], [[0, 0, 0], [0, 0, 0]]])


def test_pad_edge_gradient_accumulates_replicated_positions():
    x = array(np.array([[1.0, 2.0, 3.0]]))
    x.attach_grad()
    with autograd.record():
        y = ops.pad(x, mode="edge", pad_width=(0, 0, 2, 1))
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[3, 1, 2]])


def test_concat_error_names_shapes_and_axis():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 3\).*axis 1"):
        ops.concat(array(np.zeros((2, 3))), array(np.zeros((3, 3))))


def test_take_raise_mode_rejects_out_of_range_indices():
    with pytest.raises(IndexError, match=r"\[0, 3\).*from 0 to 3"):
        ops.take(array(np.zeros((3, 2))), array(np.array([0, 3])), mode="raise")


def test_pad_rejects_bad_pad_width_length():
    with pytest.raises(ValueError, match=r"4 values.*\(2, 3\)"):
        ops.pad(array(np.zeros((2, 3))), mode="constant", pad_width=(1, 1))
    with pytest.raises(ValueError, match="mode"):
        ops.pad(array(np.zeros((2, 3))), mode="wrap", pad_width=(1, 1, 1, 1))


@pytest.mark.parametrize("call, message", [
    (lambda x: ops.split(x, 4, axis=1), r"size 6.*4 equal parts"),
    (lambda x: ops.split(x, 3, axis=1, squeeze_axis=True), "sections of size 1"),
    (lambda x: ops.split_v2(x, (4, 2), axis=1), "sorted"),
    (lambda x: ops.squeeze(x, axis=0), "size 1"),
    (lambda x: ops.broadcast_to(x, (3, 6)), r"\(2, 6\).*\(3, 6\)"),
    (lambda x: ops.stack(x, x[:1]), "same shape"),
    (lambda x: ops.swapaxes(x, 0, 2), "out of range"),
    (lambda x: ops.SequenceMask(x, array(np.ones(3)), use_sequence_length=True), r"shape \(6,\)"),
    (lambda x: ops.SequenceLast(x, array(np.array([1.0] * 5 + [3])), use_sequence_length=True),
     r"\[1, 2\]"),
    (lambda x: ops.SequenceLast(x, axis=2), "axis must be 0"),
])
def test_misuse_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(array(np.zeros((2, 6))))
