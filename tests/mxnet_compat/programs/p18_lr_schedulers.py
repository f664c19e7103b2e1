# source: MXNet 1.x "Learning rate schedules" tutorial (mx.lr_scheduler)
# compare: rtol=1e-6 atol=1e-8
import mxnet as mx
from mxnet import autograd, gluon, nd

schedules = [mx.lr_scheduler.FactorScheduler(step=250, factor=0.5, base_lr=1.0),
             mx.lr_scheduler.MultiFactorScheduler(step=[250, 750, 900], factor=0.5, base_lr=1.0),
             mx.lr_scheduler.PolyScheduler(max_update=1000, base_lr=1.0, pwr=2),
             mx.lr_scheduler.CosineScheduler(max_update=1000, base_lr=1.0, final_lr=0.01),
             mx.lr_scheduler.FactorScheduler(step=250, factor=0.5, base_lr=1.0, warmup_steps=100,
                                             warmup_begin_lr=0.1)]
for s in schedules:
    print(type(s).__name__, [round(s(i), 6) for i in (0, 1, 50, 250, 251, 500, 800, 999)])
net = gluon.nn.Dense(1, in_units=1)
net.initialize(mx.init.One())
sched = mx.lr_scheduler.FactorScheduler(step=2, factor=0.5)
sched.base_lr = 0.4
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'lr_scheduler': sched})
for i in range(6):
    with autograd.record():
        l = net(nd.ones((1, 1)))
    l.backward()
    trainer.step(1)
    print(i, trainer.learning_rate, float(net.weight.data().asnumpy()[0, 0]))
