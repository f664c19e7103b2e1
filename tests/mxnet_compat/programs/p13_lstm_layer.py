# source: MXNet 1.x "RNN layers" (gluon.rnn.LSTM with begin_state), weights set from NumPy
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import gluon, nd

layer = gluon.rnn.LSTM(5, num_layers=2, input_size=3)
layer.initialize()
for i, p in enumerate(layer.collect_params().values()):
    p.set_data(nd.array(np.random.RandomState(i).uniform(-0.4, 0.4, p.shape)))
x = nd.array(np.random.RandomState(9).normal(size=(4, 2, 3)))
h0 = layer.begin_state(batch_size=2)
out, (h, c) = layer(x, h0)
print(out.shape, h.shape, c.shape)
print(out[-1])
print(h)
gru = gluon.rnn.GRU(4, layout='NTC', input_size=3)
gru.initialize()
for i, p in enumerate(gru.collect_params().values()):
    p.set_data(nd.array(np.random.RandomState(10 + i).uniform(-0.4, 0.4, p.shape)))
print(gru(x.transpose((1, 0, 2))).sum(axis=1))
