"""ONNX export of traced graphs (issue 21, item 4): every traceable model family and zoo model
is converted (opset 17, onnx.checker), run in ONNX Runtime on random inputs at another batch
size than the traced one (the batch axis is symbolic) and compared with dlrun; ops ONNX
cannot express are refused naming the op."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlrun import nn
from dlrun.engine import array
from dlrun.engine.onnx_export import OPSET, OnnxExportError, export_graph_file, to_onnx
from dlrun.models.gan import DCGAN, GANMLP
from dlrun.models.inception import Inception
from dlrun.models.lenet import LeNet
from dlrun.models.lstm_lm import LSTMLM
from dlrun.models.mlp import MLP
from dlrun.models.zoo import get_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def zoo(name: str, **kwargs):
    return lambda: get_model(name, classes=10, **kwargs)


# name: (the model, one example's shape); the traced batch is 2, ONNX Runtime runs 3
MODELS = {
    "mlp": (lambda: MLP(classes=10), (1, 28, 28)),
    "lenet": (lambda: LeNet(classes=10), (1, 28, 28)),
    "inception": (lambda: Inception(classes=10), (1, 28, 28)),
    "gan_mlp_generator": (lambda: GANMLP(image_shape=(1, 28, 28)).generator, (100,)),
    "gan_mlp_discriminator": (lambda: GANMLP(image_shape=(1, 28, 28)).discriminator, (1, 28, 28)),
    "dcgan_generator": (lambda: DCGAN(image_shape=(1, 28, 28)).generator, (100, 1, 1)),
    "dcgan_discriminator": (lambda: DCGAN(image_shape=(1, 28, 28)).discriminator, (1, 28, 28)),
    "alexnet": (zoo("alexnet"), (3, 67, 67)),
    "vgg11": (zoo("vgg11"), (3, 32, 32)),
    "vgg11_bn": (zoo("vgg11_bn"), (3, 32, 32)),
    "resnet18_v1": (zoo("resnet18_v1", thumbnail=True), (3, 32, 32)),
    "resnet18_v2": (zoo("resnet18_v2", thumbnail=True), (3, 32, 32)),
    "resnet50_v1": (zoo("resnet50_v1", thumbnail=True), (3, 32, 32)),
    "resnet50_v2": (zoo("resnet50_v2", thumbnail=True), (3, 32, 32)),
    "densenet121": (zoo("densenet121"), (3, 32, 32)),
    "squeezenet1.0": (zoo("squeezenet1.0"), (3, 64, 64)),
    "squeezenet1.1": (zoo("squeezenet1.1"), (3, 64, 64)),
    "inceptionv3": (zoo("inceptionv3"), (3, 299, 299)),
}


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def traced(net, *inputs):
    """``net`` initialized, hybridized and called once in predict mode: (its graph, params)."""
    net.initialize()
    net.hybridize()
    net(*inputs)
    graph = net._cached.last_graph(training=False)
    return graph, {n: p.data().asnumpy() for n, p in net.collect_params().items()}


def check_close(got: np.ndarray, want: np.ndarray, name: str) -> float:
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    print(f"{name}: max abs difference {diff:.2e} (outputs up to {scale:.2e})")
    assert got.shape == want.shape
    assert diff <= 1e-5 + 1e-4 * scale, name
    return diff


@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_exports_to_onnx_and_matches_onnx_runtime_at_any_batch_size(name):
    make, shape = MODELS[name]
    rng = np.random.default_rng(0)
    net = make()
    graph, params = traced(net, array(rng.standard_normal((2, *shape)).astype(np.float32)))
    model = to_onnx(graph, params)
    assert model.opset_import[0].version == OPSET >= 17
    (inp,) = model.graph.input
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    (got,) = session(model).run(None, {"data": x})
    check_close(got, net(array(x)).asnumpy(), name)


def test_the_lstm_language_model_exports_with_its_states_for_any_window_and_batch():
    net = LSTMLM(50, 16, 16, num_layers=2)
    rng = np.random.default_rng(1)
    graph, params = traced(net, array(rng.integers(0, 50, (5, 2)).astype(np.int32)), net.begin_state(2))
    sess = session(to_onnx(graph, params, batch_axis=1, step_axis=0))
    assert [i.name for i in sess.get_inputs()] == ["data0", "data1", "data2"]
    assert sess.get_inputs()[0].shape == ["steps", "batch"]
    for steps, batch in ((5, 2), (1, 4), (7, 3)):  # one step, and windows
        tokens = rng.integers(0, 50, (steps, batch)).astype(np.int32)
        h, c = (rng.standard_normal((2, batch, 16)).astype(np.float32) for _ in range(2))
        logits, (h1, c1) = net(array(tokens), [array(h), array(c)])
        got = sess.run(None, {"data0": tokens, "data1": h, "data2": c})
        for g, w, what in zip(got, (logits, h1, c1), ("logits", "h", "c")):
            check_close(g, w.asnumpy(), f"lstm_lm {what} ({steps} steps)")


def test_export_onnx_of_a_block_and_of_a_run_export_write_the_same_model(tmp_path: Path):
    net = LeNet(classes=10)
    net.initialize()
    path = net.export_onnx(str(tmp_path / "lenet.onnx"), input_shape=(4, 1, 28, 28))
    net.export(str(tmp_path / "lenet"))
    again = export_graph_file(tmp_path / "lenet-symbol.json", tmp_path / "lenet-0000.params",
                              tmp_path / "again.onnx")
    onnx.checker.check_model(path)
    x = np.random.default_rng(2).standard_normal((5, 1, 28, 28)).astype(np.float32)
    (a,) = session(onnx.load(path)).run(None, {"data": x})
    (b,) = session(onnx.load(again)).run(None, {"data": x})
    np.testing.assert_array_equal(a, b)
    check_close(a, net(array(x)).asnumpy(), "lenet (export_onnx)")


class TopK(nn.HybridBlock):
    def forward(self, x):
        from dlrun import nd
        return nd.topk(x, k=2)


class LastAxisNorm(nn.HybridBlock):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm(axis=-1)

    def forward(self, x):
        return self.norm(x)


@pytest.mark.parametrize("block, op", [(TopK, "topk"), (LastAxisNorm, "batch_norm")])
def test_an_op_onnx_cannot_express_is_refused_naming_it(block, op):
    net = block()
    graph, params = traced(net, array(np.ones((2, 3, 4), np.float32)))
    with pytest.raises(OnnxExportError, match=f"op '{op}' cannot be exported to ONNX"):
        to_onnx(graph, params)


def test_a_block_never_called_in_predict_mode_says_how_to_export(tmp_path: Path):
    net = MLP(classes=3)
    net.initialize()
    with pytest.raises(RuntimeError, match="give input_shape"):
        net.export_onnx(str(tmp_path / "m.onnx"))
