# source: MXNet 1.x "Automatic differentiation with autograd" tutorial
# compare: rtol=1e-5 atol=1e-6
import mxnet as mx
from mxnet import autograd, nd

x = nd.array([[1, 2], [3, 4]])
x.attach_grad()
with autograd.record():
    y = x * 2
    z = y * x
z.backward()
print(x.grad)


def f(a):
    b = a * 2
    while b.norm().asscalar() < 1000:
        b = b * 2
    if b.sum().asscalar() > 0:
        c = b
    else:
        c = 100 * b
    return c


a = nd.array([0.3, -0.2, 0.5])
a.attach_grad()
with autograd.record():
    c = f(a)
c.backward()
print(a.grad, (a.grad == c / a))
x = nd.array([1.0, 2.0, 3.0])
x.attach_grad()
with autograd.record():
    y = nd.sigmoid(x) * nd.tanh(x)
y.backward(nd.array([1.0, 0.5, 0.1]))
print(x.grad)
print(autograd.is_recording(), autograd.is_training())
with autograd.record():
    print(autograd.is_recording(), autograd.is_training())
with autograd.record(train_mode=False):
    print(autograd.is_training())
