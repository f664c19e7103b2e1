# source: a custom HybridBlock loss in hybrid_forward(F, ...) style (as 1.x tutorials write losses)
# compare: rtol=1e-5 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd


class FocalLoss(gluon.loss.Loss):
    def __init__(self, gamma=2.0, axis=-1, **kwargs):
        super(FocalLoss, self).__init__(None, 0, **kwargs)
        self._gamma, self._axis = gamma, axis

    def hybrid_forward(self, F, pred, label):
        prob = F.softmax(pred, axis=self._axis)
        p = F.pick(prob, label, axis=self._axis, keepdims=True)
        loss = -F.power(1 - p, self._gamma) * F.log(p)
        return F.mean(loss, axis=self._batch_axis, exclude=True)


pred = nd.array(np.random.RandomState(1).normal(size=(4, 3)))
label = nd.array([0, 2, 1, 1])
pred.attach_grad()
loss_fn = FocalLoss()
with autograd.record():
    l = loss_fn(pred, label)
l.backward()
print(l)
print(pred.grad)
loss_fn.hybridize()
print(loss_fn(pred, label))
