# source: "Linear regression from scratch" (the Gluon 1.x tutorial / d2l, MXNet edition)
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, nd

np.random.seed(0)
true_w, true_b = np.array([2, -3.4]), 4.2
X = np.random.normal(size=(200, 2))
y = X @ true_w + true_b + 0.01 * np.random.normal(size=200)
features, labels = nd.array(X), nd.array(y)
w = nd.array(np.random.normal(0, 0.01, (2, 1)))
b = nd.zeros(1)
w.attach_grad()
b.attach_grad()


def linreg(X, w, b):
    return nd.dot(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def sgd(params, lr, batch_size):
    for param in params:
        param[:] = param - lr * param.grad / batch_size


lr, batch_size = 0.03, 10
for epoch in range(3):
    for i in range(0, 200, batch_size):
        Xb, yb = features[i:i + batch_size], labels[i:i + batch_size]
        with autograd.record():
            l = squared_loss(linreg(Xb, w, b), yb)
        l.backward()
        sgd([w, b], lr, batch_size)
    train_l = squared_loss(linreg(features, w, b), labels)
    print('epoch %d, loss %f' % (epoch + 1, train_l.mean().asnumpy()))
print(w.asnumpy().ravel(), b.asscalar())
