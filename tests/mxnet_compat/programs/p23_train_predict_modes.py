# source: MXNet 1.x autograd train_mode/predict_mode with Dropout and BatchNorm
# compare: rtol=1e-5 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

net = nn.HybridSequential()
net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4, momentum=0.5), nn.Dropout(0.5))
net.initialize(mx.init.Constant(0.3))
x = nd.array(np.arange(12).reshape(4, 3) / 10)
print(net(x))
with autograd.record():
    y = net[1](net[0](x))
y.backward()
print(y)
print(net[1].running_mean.data(), net[1].running_var.data())
with autograd.predict_mode():
    print(net(x))
with autograd.record(train_mode=False):
    print(net(x).sum())
print(autograd.is_training())
