# source: MXNet 1.x "Custom layers" / "Blocks" tutorials (Block, HybridBlock, params.get, hybrid_forward)
# compare: rtol=1e-5 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import gluon, nd
from mxnet.gluon import nn


class CenteredLayer(nn.HybridBlock):
    def hybrid_forward(self, F, x):
        return x - F.mean(x)


class MyDense(nn.Block):
    def __init__(self, units, in_units, **kwargs):
        super(MyDense, self).__init__(**kwargs)
        with self.name_scope():
            self.weight = self.params.get('weight', shape=(in_units, units))
            self.bias = self.params.get('bias', shape=(units,))

    def forward(self, x):
        return nd.relu(nd.dot(x, self.weight.data()) + self.bias.data())


class Scaled(nn.HybridBlock):
    def __init__(self, **kwargs):
        super(Scaled, self).__init__(**kwargs)
        with self.name_scope():
            self.scale = self.params.get('scale', shape=(1,), init=mx.init.Constant(2.0))
            self.dense = nn.Dense(3, in_units=4)

    def hybrid_forward(self, F, x, scale):
        return F.broadcast_mul(self.dense(x), scale)


print(CenteredLayer()(nd.array([1, 2, 3, 4, 5])))
dense = MyDense(units=3, in_units=5)
dense.initialize(mx.init.Constant(0.1))
print(dense(nd.ones((2, 5)) * nd.array(np.arange(5))))
net = Scaled()
net.initialize(mx.init.One())
x = nd.array(np.arange(8).reshape(2, 4) / 8)
print(net(x))
net.hybridize()
print(net(x), len(net.collect_params().keys()))
