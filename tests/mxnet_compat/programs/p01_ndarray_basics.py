# source: MXNet 1.x "NDArray - Imperative tensor operations on CPU/GPU" tutorial
# compare: rtol=1e-6 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import nd

x = nd.array([[1, 2, 3], [5, 6, 7]])
print(x.shape, x.size, x.dtype == np.float32)
print(nd.ones((2, 3)) * 2 + nd.full((2, 3), 0.5))
y = nd.arange(12).reshape((3, 4))
print(y)
print(nd.dot(x, y))
print(x.T)
print(y[1:3, ::2])
print(nd.exp(x / 10))
print(x.reshape((-1,)), x.reshape((0, -1)), x.reshape((-3,)))
print(nd.concat(x, x, dim=0).shape, nd.stack(x, x).shape)
z = nd.zeros_like(x)
z[:] = x + 1
z[0, 1] = 100
print(z)
print(x.asnumpy().sum(), x.sum().asscalar(), nd.sum(x, axis=1))
print(nd.broadcast_add(nd.ones((2, 1)), nd.arange(3)))
print(x.max(), x.min(axis=0), x.mean(axis=1, keepdims=True))
