"""hybridize(fuse_elementwise=True) and hybridize(static_shape=True, cuda_graph=True) (issue 22,
item 5; dlrun.engine.fusion): which ops of a traced graph form a fused chain; on the emulated
GPU (where ``cupy.fuse`` runs plainly and stream capture is refused) both flags give the
outputs and gradients of a plain replay, call after call and across input shapes; a refused
capture falls back with one warning, and so does a graph that draws random numbers; on a
CPU both flags change nothing.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from dlrun import autograd, nd
from dlrun.engine import gpu
from dlrun.engine.backend import array_module, emulated_gpus
from dlrun.engine.fusion import chains
from dlrun.engine.jit import HybridizeWarning
from dlrun.models.lenet import LeNet
from dlrun.nn import Dense, Dropout, HybridBlock, HybridSequential

close = np.testing.assert_allclose
needs_gpu = pytest.mark.skipif(emulated_gpus() < 1, reason="needs the emulated GPU (DLRUN_EMULATE_GPU)")


class ChainMLP(HybridBlock):
    """dense -> relu, *2, +1, tanh, sigmoid, -0.5 (one elementwise chain) -> dense."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = Dense(16, in_units=8)
        self.fc2 = Dense(4, in_units=16)

    def forward(self, x):
        h = nd.tanh(nd.relu(self.fc1(x)) * 2.0 + 1.0)
        return self.fc2(nd.sigmoid(h) - 0.5)


class Branchy(HybridBlock):
    """relu's output ``h`` is read by two ops, so the chain starts after relu; ``h`` is an
    input of the chain (h * h, square, exp, + h)."""

    def forward(self, x):
        h = nd.relu(x)
        return nd.exp(nd.square(h * h)) + h


def built(cls, sample, **flags):
    """``cls()`` hybridized with ``flags``, its parameters the same seeded values each time."""
    net = cls()
    net.initialize(ctx=sample.ctx)
    net(sample)  # deferred shapes known
    rng = np.random.default_rng(0)
    for p in net.collect_params().values():
        p.set_data(nd.array(rng.standard_normal(p.shape).astype("float32") * 0.3, ctx=sample.ctx))
    net.hybridize(**flags)
    return net


def names(graph, run):
    return [graph.nodes[k].op.name for k in run]


def test_the_chains_of_a_traced_graph():
    net = built(ChainMLP, nd.ones((2, 8)))
    net(nd.ones((2, 8)))
    graph = net._cached.last_graph()
    assert [names(graph, r) for r in chains(graph)] == [
        ["relu", "multiply", "add", "tanh", "sigmoid", "subtract"]]
    net = Branchy()
    net.hybridize()
    net(nd.ones((2, 3)))
    graph = net._cached.last_graph()
    assert [names(graph, r) for r in chains(graph)] == [["multiply", "square", "exp", "add"]]


def run_steps(net, xs, record):
    """Outputs (and parameter and input gradients when ``record``) of ``net`` on each of ``xs``."""
    got = []
    for x in xs:
        x = x.copy()
        if record:
            x.attach_grad()
            with autograd.record():
                y = net(x)
            y.backward()
            got.append([y.asnumpy(), x.grad.asnumpy()] +
                       [p.grad().asnumpy() for p in net.collect_params().values()])
        else:
            got.append([net(x).asnumpy()])
    return got


def inputs(shape, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return [nd.array(rng.standard_normal(shape).astype("float32"), ctx=gpu(0)) for _ in range(n)]


@needs_gpu
@pytest.mark.parametrize("cls,shape", [(ChainMLP, (5, 8)), (LeNet, (2, 1, 28, 28))])
@pytest.mark.parametrize("record", [False, True])
def test_fused_replays_match_plain_ones(cls, shape, record):
    xs = inputs(shape)
    plain = run_steps(built(cls, xs[0]), xs, record)
    fused_net = built(cls, xs[0], fuse_elementwise=True)
    fused = run_steps(fused_net, xs, record)
    for a, b in zip(plain, fused):
        for u, v in zip(a, b):
            close(v, u, rtol=1e-5, atol=1e-6)
    if cls is ChainMLP and not record:  # the replays (calls 2 and 3) ran the fused steps
        graph = fused_net._cached.last_graph()
        assert len(graph._fused[array_module(gpu(0))]) == len(graph.nodes) - 5


@needs_gpu
@pytest.mark.parametrize("record", [False, True])
def test_cuda_graph_replays_match_plain_ones_and_a_refused_capture_warns_once(record):
    xs = inputs((5, 8)) + inputs((7, 8), n=2)  # a changed shape: a new graph, a new capture
    plain = run_steps(built(ChainMLP, xs[0]), xs, record)
    net = built(ChainMLP, xs[0], static_shape=True, cuda_graph=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_steps(net, xs, record)
    for a, b in zip(plain, got):
        for u, v in zip(a, b):
            close(v, u, rtol=1e-5, atol=1e-6)
    refused = [str(w.message) for w in caught if issubclass(w.category, HybridizeWarning)]
    if record:  # replays that record gradients are never captured
        assert refused == [] and net._cached.cuda_graph
    else:  # the emulation refuses capture as CUDA refuses it, once; replays then run plainly
        assert len(refused) == 1 and "cudaErrorStreamCaptureUnsupported" in refused[0], refused
        assert "replays run uncaptured" in refused[0] and not net._cached.cuda_graph


def test_cuda_graph_needs_static_shape():
    with pytest.raises(ValueError, match=r"cuda_graph=True\) needs static_shape=True"):
        ChainMLP().hybridize(cuda_graph=True)


def test_on_a_cpu_both_flags_change_nothing():
    xs = [nd.array(np.random.default_rng(i).standard_normal((5, 8)).astype("float32")) for i in range(3)]
    plain = [built(ChainMLP, xs[0])(x).asnumpy() for x in xs]
    net = built(ChainMLP, xs[0], static_shape=True, fuse_elementwise=True, cuda_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [net(x).asnumpy() for x in xs]
    for u, v in zip(plain, got):
        np.testing.assert_array_equal(v, u)
    assert net._cached.captures == {} and net._cached.last_graph()._fused == {}


@needs_gpu
def test_a_graph_that_draws_random_numbers_is_not_captured():
    net = HybridSequential()
    net.add(Dense(4, in_units=3), Dropout(0.5))
    net.initialize(ctx=gpu(0))
    net.hybridize(static_shape=True, cuda_graph=True)
    x = nd.ones((2, 3), ctx=gpu(0))
    with autograd.train_mode(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            net(x)
    refused = [str(w.message) for w in caught if issubclass(w.category, HybridizeWarning)]
    assert len(refused) == 1 and "draws random numbers" in refused[0], refused
