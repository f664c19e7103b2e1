"""The vision model zoo of Gluon (``gluon.model_zoo.vision``), built by name.

    net = get_model("resnet18_v1", classes=10, thumbnail=True)   # CIFAR-sized ResNet-18

Names are Gluon's (``squeezenet1.0``, ``inceptionv3``, ...); the function names
(``squeezenet1_0``, ``inception_v3``) are accepted too. Input sizes are Gluon's:
``inceptionv3`` expects 299x299 images, the others 224x224. ResNet, DenseNet and SqueezeNet
pool globally and also run on small images (ResNet's ``thumbnail`` stem is made for 32x32
and 28x28); AlexNet and VGG take any size their pooling allows, their first Dense layer
sizing itself on the first batch unless ``input_size`` is given.

Parameter counts for 1000 classes (trainable: BatchNorm's running statistics excluded) are
the published ones; ``tests/test_zoo.py`` lists them with their sources.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ... import nn
from .alexnet import AlexNet, alexnet
from .densenet import DenseNet, densenet121, densenet161, densenet169, densenet201
from .inception import Inception3, inception_v3
from .resnet import (BasicBlockV1, BasicBlockV2, BottleneckV1, BottleneckV2, ResNetV1, ResNetV2,
                     resnet18_v1, resnet18_v2, resnet34_v1, resnet34_v2, resnet50_v1, resnet50_v2,
                     resnet101_v1, resnet101_v2, resnet152_v1, resnet152_v2)
from .squeezenet import SqueezeNet, squeezenet1_0, squeezenet1_1
from .vgg import (VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn)

# Gluon's names, in its get_model's order
MODELS: dict[str, Callable[..., nn.HybridBlock]] = {
    "resnet18_v1": resnet18_v1, "resnet34_v1": resnet34_v1, "resnet50_v1": resnet50_v1,
    "resnet101_v1": resnet101_v1, "resnet152_v1": resnet152_v1,
    "resnet18_v2": resnet18_v2, "resnet34_v2": resnet34_v2, "resnet50_v2": resnet50_v2,
    "resnet101_v2": resnet101_v2, "resnet152_v2": resnet152_v2,
    "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19,
    "vgg11_bn": vgg11_bn, "vgg13_bn": vgg13_bn, "vgg16_bn": vgg16_bn, "vgg19_bn": vgg19_bn,
    "alexnet": alexnet,
    "densenet121": densenet121, "densenet161": densenet161, "densenet169": densenet169,
    "densenet201": densenet201,
    "squeezenet1.0": squeezenet1_0, "squeezenet1.1": squeezenet1_1,
    "inceptionv3": inception_v3,
}
# the constructor functions' names, also accepted
ALIASES = {"squeezenet1_0": "squeezenet1.0", "squeezenet1_1": "squeezenet1.1",
           "inception_v3": "inceptionv3"}


def model_names() -> list[str]:
    """Every name get_model accepts (Gluon's names, then the aliases)."""
    return list(MODELS) + list(ALIASES)


def get_model(name: str, classes: int | None = 1000, in_channels: int | None = None,
              input_size: int | None = None, thumbnail: bool | None = None,
              pretrained: bool = False, ctx: Any = None, root: str | None = None,
              **kwargs: Any) -> nn.HybridBlock:
    """The zoo model ``name`` (see :func:`model_names`), untrained.

    classes: outputs of the last layer (None: 1000, ImageNet's).
    in_channels: image channels (None: inferred from the first batch). Given, every
      parameter shape is known at construction (AlexNet/VGG also need ``input_size``).
    input_size: side of the square input images; AlexNet and VGG size their first Dense
      layer from it; the other models do not need it and ignore it.
    thumbnail: ResNet only: a 3x3/1 stem without max pooling, for 32x32 or 28x28 images.
    pretrained: load MXNet's ImageNet weights (``pretrained.pretrained_file``: the
      model-zoo ``.params`` file under ``root``, MXNet's ``~/.mxnet/models`` by default,
      downloaded and SHA-1-checked when missing); they need ``classes=1000``.
    ctx: the context(s) the pretrained weights go to.
    kwargs: further arguments of the model's class (e.g. ``dropout`` of DenseNet).
    """
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; choose one of: {', '.join(model_names())}")
    build = MODELS[key]
    args = dict(kwargs, classes=1000 if classes is None else classes)
    if in_channels is not None:
        args["in_channels"] = in_channels
    if thumbnail and not key.startswith("resnet"):
        raise ValueError(f"thumbnail applies to the ResNet models only, not to {key!r}")
    if thumbnail is not None and key.startswith("resnet"):
        args["thumbnail"] = thumbnail
    if input_size is not None:
        if input_size < 1:
            raise ValueError(f"input_size must be a positive number of pixels, got {input_size}")
        if key == "alexnet" or key.startswith("vgg"):
            args["input_size"] = input_size
    net = build(**args)
    if pretrained:
        from .pretrained import pretrained_file
        net.load_parameters(str(pretrained_file(key, root)), ctx=ctx)
    return net


def num_parameters(net: nn.Block, trainable: bool = True) -> int:
    """Number of parameter values of ``net`` (only those with a gradient when ``trainable``,
    i.e. without BatchNorm's running statistics). Needs every shape known: build with
    ``in_channels`` (and ``input_size`` for AlexNet/VGG) or run one batch first."""
    params = {name: p for name, p in net.collect_params().items()
              if not trainable or p.grad_req != "null"}
    unknown = [name for name, p in params.items()
               if p.shape is None or not all(n > 0 for n in p.shape)]
    if unknown:
        raise ValueError(f"shapes not known yet for {', '.join(unknown[:5])}"
                         f"{' ...' if len(unknown) > 5 else ''}; build with in_channels "
                         "(and input_size for AlexNet/VGG) or run one batch through the network first")
    return sum(math.prod(p.shape) for p in params.values())


__all__ = ["get_model", "model_names", "num_parameters", "MODELS", "ALIASES",
           "AlexNet", "DenseNet", "Inception3", "ResNetV1", "ResNetV2", "SqueezeNet", "VGG",
           "BasicBlockV1", "BasicBlockV2", "BottleneckV1", "BottleneckV2",
           *(fn.__name__ for fn in MODELS.values())]
