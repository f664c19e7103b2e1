# source: MXNet 1.x "Using pre-trained models" (gluon.model_zoo.vision.get_model), shapes only
# compare: rtol=0 atol=0
import mxnet as mx
from mxnet import nd
from mxnet.gluon.model_zoo import vision

for name, size in [('resnet18_v1', 64), ('resnet50_v2', 64), ('squeezenet1.1', 224)]:
    net = vision.get_model(name, classes=7)
    net.initialize(mx.init.Xavier())
    out = net(nd.ones((2, 3, size, size)))
    count = sum(p.data().size for p in net.collect_params().values())
    print(name, out.shape, count)
print(vision.resnet18_v1(classes=5).__class__.__name__)
