# source: MXNet 1.x "Training with multiple GPUs" notebook, on two CPU contexts
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

ctx = [mx.cpu(0), mx.cpu(1)]
rs = np.random.RandomState(0)
X, Y = rs.normal(size=(16, 5)).astype('float32'), rs.randint(0, 3, 16).astype('float32')
net = nn.HybridSequential()
net.add(nn.Dense(8, activation='relu'), nn.Dense(3))
net.initialize(mx.init.Constant(0.1), ctx=ctx)
net.hybridize()
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
loss = gluon.loss.SoftmaxCrossEntropyLoss()
for epoch in range(3):
    data = gluon.utils.split_and_load(nd.array(X), ctx)
    label = gluon.utils.split_and_load(nd.array(Y), ctx)
    with autograd.record():
        losses = [loss(net(x), y) for x, y in zip(data, label)]
    for l in losses:
        l.backward()
    trainer.step(16)
    print('epoch', epoch, sum(l.sum().asscalar() for l in losses) / 16)
print([w.context for w in net[0].weight.list_data()])
print(net[0].weight.data(ctx[1])[0])
