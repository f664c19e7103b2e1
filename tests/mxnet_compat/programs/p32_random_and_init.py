# source: MXNet 1.x nd.random and mx.init references: statistics of large samples
# compare: band=0.03
import numpy as np
import mxnet as mx
from mxnet import gluon, nd

mx.random.seed(1)
n = nd.random.normal(2, 3, shape=(200000,))
u = nd.random.uniform(-1, 1, shape=(200000,))
print(round(n.mean().asscalar(), 2), round((n.asnumpy().std() / 3), 2), round(u.mean().asscalar(), 2))
print(round(nd.random_normal(shape=(100000,)).asnumpy().std(), 2), round(nd.random.randint(0, 10, shape=(100000,)).asnumpy().mean() / 10, 2))
probs = nd.random.multinomial(nd.array([0.2, 0.3, 0.5]), shape=100000)
print(np.bincount(probs.asnumpy().ravel(), minlength=3) / 100000.0)
dense = gluon.nn.Dense(500, in_units=400)
dense.initialize(mx.init.Xavier())
w = dense.weight.data().asnumpy()
print(round(abs(w).max() / np.sqrt(6.0 / 900), 2), round(w.std() / np.sqrt(2.0 / 900), 1))
dense2 = gluon.nn.Dense(300, in_units=300)
dense2.initialize(mx.init.Normal(0.1))
print(round(dense2.weight.data().asnumpy().std(), 2), dense2.bias.data().sum().asscalar())
