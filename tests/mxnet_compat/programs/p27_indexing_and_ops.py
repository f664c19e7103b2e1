# source: MXNet 1.x NDArray API reference (slicing, take, pick, one_hot, where, topk, sort, concat)
# compare: rtol=1e-6 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import nd

x = nd.array(np.arange(24).reshape(2, 3, 4))
print(x[1], x[:, 1:, ::2], x[1, 2, 3])
print(nd.take(nd.arange(5) * 10, nd.array([4, 0, 2])))
print(nd.pick(x[0], nd.array([0, 3, 1]), axis=1))
print(nd.one_hot(nd.array([1, 0, 2]), 3))
print(nd.where(x[0] > 5, x[0], -x[0]))
print(nd.topk(x[0], k=2, ret_typ='value'), nd.sort(-x[0], axis=1))
print(nd.slice_axis(x, axis=2, begin=1, end=3).shape, nd.SliceChannel(x, num_outputs=2, axis=2)[1].shape)
print(nd.expand_dims(x[0], axis=0).shape, nd.flip(x[0], axis=1)[0], nd.reverse(x[0], axis=0)[0])
print(nd.tile(nd.array([1, 2]), reps=(2, 2)), nd.repeat(nd.array([1, 2]), repeats=2))
print(nd.clip(x[0], 3, 8), nd.swapaxes(x, 0, 2).shape, nd.transpose(x).shape)
print(nd.broadcast_to(nd.array([[1, 2, 3]]), shape=(2, 3)), nd.split(x, num_outputs=3, axis=1)[0].shape)
print(nd.linalg_gemm2(x[0], x[1], transpose_b=True), nd.batch_dot(x, x, transpose_b=True).shape)
