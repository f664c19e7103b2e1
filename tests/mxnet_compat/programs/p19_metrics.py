# source: MXNet 1.x mx.metric API reference examples
# compare: rtol=1e-6 atol=1e-7
import numpy as np
import mxnet as mx
from mxnet import nd

predicts = [nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])]
labels = [nd.array([0, 1, 1])]
for name in ['acc', 'f1', 'mcc', 'ce', 'nll_loss', 'mae', 'mse', 'rmse']:
    metric = mx.metric.create(name)
    metric.update(labels=labels, preds=predicts if name not in ('mae', 'mse', 'rmse')
                  else [nd.array([0.2, 0.9, 0.8])])
    print(metric.get())
top = mx.metric.TopKAccuracy(top_k=2)
top.update([nd.array([2, 0, 1])], [nd.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.8, 0.1, 0.1]])])
print(top.get())
perp = mx.metric.Perplexity(ignore_label=None)
perp.update([nd.array([0, 1, 1])], [nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
print(perp.get())
comp = mx.metric.CompositeEvalMetric()
comp.add(mx.metric.Accuracy())
comp.add(mx.metric.create(lambda label, pred: float(np.abs(label - pred.argmax(axis=1)).sum())))
comp.update(labels, predicts)
print(comp.get())
loss = mx.metric.Loss()
loss.update(None, [nd.array([1.0, 2.0, 3.0])])
print(loss.get(), loss.get_name_value())
