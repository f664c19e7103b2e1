# source: "Softmax regression, concise" with SoftmaxCrossEntropyLoss and mx.metric.Accuracy
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import nn

np.random.seed(2)
centers = np.array([[2, 0], [-2, 1], [0, -2]])
label = np.repeat(np.arange(3), 40)
X = (centers[label] + np.random.normal(size=(120, 2))).astype('float32')
dataset = gluon.data.ArrayDataset(X, label.astype('float32'))
loader = gluon.data.DataLoader(dataset, batch_size=16, last_batch='keep')
net = nn.Dense(3)
net.initialize(init.Zero())
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
metric = mx.metric.Accuracy()
for epoch in range(4):
    metric.reset()
    total = 0.0
    for data, y in loader:
        with autograd.record():
            out = net(data)
            loss = loss_fn(out, y)
        loss.backward()
        trainer.step(data.shape[0])
        metric.update([y], [out])
        total += loss.sum().asscalar()
    name, acc = metric.get()
    print('epoch %d loss %.4f %s %.4f' % (epoch, total / 120, name, acc))
