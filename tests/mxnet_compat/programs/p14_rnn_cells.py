# source: MXNet 1.x gluon.rnn cells (LSTMCell, GRUCell, SequentialRNNCell, unroll)
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import gluon, nd

stack = gluon.rnn.SequentialRNNCell()
stack.add(gluon.rnn.LSTMCell(4, input_size=3))
stack.add(gluon.rnn.GRUCell(2, input_size=4))
stack.initialize()
for i, p in enumerate(stack.collect_params().values()):
    p.set_data(nd.array(np.random.RandomState(i).uniform(-0.5, 0.5, p.shape)))
x = nd.array(np.random.RandomState(3).normal(size=(2, 5, 3)))
outputs, states = stack.unroll(5, x, layout='NTC', merge_outputs=True)
print(outputs.shape, len(states))
print(outputs[:, -1])
cell = gluon.rnn.RNNCell(3, activation='tanh', input_size=3)
cell.initialize(mx.init.Constant(0.1))
state = cell.begin_state(batch_size=2)
for t in range(3):
    y, state = cell(x[:, t], state)
print(y)
