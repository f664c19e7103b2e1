# source: MXNet 1.x "Parameter management" (collect_params, select, init, set_data, grad_req, save/load)
# compare: rtol=1e-6 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import gluon, init, nd
from mxnet.gluon import nn

net = nn.Sequential()
net.add(nn.Dense(4, activation='relu'), nn.Dense(2))
net.initialize(init.Constant(0.01))
x = nd.ones((3, 5))
net(x)
params = net.collect_params()
print(len(params.keys()), sorted(p.shape for p in params.values()))
print(len(net.collect_params('.*weight').keys()), len(net.collect_params('.*bias').keys()))
w = net[0].weight
print(w.shape, w.data()[0])
w.set_data(nd.ones(w.shape) * 0.2)
net[1].initialize(init.One(), force_reinit=True)
print(net(x))
net[0].bias.grad_req = 'null'
print(net[0].bias.grad_req, net[0].weight.grad_req)
net.save_parameters('mlp.params')
clone = nn.Sequential()
clone.add(nn.Dense(4, activation='relu'), nn.Dense(2))
clone.load_parameters('mlp.params')
print(clone(x) == net(x))
