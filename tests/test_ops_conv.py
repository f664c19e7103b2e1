"""Transposed convolution and global pooling against loop references; deconvolution as the
input gradient of convolution."""
import itertools

import numpy as np
import pytest

from dlrun.engine import array, autograd, ops
from tests.opcases import OpCase, kw, op_tests


def deconv_loops(x, w, b=None, stride=1, pad=0, dilation=1, output_padding=0, groups=1):
    """Each input element scatters x[n, c, i] * w[c, o, k] to output position i * stride - pad + k * dilation."""
    nd = w.ndim - 2
    stride, pad, dilation, output_padding = ((v,) * nd if isinstance(v, int) else v
                                             for v in (stride, pad, dilation, output_padding))
    N, C = x.shape[:2]
    og, K, S = w.shape[1], w.shape[2:], x.shape[2:]
    out = [(S[i] - 1) * stride[i] - 2 * pad[i] + dilation[i] * (K[i] - 1) + output_padding[i] + 1
           for i in range(nd)]
    y = np.zeros((N, og * groups, *out))
    cg = C // groups
    for n, c in itertools.product(range(N), range(C)):
        g = c // cg
        for i in itertools.product(*(range(m) for m in S)):
            for o in range(og):
                for k in itertools.product(*(range(m) for m in K)):
                    pos = tuple(i[d] * stride[d] - pad[d] + k[d] * dilation[d] for d in range(nd))
                    if all(0 <= pos[d] < out[d] for d in range(nd)):
                        y[(n, g * og + o) + pos] += x[(n, c) + i] * w[(c, o) + k]
    if b is not None:
        y += b.reshape((-1,) + (1,) * nd)
    return y


def global_pool_ref(pool_type):
    def ref(x):
        axes = tuple(range(2, x.ndim))
        return x.max(axis=axes, keepdims=True) if pool_type == "max" else x.mean(axis=axes, keepdims=True)
    return ref


DECONV_2D = dict(stride=2, pad=1, output_padding=1, dilation=2, groups=2)

OPS = [
    OpCase("deconvolution", kw(ops.deconvolution, stride=2, pad=1), [(2, 3, 4), (3, 2, 3), (2,)],
           lambda x, w, b: deconv_loops(x, w, b, stride=2, pad=1), tag="1d"),
    OpCase("deconvolution", ops.deconvolution, [(1, 2, 1), (2, 1, 2)], deconv_loops, tag="1d-size1"),
    OpCase("deconvolution", kw(ops.deconvolution, **DECONV_2D), [(1, 4, 3, 2), (4, 3, 2, 3), (6,)],
           lambda x, w, b: deconv_loops(x, w, b, **DECONV_2D), tag="2d-strided-dilated-grouped"),
    OpCase("deconvolution", kw(ops.deconvolution, **DECONV_2D), [(3, 4, 3, 2), (4, 3, 2, 3), (6,)],
           lambda x, w, b: deconv_loops(x, w, b, **DECONV_2D), tag="2d-batch-last"),
    OpCase("deconvolution", kw(ops.deconvolution, dilation=2, output_padding=1), [(2, 2, 3, 4), (2, 3, 2, 2)],
           lambda x, w: deconv_loops(x, w, dilation=2, output_padding=1), tag="2d-output-padding-beyond-stride"),
    OpCase("deconvolution", kw(ops.deconvolution, stride=2, groups=2), [(2, 2, 2, 16), (2, 1, 2, 3)],
           lambda x, w: deconv_loops(x, w, stride=2, groups=2), tag="2d-batch-first-long-rows"),
    OpCase("deconvolution", kw(ops.deconvolution, stride=(1, 2, 1), pad=(0, 1, 1)),
           [(1, 2, 2, 3, 2), (2, 2, 2, 2, 3)],
           lambda x, w: deconv_loops(x, w, stride=(1, 2, 1), pad=(0, 1, 1)), tag="3d"),
    OpCase("pooling", kw(ops.pooling, global_pool=True), [(2, 3, 5)], global_pool_ref("max"), tag="global-max1d"),
    OpCase("pooling", kw(ops.pooling, global_pool=True, pool_type="avg"), [(1, 2, 3, 4)],
           global_pool_ref("avg"), tag="global-avg2d"),
    OpCase("pooling", kw(ops.pooling, kernel=2, stride=1, pad=1, global_pool=True), [(2, 2, 3, 3)],
           global_pool_ref("max"), tag="global-max2d-ignores-kernel"),
    OpCase("pooling", kw(ops.pooling, global_pool=True), [(1, 2, 2, 3, 2)], global_pool_ref("max"),
           tag="global-max3d"),
    OpCase("pooling", kw(ops.pooling, global_pool=True, pool_type="avg"), [(2, 1, 2, 2, 3)],
           global_pool_ref("avg"), tag="global-avg3d"),
]

test_forward, test_gradient, test_gpu = op_tests(OPS)


@pytest.mark.parametrize("x_shape, w_shape, settings", [
    ((2, 3, 5), (3, 2, 3), dict(stride=2, pad=1, output_padding=1)),
    ((1, 4, 3, 2), (4, 3, 2, 3), DECONV_2D),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 3), dict(stride=(1, 2, 1), pad=(0, 1, 1), dilation=(2, 1, 1))),
])
def test_deconvolution_is_the_input_gradient_of_convolution(x_shape, w_shape, settings):
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    y = ops.deconvolution(array(x, dtype=np.float64), array(w, dtype=np.float64), **settings)
    conv_settings = {k: v for k, v in settings.items() if k != "output_padding"}
    conv_in = array(rng.normal(size=y.shape), dtype=np.float64)
    conv_in.attach_grad()
    with autograd.record():
        z = ops.convolution(conv_in, array(w, dtype=np.float64), **conv_settings)
    assert z.shape == x.shape
    z.backward(array(x, dtype=np.float64))
    np.testing.assert_allclose(conv_in.grad.asnumpy(), y.asnumpy(), rtol=1e-12, atol=1e-12)


def test_deconvolution_errors():
    x = array(np.zeros((1, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"4 channels.*\(3, 2, 3, 3\)"):
        ops.deconvolution(x, array(np.zeros((3, 2, 3, 3))))
    with pytest.raises(ValueError, match="output_padding"):
        ops.deconvolution(x, array(np.zeros((4, 2, 3, 3))), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"1-D kernel.*3 dimensions.*\(1, 4, 3, 3\)"):
        ops.deconvolution(x, array(np.zeros((4, 2, 3))))


def test_pooling_needs_a_kernel_unless_global():
    with pytest.raises(ValueError, match="global_pool"):
        ops.pooling(array(np.zeros((1, 1, 4, 4))))
