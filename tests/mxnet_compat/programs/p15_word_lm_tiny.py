# source: MXNet 1.x example/gluon/word_language_model (Embedding + LSTM + Dense, detach, clip_global_norm), tiny
# compare: rtol=1e-3 atol=1e-4
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn, rnn

text = "the cat sat on the mat the dog sat on the log the cat ate the rat".split()
vocab = sorted(set(text))
ids = np.array([vocab.index(w) for w in text], dtype='float32')


class RNNModel(gluon.Block):
    def __init__(self, vocab_size, embed, hidden, **kwargs):
        super(RNNModel, self).__init__(**kwargs)
        with self.name_scope():
            self.encoder = nn.Embedding(vocab_size, embed)
            self.rnn = rnn.LSTM(hidden, input_size=embed)
            self.decoder = nn.Dense(vocab_size, in_units=hidden)

    def forward(self, inputs, hidden):
        output, hidden = self.rnn(self.encoder(inputs), hidden)
        return self.decoder(output.reshape((-1, output.shape[2]))), hidden


model = RNNModel(len(vocab), 6, 8)
model.initialize()
for i, p in enumerate(model.collect_params().values()):
    p.set_data(nd.array(np.random.RandomState(i).uniform(-0.3, 0.3, p.shape)))
trainer = gluon.Trainer(model.collect_params(), 'sgd', {'learning_rate': 0.5})
loss = gluon.loss.SoftmaxCrossEntropyLoss()
data = nd.array(ids[:-1].reshape(-1, 2, order='F'))
target = nd.array(ids[1:].reshape(-1, 2, order='F'))
hidden = model.rnn.begin_state(batch_size=2)
for epoch in range(5):
    hidden = [h.detach() for h in hidden]
    with autograd.record():
        output, hidden = model(data, hidden)
        L = loss(output, target.reshape((-1,)))
    L.backward()
    grads = [p.grad() for p in model.collect_params().values()]
    norm = gluon.utils.clip_global_norm(grads, 0.5)
    trainer.step(data.size)
    print('epoch %d loss %.5f norm %.4f' % (epoch, L.mean().asscalar(), norm))
