# source: gluon.utils.clip_global_norm and Trainer(ignore_stale_grad) as the LM examples use them
# compare: rtol=1e-5 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd

arrays = [nd.array([3.0, 4.0]), nd.array([[12.0]])]
norm = gluon.utils.clip_global_norm(arrays, 6.5)
print(norm, arrays[0], arrays[1])
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Dense(2, in_units=3), gluon.nn.Dense(2, in_units=3))
net.initialize(mx.init.One())
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
with autograd.record():
    out = net[0](nd.ones((1, 3)))
out.backward()
try:
    trainer.step(1)
except UserWarning:
    print('stale gradient refused')
with autograd.record():
    out = net[0](nd.ones((1, 3)))
out.backward()
trainer.step(1, ignore_stale_grad=True)
print(net[0].weight.data(), net[1].weight.data())
print(gluon.utils.split_data(nd.arange(10), 3, even_split=False))
