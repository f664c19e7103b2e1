# source: MXNet 1.x "Deferred initialization" tutorial
# compare: rtol=1e-6 atol=1e-6
import mxnet as mx
from mxnet import init, nd
from mxnet.gluon import nn

net = nn.Sequential()
net.add(nn.Dense(256, activation='relu'), nn.Dense(10))
net.initialize(init=init.Xavier())
print([p.shape for p in net.collect_params().values()])
net(nd.ones((2, 20)))
print([p.shape for p in net.collect_params().values()])
conv = nn.Conv2D(8, 3, padding=1)
conv.initialize()
print(conv(nd.ones((1, 3, 7, 7))).shape, conv.weight.shape)
