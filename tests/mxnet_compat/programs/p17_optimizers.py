# source: MXNet 1.x mx.optimizer reference: every optimizer, five Trainer steps on one problem
# compare: rtol=2e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd

rs = np.random.RandomState(0)
X, Y = nd.array(rs.normal(size=(6, 4))), nd.array(rs.normal(size=(6, 2)))
for name, kwargs in [('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3}),
                     ('nag', {'learning_rate': 0.1, 'momentum': 0.9}),
                     ('adam', {'learning_rate': 0.05}), ('rmsprop', {'learning_rate': 0.01}),
                     ('adagrad', {'learning_rate': 0.1}), ('adadelta', {}), ('adamax', {}),
                     ('ftrl', {}), ('signum', {'learning_rate': 0.01}),
                     ('sgd', {'learning_rate': 0.1, 'clip_gradient': 0.1, 'rescale_grad': 2.0})]:
    net = gluon.nn.Dense(2, in_units=4)
    net.initialize(mx.init.Constant(0.2))
    trainer = gluon.Trainer(net.collect_params(), name, kwargs)
    for step in range(5):
        with autograd.record():
            loss = ((net(X) - Y) ** 2).mean()
        loss.backward()
        trainer.step(1)
    print(name, net.weight.data().asnumpy().round(5).tolist(), round(float(loss.asscalar()), 5))
opt = mx.optimizer.create('sgd', learning_rate=0.3)
print(type(opt).__name__, opt.learning_rate)
