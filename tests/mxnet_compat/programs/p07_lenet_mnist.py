# source: MXNet 1.x Gluon crash course "Train the neural network" (LeNet on MNIST), trimmed
# needs: shared-data
# (the weights are drawn with NumPy after Xavier's, and NumPy's seed orders the batches, so
# both frameworks train the same network on the same batches)
# compare: band=0.02
import os
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import nn
from mxnet.gluon.data.vision import datasets, transforms

root = os.path.join(os.environ['DATA_ROOT'], 'mnist')
transformer = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.13, 0.31)])
train = datasets.MNIST(root=root, train=True).transform_first(transformer).take(1500)
valid = datasets.MNIST(root=root, train=False).transform_first(transformer).take(500)
train_data = gluon.data.DataLoader(train, batch_size=50, shuffle=True, num_workers=2)
valid_data = gluon.data.DataLoader(valid, batch_size=100)
net = nn.HybridSequential()
net.add(nn.Conv2D(channels=6, kernel_size=5, activation='relu'), nn.MaxPool2D(pool_size=2, strides=2),
        nn.Conv2D(channels=16, kernel_size=3, activation='relu'), nn.MaxPool2D(pool_size=2, strides=2),
        nn.Flatten(), nn.Dense(120, activation='relu'), nn.Dense(84, activation='relu'), nn.Dense(10))
net.initialize(init=init.Xavier())
net(nd.ones((1, 1, 28, 28)))
for i, p in enumerate(net.collect_params().values()):
    p.set_data(nd.array(np.random.RandomState(i).uniform(-0.2, 0.2, p.shape)))
np.random.seed(0)
net.hybridize()
softmax_cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()
trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.003})


def acc(output, label):
    return (output.argmax(axis=1) == label.astype('float32')).mean().asscalar()


for epoch in range(1):
    train_acc, valid_acc = 0., 0.
    for data, label in train_data:
        data, label = data.as_in_context(mx.cpu()), label.as_in_context(mx.cpu())
        with autograd.record():
            output = net(data)
            loss = softmax_cross_entropy(output, label)
        loss.backward()
        trainer.step(batch_size=50)
        train_acc += acc(output, label)
    for data, label in valid_data:
        valid_acc += acc(net(data), label)
    print("Epoch %d: train acc %.2f, test acc %.2f" % (epoch, train_acc / len(train_data), valid_acc / len(valid_data)))
