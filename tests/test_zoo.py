"""The vision model zoo (dlrun.models.zoo): parameter counts against the published ones,
forward passes on small inputs, a few training steps, get_model and its config file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from dlrun import autograd, gluon, nd
from dlrun.engine import random as mx_random
from dlrun.models.zoo import ALIASES, MODELS, get_model, model_names, num_parameters
from dlrun.nn import init

# Trainable parameters (gradient on: BatchNorm's gamma/beta count, its running mean/variance
# do not) for 1000 classes, as torchvision and the papers count them. Sources:
# - torchvision's weight metadata, "num_params" of <Model>_Weights.IMAGENET1K_V1 in
#   torchvision/models/{alexnet,vgg,resnet,densenet,squeezenet,inception}.py (also on the
#   model pages of https://pytorch.org/vision/stable/models.html): AlexNet, VGG(+BN),
#   ResNet v1, DenseNet, SqueezeNet.
# - Inception-v3: torchvision's 27,161,264 counts the auxiliary classifier that Gluon's
#   Inception3 (and ours) does not have; without it 27,161,264 - 3,326,696 = 23,834,568
#   (AuxLogits: 1x1 conv 768*128 + BN 2*128, 5x5 conv 128*768*25 + BN 2*768, fc 768*1000 + 1000).
# - ResNet v2 (Gluon's own design; torchvision has none): derived from Gluon's resnet.py. Against
#   v1, the first block of stages 2-4 normalises its (half-width) input instead of its output,
#   the shortcut projections lose their BatchNorm, and a BatchNorm on the last features is
#   added; the input BatchNorm has neither scale nor shift. Basic blocks (18/34): v1 - 896 -
#   1792 + 1024 = v1 - 1,664. Bottlenecks (50/101/152): v1 - 384 - 3584 - 7680 + 4096 = v1 - 7,552.
#   Gluon's total counts below confirm these independently.
TRAINABLE = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
    "resnet18_v1": 11_689_512, "resnet34_v1": 21_797_672, "resnet50_v1": 25_557_032,
    "resnet101_v1": 44_549_160, "resnet152_v1": 60_192_808,
    "resnet18_v2": 11_689_512 - 1_664, "resnet34_v2": 21_797_672 - 1_664,
    "resnet50_v2": 25_557_032 - 7_552, "resnet101_v2": 44_549_160 - 7_552,
    "resnet152_v2": 60_192_808 - 7_552,
    "densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "squeezenet1.0": 1_248_424, "squeezenet1.1": 1_235_496,
    "inceptionv3": 27_161_264 - 3_326_696,
}

# Every parameter, running statistics included, as Gluon's collect_params() holds them: the
# "# Parameters" column of Gluon's model zoo table (apache/mxnet docs/api/python/gluon/model_zoo.md,
# e.g. at commit a37a76c, 2019). It confirms that the structure is Gluon's, layer for layer.
GLUON_TOTAL = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_874_344, "vgg13_bn": 133_059_624, "vgg16_bn": 138_374_440, "vgg19_bn": 143_689_256,
    "resnet18_v1": 11_699_112, "resnet34_v1": 21_814_696, "resnet50_v1": 25_629_032,
    "resnet101_v1": 44_695_144, "resnet152_v1": 60_404_072,
    "resnet18_v2": 11_695_796, "resnet34_v2": 21_811_380, "resnet50_v2": 25_595_060,
    "resnet101_v2": 44_639_412, "resnet152_v2": 60_329_140,
    "densenet121": 8_062_504, "densenet161": 28_900_936, "densenet169": 14_307_880,
    "densenet201": 20_242_984,
    "squeezenet1.0": 1_248_424, "squeezenet1.1": 1_235_496,
    "inceptionv3": 23_869_000,
}
# Gluon's BottleneckV1 gives its two 1x1 convolutions a bias (cancelled by the BatchNorm after
# them); ours, like the paper's model and torchvision, has none: (C/4 + C) per bottleneck block.
BOTTLENECK_V1_BIASES = {
    "resnet50_v1": 3 * 320 + 4 * 640 + 6 * 1280 + 3 * 2560,      # 18,880
    "resnet101_v1": 3 * 320 + 4 * 640 + 23 * 1280 + 3 * 2560,    # 40,640
    "resnet152_v1": 3 * 320 + 8 * 640 + 36 * 1280 + 3 * 2560,    # 59,840
}


def shaped(name: str, **kwargs):
    """The model for 1000 classes with every shape known at construction (no forward pass,
    no memory for the values: VGG's 138M parameters cost nothing here)."""
    kwargs.setdefault("in_channels", 3)
    if name == "alexnet" or name.startswith("vgg"):
        kwargs.setdefault("input_size", 224)
    return get_model(name, **kwargs)


def test_every_gluon_model_is_counted():
    assert set(TRAINABLE) == set(GLUON_TOTAL) == set(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_counts_equal_the_published_ones(name):
    net = shaped(name)
    assert num_parameters(net) == TRAINABLE[name]
    gluon_total = GLUON_TOTAL[name] - BOTTLENECK_V1_BIASES.get(name, 0)
    assert num_parameters(net, trainable=False) == gluon_total


def test_structural_parameter_names_follow_gluons_layout():
    names = list(shaped("resnet18_v1").collect_params())
    assert names[:3] == ["features.0.weight", "features.1.gamma", "features.1.beta"]
    assert "features.5.0.downsample.0.weight" in names and names[-2:] == ["output.weight", "output.bias"]
    v2 = list(shaped("resnet50_v2").collect_params())
    assert "features.5.0.bn1.gamma" in v2 and "features.5.0.downsample.weight" in v2
    assert "features.4.0.1.0.gamma" in shaped("densenet121").collect_params()  # block 1, layer 0, new features
    assert shaped("vgg16").collect_params()["features.31.weight"].shape == (4096, 512 * 7 * 7)


def test_shapes_left_to_the_first_batch_are_reported_until_then():
    net = get_model("vgg11", classes=10)  # Gluon's default: in_channels and Dense widths inferred
    with pytest.raises(ValueError, match="in_channels"):
        num_parameters(net)
    net.initialize(init.Xavier())
    assert net(nd.zeros((1, 3, 32, 32))).shape == (1, 10)  # 32x32 -> 1x1x512 before the Dense layers
    declared = get_model("vgg11", classes=10, in_channels=3, input_size=32)
    assert num_parameters(net) == num_parameters(declared)


# Small configurations; in_channels is declared, so the forward pass also checks that every
# declared shape is the one the data gives (a mismatch raises).
@pytest.mark.parametrize("name, shape, kwargs", [
    ("resnet18_v1", (1, 3, 32, 32), dict(thumbnail=True)),
    ("resnet18_v2", (2, 1, 28, 28), dict(thumbnail=True)),
    ("resnet50_v1", (1, 3, 32, 32), dict(thumbnail=True)),
    ("resnet50_v2", (1, 3, 64, 64), {}),
    ("squeezenet1.0", (1, 3, 64, 64), {}),
    ("squeezenet1.1", (1, 3, 64, 64), {}),
    ("densenet121", (1, 3, 32, 32), {}),
    ("alexnet", (1, 3, 127, 127), dict(input_size=127)),
    ("vgg11_bn", (1, 3, 32, 32), dict(input_size=32)),
    ("inceptionv3", (1, 3, 299, 299), {}),
])
def test_forward_gives_one_score_per_class(name, shape, kwargs):
    net = get_model(name, classes=10, in_channels=shape[1], **kwargs)
    net.initialize(init.Xavier())
    x = nd.array(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    out = net(x)
    assert out.shape == (shape[0], 10)
    assert np.isfinite(out.asnumpy()).all()


def test_resnet_thumbnail_trains_on_small_images():
    mx_random.seed(0)
    rng = np.random.default_rng(0)
    net = get_model("resnet18_v1", classes=4, thumbnail=True)
    net.initialize(init.Xavier())
    x = nd.array(rng.normal(size=(16, 3, 16, 16)).astype(np.float32))
    y = nd.array(rng.integers(0, 4, 16).astype(np.int32))
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
    losses = []
    for _ in range(5):
        with autograd.record():
            value = loss(net(x), y)
        value.backward()
        trainer.step(x.shape[0])
        losses.append(float(value.mean().asscalar()))
    assert losses[-1] < 0.1 * losses[0], losses  # memorises 16 random labels


def test_get_model_names_classes_and_arguments():
    assert model_names()[:3] == ["resnet18_v1", "resnet34_v1", "resnet50_v1"]
    for alias, name in ALIASES.items():
        assert type(get_model(alias)) is type(get_model(name))
    assert get_model("ResNet18_V1", classes=None).output.weight.shape == (1000, 512)
    assert get_model("squeezenet1.1", classes=7).output[0].weight.shape[0] == 7
    with pytest.raises(ValueError) as info:
        get_model("resnet19_v1")
    message = str(info.value)
    assert "resnet19_v1" in message and all(n in message for n in model_names())
    with pytest.raises(ValueError, match="ResNet"):
        get_model("vgg16", thumbnail=True)
    assert get_model("densenet121", thumbnail=False) is not None  # false: nothing to refuse
    assert get_model("resnet18_v1", input_size=32) is not None    # ignored: global pooling
    with pytest.raises(ValueError, match="at least"):
        get_model("vgg11", input_size=16)


def test_config_file_names_get_model_and_its_arguments():
    from dlrun.runner.config import check_arguments
    from dlrun.runner.build import build

    conf = OmegaConf.load(Path(__file__).resolve().parents[1] / "dlrun" / "conf" / "model" / "zoo.yaml")
    assert {"override /optimizer@_global_.optimizer": "adam"} in conf.pop("defaults")  # Hydra's
    spec = OmegaConf.to_container(conf)
    assert spec.pop("_target_") == "dlrun.models.zoo.get_model"
    assert spec.pop("hybridize") is True  # the runner's key (model.hybridize), not get_model's
    assert spec == {"name": "resnet18_v1", "classes": None, "in_channels": None,
                    "input_size": None, "thumbnail": None}
    check_arguments(get_model, spec, "model")
    net = build(conf, "model", classes=10)  # what the runner does when the data has 10 classes
    assert net.output.weight.shape == (10, 512)
    conf.name, conf.thumbnail = "squeezenet1.1", False
    assert build(conf, "model").output[0].weight.shape[0] == 1000
