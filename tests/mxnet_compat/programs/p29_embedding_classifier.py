# source: a bag-of-embeddings text classifier (Embedding + mean + Dense), the Gluon 1.x NLP pattern
# compare: rtol=1e-4 atol=1e-5
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

rs = np.random.RandomState(5)
tokens = rs.randint(0, 20, (32, 6)).astype('float32')
labels = (tokens.mean(axis=1) > 9.5).astype('float32')


class BagOfWords(nn.HybridBlock):
    def __init__(self, **kwargs):
        super(BagOfWords, self).__init__(**kwargs)
        with self.name_scope():
            self.embedding = nn.Embedding(20, 4)
            self.output = nn.Dense(2, in_units=4)

    def hybrid_forward(self, F, x):
        return self.output(F.mean(self.embedding(x), axis=1))


net = BagOfWords()
net.initialize()
for i, p in enumerate(net.collect_params().values()):
    p.set_data(nd.array(np.random.RandomState(i).uniform(-0.5, 0.5, p.shape)))
net.hybridize()
trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.05})
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
data = gluon.data.DataLoader(gluon.data.ArrayDataset(tokens, labels), batch_size=8)
for epoch in range(4):
    total, acc = 0.0, mx.metric.Accuracy()
    for x, y in data:
        with autograd.record():
            out = net(x)
            l = loss_fn(out, y)
        l.backward()
        trainer.step(x.shape[0])
        total += l.sum().asscalar()
        acc.update(y, out)
    print(epoch, round(total / 32, 5), acc.get())
