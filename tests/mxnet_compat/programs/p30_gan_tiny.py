# source: MXNet 1.x example/gluon/dc_gan training loop (two Trainers, detach), on 1-D data
# compare: rtol=1e-3 atol=1e-4
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

rs = np.random.RandomState(0)
real = nd.array(rs.normal(3, 0.5, (16, 1)))
noise = nd.array(rs.normal(size=(16, 2)))
netG = nn.HybridSequential()
netG.add(nn.Dense(8, activation='relu', in_units=2), nn.Dense(1, in_units=8))
netD = nn.HybridSequential()
netD.add(nn.Dense(8, activation='tanh', in_units=1), nn.Dense(1, in_units=8))
for net, seed in ((netG, 10), (netD, 20)):
    net.initialize()
    for i, p in enumerate(net.collect_params().values()):
        p.set_data(nd.array(np.random.RandomState(seed + i).uniform(-0.5, 0.5, p.shape)))
loss = gluon.loss.SigmoidBinaryCrossEntropyLoss()
trainerG = gluon.Trainer(netG.collect_params(), 'adam', {'learning_rate': 0.01, 'beta1': 0.5})
trainerD = gluon.Trainer(netD.collect_params(), 'adam', {'learning_rate': 0.01, 'beta1': 0.5})
ones, zeros = nd.ones((16,)), nd.zeros((16,))
for it in range(8):
    with autograd.record():
        fake = netG(noise)
        errD = loss(netD(real), ones) + loss(netD(fake.detach()), zeros)
    errD.backward()
    trainerD.step(16)
    with autograd.record():
        errG = loss(netD(netG(noise)), ones)
    errG.backward()
    trainerG.step(16)
    print(it, round(errD.mean().asscalar(), 5), round(errG.mean().asscalar(), 5))
print(netG(noise).mean())
