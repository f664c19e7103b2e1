# source: MXNet 1.x "Convolutional layers" shapes (Conv2D, pooling, transposed conv, global pools)
# compare: rtol=0 atol=0
import mxnet as mx
from mxnet import nd
from mxnet.gluon import nn

x = nd.ones((2, 3, 17, 17))
for layer in [nn.Conv2D(8, 3), nn.Conv2D(8, 3, strides=2, padding=1), nn.Conv2D(8, (5, 3), dilation=(2, 1)),
              nn.Conv2D(6, 3, groups=3), nn.MaxPool2D(), nn.MaxPool2D(3, 2, ceil_mode=True), nn.AvgPool2D(3, 2, 1),
              nn.GlobalAvgPool2D(), nn.GlobalMaxPool2D(), nn.Conv2DTranspose(4, 3, strides=2),
              nn.Conv2DTranspose(4, 4, strides=2, padding=1, output_padding=1)]:
    layer.initialize()
    print(type(layer).__name__, layer(x).shape)
print(nn.Conv1D(4, 3)(nd.ones((2, 3, 10))).shape if False else nn.MaxPool1D(2)(nd.ones((2, 3, 10))).shape)
