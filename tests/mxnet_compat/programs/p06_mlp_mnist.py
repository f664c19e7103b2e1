# source: MXNet 1.x example/gluon/mnist (an MLP on MNIST), trimmed to 3000 images, one epoch
# needs: shared-data
# compare: band=0.06
import os
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn
from mxnet.gluon.data.vision import transforms

root = os.path.join(os.environ['DATA_ROOT'], 'mnist')
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.13, 0.31)])
train = gluon.data.vision.MNIST(root=root, train=True).transform_first(tf).take(2000)
test = gluon.data.vision.MNIST(root=root, train=False).transform_first(tf).take(500)
train_data = gluon.data.DataLoader(train, batch_size=64, shuffle=True)
test_data = gluon.data.DataLoader(test, batch_size=200)
net = nn.HybridSequential()
net.add(nn.Dense(128, activation='relu'), nn.Dense(64, activation='relu'), nn.Dense(10))
net.initialize(mx.init.Xavier(magnitude=2.24))
net.hybridize()
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
metric = mx.metric.Accuracy()
for data, label in train_data:
    with autograd.record():
        loss = loss_fn(net(data), label)
    loss.backward()
    trainer.step(data.shape[0])
for data, label in test_data:
    metric.update([label], [net(data)])
print('test accuracy', round(metric.get()[1], 2))
