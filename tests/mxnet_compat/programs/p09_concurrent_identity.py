# source: gluon.contrib.nn (HybridConcurrent, Identity) as in the Inception / ResNet examples
# compare: rtol=1e-5 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import gluon, nd
from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import HybridConcurrent, Identity

net = HybridConcurrent(axis=1)
net.add(nn.Dense(3, in_units=4), nn.Dense(2, in_units=4), Identity())
net.initialize(mx.init.Constant(0.5))
x = nd.array(np.linspace(-1, 1, 8).reshape(2, 4))
print(net(x))
net.hybridize()
print(net(x).shape)
