# source: MXNet 1.x "Hybridize" tutorial (hybridize, static_alloc, export)
# compare: rtol=1e-5 atol=1e-6
import os
import numpy as np
import mxnet as mx
from mxnet import nd
from mxnet.gluon import nn

net = nn.HybridSequential()
net.add(nn.Dense(16, activation='relu'), nn.Dense(8, activation='tanh'), nn.Dense(2))
net.initialize(mx.init.Constant(0.05))
x = nd.array(np.random.RandomState(0).uniform(-1, 1, (4, 10)))
before = net(x)
net.hybridize(static_alloc=True, static_shape=True)
after = net(x)
print(before)
print(nd.abs(before - after).max() < 1e-6)
net.export('mlp', epoch=1)
print(sorted(f for f in os.listdir('.') if f.startswith('mlp')))
