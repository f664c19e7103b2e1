# source: MXNet 1.x gluon.loss API reference (every loss on fixed data)
# compare: rtol=1e-5 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import gluon, nd

rs = np.random.RandomState(4)
pred = nd.array(rs.normal(size=(3, 4)))
real = nd.array(rs.normal(size=(3, 4)))
signed = nd.array(np.sign(rs.normal(size=(3, 4))))
binary = (signed + 1) / 2
cls = nd.array([0, 3, 1])
probs = nd.softmax(nd.array(rs.normal(size=(3, 4))))
L = gluon.loss
for name, loss, args in [('l2', L.L2Loss(), (pred, real)), ('l1', L.L1Loss(), (pred, real)),
                         ('huber', L.HuberLoss(rho=0.5), (pred, real)),
                         ('sce', L.SoftmaxCrossEntropyLoss(), (pred, cls)),
                         ('sce_dense', L.SoftmaxCrossEntropyLoss(sparse_label=False), (pred, probs)),
                         ('bce', L.SigmoidBinaryCrossEntropyLoss(), (pred, binary)),
                         ('kl', L.KLDivLoss(from_logits=False), (pred, probs)),
                         ('hinge', L.HingeLoss(), (pred, signed)),
                         ('sq_hinge', L.SquaredHingeLoss(), (pred, signed)),
                         ('logistic', L.LogisticLoss(), (pred, signed))]:
    print(name, loss(*args))
print(L.L2Loss(weight=0.5)(pred, real, nd.array([[1], [0], [2]])))
