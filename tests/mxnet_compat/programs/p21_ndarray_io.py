# source: MXNet 1.x "NDArray serialization" (nd.save / nd.load of lists and dicts)
# compare: rtol=1e-6 atol=1e-6
import numpy as np
import mxnet as mx
from mxnet import nd

a = nd.array(np.arange(6).reshape(2, 3))
b = nd.ones((2,), dtype='int32')
nd.save('list.nd', [a, b])
nd.save('dict.nd', {'a': a, 'b': b})
l = nd.load('list.nd')
d = nd.load('dict.nd')
print(type(l).__name__, len(l), l[0], l[1].dtype == np.int32)
print(sorted(d.keys()), d['a'].shape)
nd.save('one.nd', a)
print(nd.load('one.nd')[0].asnumpy().sum())
