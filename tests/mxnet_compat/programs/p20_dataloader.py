# source: MXNet 1.x "Datasets and DataLoaders" tutorial
# compare: rtol=1e-6 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import gluon, nd

mx.random.seed(42)
X = nd.array(np.arange(20).reshape(10, 2))
y = nd.array(np.arange(10) % 3)
dataset = gluon.data.ArrayDataset(X, y)
features, label = dataset[3]
print(len(dataset), features, label)
for last in ['keep', 'discard', 'rollover']:
    loader = gluon.data.DataLoader(dataset, batch_size=4, last_batch=last)
    print(last, len(loader), [batch[0].shape for batch in loader])
loader = gluon.data.DataLoader(dataset, batch_size=3, num_workers=2)
for X_batch, y_batch in loader:
    print(X_batch.shape, y_batch.asnumpy())
np.random.seed(3)
shuffled = gluon.data.DataLoader(dataset, batch_size=5, shuffle=True)
print([b[1].asnumpy().tolist() for b in shuffled])
squares = gluon.data.SimpleDataset([i for i in range(6)]).transform(lambda v: v * v)
print(list(squares))
