# source: "Softmax regression from scratch" (d2l, MXNet edition) on synthetic data
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, nd

rs = np.random.RandomState(7)
X = nd.array(rs.normal(size=(60, 4)))
y = nd.array(rs.randint(0, 3, 60))
W = nd.array(rs.normal(scale=0.01, size=(4, 3)))
b = nd.zeros(3)
W.attach_grad()
b.attach_grad()


def softmax(X):
    X_exp = X.exp()
    partition = X_exp.sum(axis=1, keepdims=True)
    return X_exp / partition


def net(X):
    return softmax(nd.dot(X.reshape((-1, 4)), W) + b)


def cross_entropy(y_hat, y):
    return -nd.pick(y_hat, y).log()


def accuracy(y_hat, y):
    return (y_hat.argmax(axis=1) == y.astype('float32')).mean().asscalar()


for epoch in range(5):
    for i in range(0, 60, 20):
        with autograd.record():
            l = cross_entropy(net(X[i:i + 20]), y[i:i + 20])
        l.backward()
        for param in [W, b]:
            param[:] = param - 0.1 * param.grad / 20
    print('epoch %d, loss %.4f, train acc %.3f' % (epoch + 1, cross_entropy(net(X), y).mean().asscalar(),
                                                   accuracy(net(X), y)))
