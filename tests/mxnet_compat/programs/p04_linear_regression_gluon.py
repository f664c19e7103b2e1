# source: "Linear regression, the concise implementation" with gluon.nn.Dense, gluon.data, Trainer
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import data as gdata, loss as gloss, nn

np.random.seed(1)
X = np.random.normal(size=(100, 2)).astype('float32')
y = (X @ np.array([2, -3.4]) + 4.2).astype('float32')
data_iter = gdata.DataLoader(gdata.ArrayDataset(nd.array(X), nd.array(y)), batch_size=10, shuffle=False)
net = nn.Sequential()
net.add(nn.Dense(1))
net.initialize(init.Constant(0.1))
loss = gloss.L2Loss()
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.03})
for epoch in range(3):
    for Xb, yb in data_iter:
        with autograd.record():
            l = loss(net(Xb), yb)
        l.backward()
        trainer.step(10)
    print('epoch %d, loss: %f' % (epoch + 1, loss(net(nd.array(X)), nd.array(y)).mean().asnumpy()))
dense = net[0]
print(dense.weight.data(), dense.bias.data())
