"""hybridize() (dlrun.engine.jit): a hybridized block gives the imperative results bit for bit
(outputs, parameter and input gradients, BatchNorm running statistics, dropout under a seed)
for every model family, in training and predict mode and across optimizer updates; a new
signature retraces, the cache is an LRU; the seed's 1.x example prints only while tracing;
untraceable blocks stay imperative with one warning; hybridized and imperative code mix;
export -> SymbolBlock.imports round-trips (outputs and fine-tuning gradients); malicious or
corrupt graph files are refused with GraphFormatError and never unpickled; constant folding,
dead-node elimination and memory planning show in the graph.

Everything runs in float64 on the CPU, where the replay runs the very ops (and vjps) the
imperative call runs, so results are compared with assert_array_equal.
"""
from __future__ import annotations

import copy
import json
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine import OPS, ops, registry
from dlrun.engine.jit import GraphFormatError, HybridizeWarning
from dlrun.models.classic import (FizzBuzz, LinearRegression, LogisticRegression, Perceptron,
                                  SoftmaxRegression)
from dlrun.models.gan import DCGAN, GANMLP
from dlrun.models.inception import Inception
from dlrun.models.lenet import LeNet
from dlrun.models.lstm_lm import LSTMLM
from dlrun.models.mlp import MLP
from dlrun.models.treelstm import TreeBatch, TreeLSTM
from dlrun.models.zoo import get_model
from dlrun.models.zoo.resnet import BasicBlockV1, BasicBlockV2, ResNetV1, ResNetV2
from dlrun.nn import Block, HybridBlock
from tests.garbage import cyclic_garbage

F64 = "float64"
eq = np.testing.assert_array_equal


# ---- helpers ---------------------------------------------------------------------------------
def leaves_of(out):
    """The arrays of a result (an array or nested tuples/lists of arrays), in order."""
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in leaves_of(o)]
    return [out]


def clone(a):
    """A fresh copy of an argument (an array or nested lists/tuples of arrays)."""
    if isinstance(a, (tuple, list)):
        return type(a)(clone(x) for x in a)
    return a.copy()


def f64(rng, *shape):
    return nd.array(rng.normal(size=shape), dtype=F64)


def params_of(net):
    return {name: p.data().asnumpy().copy() for name, p in net.collect_params().items()}


def grads_of(net):
    return {name: p.grad().asnumpy().copy() for name, p in net.collect_params().items()
            if p.grad_req != "null"}


def assert_same_dicts(a, b, rtol=None):
    """Equal keys and arrays: bitwise, or to ``rtol`` where sums are legitimately reordered."""
    assert a.keys() == b.keys()
    for k in a:
        if rtol is None:
            eq(a[k], b[k], err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=0, err_msg=k)


def built(make, warmup, seed=0):
    """``make()`` initialized, cast to float64, its shapes fixed by ``warmup(net)`` (predict mode,
    so BatchNorm's running statistics are untouched)."""
    mx.random.seed(seed)
    net = make()
    net.initialize(mx.init.Xavier())
    net.cast(F64)
    warmup(net)
    return net


def twins(make, warmup, seed=0):
    """(imperative net, hybridized net) with equal parameters; nothing traced yet."""
    a, b = built(make, warmup, seed), built(make, warmup, seed + 1)
    source = a.collect_params()
    for name, p in b.collect_params().items():
        p.set_data(source[name].data().asnumpy())
    assert_same_dicts(params_of(a), params_of(b))
    b.hybridize()
    return a, b


def cached_ops(net):
    """path -> CachedOp of every hybridized block below ``net`` (itself included)."""
    return {path: blk.__dict__["_cached"] for path, blk in net._descendants()
            if blk.__dict__.get("_cached") is not None}


def trainer_of(net):
    return gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})


def train_step(net, trainer, inputs, loss_of, seed):
    """One recorded step on copies of ``inputs`` (float ones get gradients), then an update.

    Returns (output arrays, gradients of the parameters and the float inputs)."""
    args = clone(inputs)
    floats = [a for a in leaves_of(args) if a.dtype.kind == "f"]
    for a in floats:
        a.attach_grad()
    mx.random.seed(seed)
    with autograd.record():
        out = net(*args)
        loss = loss_of(out)
    loss.backward()
    grads = grads_of(net)
    grads.update({f"input{i}": a.grad.asnumpy().copy() for i, a in enumerate(floats)})
    trainer.step(1)
    return [o.asnumpy() for o in leaves_of(out)], grads


def head_loss(shape_rng=7):
    """A nonlinear scalar loss of every output, with fixed random weights per output shape."""
    heads = {}

    def loss(out):
        total = None
        for o in leaves_of(out):
            if o.shape not in heads:
                heads[o.shape] = nd.array(np.random.default_rng(shape_rng).normal(size=o.shape), dtype=F64)
            term = (o.tanh() * heads[o.shape]).sum()
            total = term if total is None else total + term
        return total
    return loss


def assert_hybrid_equals_imperative(make, inputs, steps=3, seed=0):
    """Training steps (trace, then replays) and predict calls give identical results."""
    a, b = twins(make, lambda net: net(*clone(inputs)), seed)
    ta, tb = trainer_of(a), trainer_of(b)
    start = params_of(a)
    loss = head_loss()
    for step in range(steps):
        out_a, grads_a = train_step(a, ta, inputs, loss, seed=100 + step)
        out_b, grads_b = train_step(b, tb, inputs, loss, seed=100 + step)
        for x, y in zip(out_a, out_b, strict=True):
            eq(x, y, err_msg=f"step {step}")
        assert_same_dicts(grads_a, grads_b)
        assert any(np.any(g != 0) for g in grads_a.values())
        # parameters after the update, BatchNorm running statistics included
        assert_same_dicts(params_of(a), params_of(b))
    assert b._cached.traces == 1 and len(b._cached.graphs) == 1  # traced once, replayed after
    assert b._cached.last_graph(training=True) is not None
    moved = [n for n, v in params_of(a).items() if not np.array_equal(v, start[n])]
    assert moved, "the optimizer changed nothing: the replays were not tested on new values"
    for name in start:
        if name.endswith(("running_mean", "running_var")):
            assert name in moved, f"{name} was not updated in training mode"
    for _ in range(2):  # predict mode: a second graph, then its replay
        for x, y in zip(leaves_of(a(*clone(inputs))), leaves_of(b(*clone(inputs))), strict=True):
            eq(x.asnumpy(), y.asnumpy())
    assert b._cached.traces == 2 and len(b._cached.graphs) == 2
    # gradients of a predict-mode replay (fine-tuning with frozen statistics)
    before = params_of(a)
    results = []
    for net in (a, b):
        args = clone(inputs)
        with autograd.record(train_mode=False):
            value = loss(net(*args))
        value.backward()
        results.append(grads_of(net))
    assert_same_dicts(*results)
    assert_same_dicts(params_of(a), before)  # predict mode left the statistics alone
    assert_same_dicts(params_of(b), before)
    assert b._cached.traces == 2
    assert not b._cached.untraceable
    return a, b


# ---- 1. every model family: hybridized == imperative --------------------------------------
MODELS = {
    "mlp": (lambda: MLP(hidden=(16, 8), dropout=0.5, classes=3), (4, 1, 5, 5)),
    "lenet": (lambda: LeNet(channels=(3, 4), kernel_size=3, hidden=8, classes=3), (2, 1, 12, 12)),
    "lenet-max-relu": (lambda: LeNet(channels=(2, 3), kernel_size=3, hidden=6, activation="relu",
                                     pool="max", classes=3), (2, 1, 10, 10)),
    "inception": (lambda: Inception(classes=3, width=0.0625, dropout=0.3), (2, 1, 12, 12)),
    "linear-regression": (lambda: LinearRegression(outputs=2), (5, 3)),
    "logistic-regression": (LogisticRegression, (5, 3)),
    "softmax-regression": (lambda: SoftmaxRegression(classes=3), (5, 2, 2)),
    "perceptron": (Perceptron, (5, 3)),
    "fizzbuzz": (lambda: FizzBuzz(hidden=(8, 6)), (5, 3)),
    "resnet-v1": (lambda: ResNetV1(BasicBlockV1, [1, 1], [4, 4, 8], classes=3, thumbnail=True),
                  (2, 3, 8, 8)),
    "resnet-v2": (lambda: ResNetV2(BasicBlockV2, [1, 1], [4, 4, 8], classes=3, thumbnail=True),
                  (2, 1, 8, 8)),
    "zoo-squeezenet1.1": (lambda: get_model("squeezenet1.1", classes=3), (2, 3, 24, 24)),
}


@pytest.mark.parametrize("name", MODELS)
def test_hybridized_model_equals_imperative_in_training_and_predict_mode(name):
    make, shape = MODELS[name]
    x = f64(np.random.default_rng(1), *shape)
    assert_hybrid_equals_imperative(make, [x])


def test_dropout_replays_draw_seeded_masks_like_the_imperative_call():
    x = f64(np.random.default_rng(2), 6, 10)
    a, b = twins(lambda: MLP(hidden=(32,), dropout=0.5, classes=4), lambda net: net(x))

    def recorded(net, seed):
        mx.random.seed(seed)
        with autograd.record():
            return net(x).asnumpy()
    first = recorded(b, 0)               # the trace
    eq(recorded(b, 0), first)            # a replay with the same seed: the same mask
    assert not np.array_equal(recorded(b, 1), first)  # another seed: another mask
    eq(recorded(a, 1), recorded(b, 1))
    assert b._cached.traces == 1
    with autograd.predict_mode():        # no dropout outside training
        eq(b(x).asnumpy(), a(x).asnumpy())


def test_replays_read_parameters_set_outside_the_optimizer():
    x = f64(np.random.default_rng(3), 4, 3)
    net = built(Perceptron, lambda n: n(x))
    net.hybridize()
    eq(net(x).asnumpy(), 0)  # the perceptron starts at zero; this call traces
    rng = np.random.default_rng(4)
    xs, ys = rng.normal(size=(8, 3)), np.where(rng.normal(size=8) > 0, 1.0, -1.0)
    net.fit_epoch(xs, ys)    # the mistake-driven rule writes the parameters with set_data
    w, b = net.linear.weight.data().asnumpy(), net.linear.bias.data().asnumpy()
    assert np.any(w != 0)
    np.testing.assert_allclose(net(x).asnumpy(), x.asnumpy() @ w.T + b, rtol=1e-12)
    assert net._cached.traces == 1


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_lstm_language_model_with_states_carried_as_inputs(tie):
    vocab, n, t = 11, 3, 4
    rng = np.random.default_rng(5)
    tokens = nd.array(rng.integers(0, vocab, (t, n)), dtype="int64")

    def make():
        return LSTMLM(vocab, embed_size=6, hidden_size=6, num_layers=2, dropout=0.3, tie_weights=tie)

    def begin(net):
        return [s.astype(F64) for s in net.begin_state(n)]
    a, b = twins(make, lambda net: net(tokens, begin(net)))
    ta, tb = trainer_of(a), trainer_of(b)
    states = {id(a): begin(a), id(b): begin(b)}
    loss = head_loss()
    for step in range(3):
        results = []
        for net, trainer in ((a, ta), (b, tb)):
            mx.random.seed(step)
            with autograd.record():
                logits, new = net(tokens, states[id(net)])
                value = loss((logits, new))
            value.backward()
            assert isinstance(new, list) and len(new) == 2
            results.append(([logits.asnumpy()] + [s.asnumpy() for s in new], grads_of(net)))
            trainer.step(n)
            states[id(net)] = [s.detach() for s in new]  # truncated BPTT: carry, cut the graph
        (outs_a, grads_a), (outs_b, grads_b) = results
        for x, y in zip(outs_a, outs_b, strict=True):
            eq(x, y)
        assert_same_dicts(grads_a, grads_b)
        assert_same_dicts(params_of(a), params_of(b))
    assert b._cached.traces == 1
    graph = b._cached.last_graph(training=True)
    assert len(graph.input_meta) == 3  # tokens, h, c
    assert graph.output_tree == ["tuple", [0, ["list", [1, 2]]]]
    for _ in range(2):
        la, sa = a(tokens, states[id(a)])
        lb, sb = b(tokens, states[id(b)])
        eq(la.asnumpy(), lb.asnumpy())
        for x, y in zip(sa, sb, strict=True):
            eq(x.asnumpy(), y.asnumpy())
    assert b._cached.traces == 2


@pytest.mark.parametrize("make,z_shape,x_shape", [
    (lambda: GANMLP(latent=4, hidden=(8, 6), image_shape=(1, 4, 4)), (3, 4), (3, 1, 4, 4)),
    (lambda: DCGAN(latent=4, base_channels=2, image_shape=(1, 8, 8)), (3, 4, 1, 1), (3, 1, 8, 8)),
], ids=["gan-mlp", "dcgan"])
def test_gan_generator_and_discriminator_hybridized(make, z_shape, x_shape):
    rng = np.random.default_rng(6)
    z, real = f64(rng, *z_shape), f64(rng, *x_shape)
    a, b = twins(make, lambda g: g.discriminate(g.generate(z)))
    cached = cached_ops(b)
    assert "" not in cached  # the GAN itself is a Block; its two networks are hybridized
    assert {"generator", "discriminator"} <= set(cached)
    ta, tb = trainer_of(a), trainer_of(b)
    for step in range(3):
        results = []
        for gan, trainer in ((a, ta), (b, tb)):
            mx.random.seed(step)
            with autograd.record():
                fake = gan.generate(z)
                d_real = gan.discriminate(real)   # the discriminator runs twice in one record
                d_fake = gan.discriminate(fake)
                loss = (d_real.tanh() - d_fake.sigmoid() + (fake * fake).mean()).sum()
            loss.backward()
            results.append(([fake.asnumpy(), d_real.asnumpy(), d_fake.asnumpy()], grads_of(gan)))
            trainer.step(z.shape[0])
        (outs_a, grads_a), (outs_b, grads_b) = results
        for x, y in zip(outs_a, outs_b, strict=True):
            eq(x, y)
        assert_same_dicts(grads_a, grads_b)
        assert_same_dicts(params_of(a), params_of(b))
    cached = cached_ops(b)
    assert cached["generator"].traces == 1 and cached["discriminator"].traces == 1
    eq(a.discriminate(a.generate(z)).asnumpy(), b.discriminate(b.generate(z)).asnumpy())
    eq(a.discriminate(a.generate(z)).asnumpy(), b.discriminate(b.generate(z)).asnumpy())
    assert cached["generator"].traces == 2 and cached["discriminator"].traces == 2


# ---- 2. signatures, retracing, the LRU cache ------------------------------------------------
class Scale(HybridBlock):
    """No parameters: ``tanh(x) * 2``."""

    def forward(self, x):
        return x.tanh() * 2


def test_new_batch_size_dtype_and_mode_each_add_a_graph():
    rng = np.random.default_rng(8)
    net = built(lambda: MLP(hidden=(5,), dropout=0.5, classes=2), lambda n: n(f64(rng, 2, 3)))
    net.hybridize()
    c = net._cached
    x2, x3 = f64(rng, 2, 3), f64(rng, 3, 3)
    net(x2)
    assert (c.traces, len(c.graphs)) == (1, 1)
    net(x2)
    net(f64(rng, 2, 3))                      # new values, same signature: replay
    assert (c.traces, len(c.graphs)) == (1, 1)
    net(x3)                                  # new batch size
    assert (c.traces, len(c.graphs)) == (2, 2)
    with autograd.record():                  # training mode
        net(x3)
    assert (c.traces, len(c.graphs)) == (3, 3)
    with autograd.train_mode():              # training without recording: the same graph
        net(x3)
    with autograd.record():
        net(x3)
    assert (c.traces, len(c.graphs)) == (3, 3)
    assert c.last_graph(training=True).training and not c.last_graph(training=False).training

    s = Scale()
    s.hybridize()
    x = rng.normal(size=(2, 3))
    y64 = s(nd.array(x, dtype=F64))
    y32 = s(nd.array(x, dtype="float32"))    # new dtype
    assert (s._cached.traces, len(s._cached.graphs)) == (2, 2)
    assert y64.dtype == np.float64 and y32.dtype == np.float32
    eq(s(nd.array(x, dtype=F64)).asnumpy(), np.tanh(x) * 2)
    eq(s(nd.array(x, dtype="float32")).asnumpy(), np.tanh(x.astype(np.float32)) * 2)
    assert s._cached.traces == 2


def test_cache_is_bounded_and_least_recently_used_goes_first():
    s = Scale()
    s.hybridize()
    c = s._cached
    for n in range(1, c.limit + 4):  # more signatures than the default limit holds
        s(nd.array(np.ones((n, 1)), dtype=F64))
    assert len(c.graphs) == c.limit and c.traces == c.limit + 3
    s = Scale()
    s.hybridize()
    c = s._cached
    c.limit = 2

    def call(n):
        x = np.arange(n * 2, dtype=np.float64).reshape(n, 2) / 7
        eq(s(nd.array(x, dtype=F64)).asnumpy(), np.tanh(x) * 2)

    call(1)
    call(2)
    assert c.traces == 2
    call(1)          # used again: now the most recent
    call(3)          # evicts batch 2, the least recently used
    assert c.traces == 3 and len(c.graphs) == 2
    batches = sorted(key[0][0][1][0] for key in c.graphs)
    assert batches == [1, 3]
    call(1)
    call(3)
    assert c.traces == 3  # both kept
    call(2)               # evicted earlier: traced again
    assert c.traces == 4 and len(c.graphs) == 2


def test_non_array_arguments_are_part_of_the_signature():
    class Power(HybridBlock):
        def forward(self, x, k, shift=0.0):
            return x ** k + shift
    net = Power()
    net.hybridize()
    x = nd.array(np.array([[1.0, 2.0, 3.0]]), dtype=F64)
    eq(net(x, 2).asnumpy(), [[1, 4, 9]])
    eq(net(x, 3).asnumpy(), [[1, 8, 27]])      # another value: another graph, not a stale one
    eq(net(x, 2, 1.5).asnumpy(), [[2.5, 5.5, 10.5]])
    eq(net(x, 2).asnumpy(), [[1, 4, 9]])
    assert net._cached.traces == 3
    eq(net(x, 2, shift=1.0).asnumpy(), [[2, 5, 10]])  # keyword arguments run imperatively
    assert net._cached.traces == 3 and not net._cached.untraceable


def test_tracing_and_replaying_leave_no_reference_cycle():
    # a cycle through the flattened arguments or results would keep them (here the LM's
    # logits, the largest array of a step) alive until the garbage collector ran
    class TwoInTwoOut(HybridBlock):
        def forward(self, x, states):
            return x * 2, [states[0] + x, (states[1] - x,)]
    net = TwoInTwoOut()
    net.hybridize()
    x = nd.array(np.ones((2, 3)), dtype=F64)

    def call():
        out = net(x, [x * 3, x * 4])
        eq(out[1][1][0].asnumpy(), np.full((2, 3), 3.0))
    assert cyclic_garbage(call) == []  # the trace
    assert cyclic_garbage(call) == []  # a replay
    assert net._cached.traces == 1


def _probe_tanh(monkeypatch, on_forward, before_vjp):
    """Make the tanh op call ``on_forward(y)`` with each output and ``before_vjp()`` before
    each backward (set before a block's trace: its graph keeps the op's forward)."""
    tanh = OPS["tanh"].forward

    def probed(xp, x):
        y, vjp = tanh(xp, x)
        on_forward(y)

        def probed_vjp(g):
            before_vjp()
            return vjp(g)
        return y, probed_vjp
    monkeypatch.setattr(OPS["tanh"], "forward", probed)


def test_backward_through_a_replay_frees_each_ops_saved_arrays_as_it_goes(monkeypatch):
    # as autograd drops each imperative node after its vjp: the hybridized LM's peak memory
    # was 3 MiB above the imperative one while a replay kept its whole tape to the end
    saved, alive = [], []
    _probe_tanh(monkeypatch, lambda y: saved.append(weakref.ref(y)),  # tanh's vjp keeps y
                lambda: alive.append(sum(r() is not None for r in saved[-4:])))

    class Chain(HybridBlock):
        def forward(self, x):
            for _ in range(4):
                x = x.tanh()
            return x
    net = Chain()
    net.hybridize()
    x = nd.array(np.linspace(-1, 1, 6).reshape(2, 3), dtype=F64)
    x.attach_grad()
    with autograd.record():
        net(x)  # the trace (of training mode: the calls below replay it)
    for retain, counts in ((True, [4, 4, 4, 4]), (False, [4, 4, 3, 2])):
        alive.clear()
        with autograd.record():
            y = net(x)
        y.backward(retain_graph=retain)
        assert alive == counts  # the output itself stays: the caller holds it
        grad = x.grad.asnumpy().copy()
        if retain:
            y.backward()  # the retained graph runs again, with the same result
            eq(x.grad.asnumpy(), grad)
        else:
            with pytest.raises(mx.autograd.AutogradError, match="already freed"):
                y.backward()
    v, d = x.asnumpy(), np.ones((2, 3))
    for _ in range(4):
        v = np.tanh(v)
        d = d * (1 - v * v)
    np.testing.assert_allclose(grad, d, rtol=1e-14)
    assert net._cached.traces == 1


def test_a_replay_whose_backward_failed_half_way_is_not_differentiated_again(monkeypatch):
    # its tape was freed up to the failure: running the rest would give a partial gradient
    failures = [FloatingPointError("injected")]

    def fail_once():
        if failures:
            raise failures.pop()
    _probe_tanh(monkeypatch, lambda y: None, fail_once)

    class Net(HybridBlock):
        def forward(self, x):
            return (x * 2).tanh() * 3
    net = Net()
    net.hybridize()
    x = nd.array(np.ones((2, 2)), dtype=F64)
    x.attach_grad()
    with autograd.record():
        net(x)  # the trace (of training mode: the call below replays it)
    with autograd.record():
        y = net(x)
    with pytest.raises(FloatingPointError, match="injected"):
        y.backward()
    with pytest.raises(mx.autograd.AutogradError, match="hybrid_graph' was already freed"):
        y.backward()
    assert net._cached.traces == 1


def test_hybridize_false_returns_to_imperative():
    s = Scale()
    s.hybridize()
    x = nd.array(np.ones((2, 2)), dtype=F64)
    s(x)
    assert s._cached.traces == 1
    s.hybridize(False)
    assert s.__dict__.get("_cached") is None
    eq(s(x).asnumpy(), np.tanh(np.ones((2, 2))) * 2)


# ---- 3. the seed's 1.x example ----------------------------------------------------------------
class SeedNet(HybridBlock):
    """The tutorial's hybridization example, as written."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.fc1 = gluon.nn.Dense(8)
            self.fc2 = gluon.nn.Dense(6)
            self.fc3 = gluon.nn.Dense(2)

    def hybrid_forward(self, F, x):
        print('type(x): {}, F: {}'.format(type(x).__name__, F.__name__))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def test_seed_hybridization_example_prints_only_while_tracing(capsys):
    rng = np.random.default_rng(9)
    x = f64(rng, 3, 5)
    net = built(SeedNet, lambda n: n(x))
    capsys.readouterr()
    expected = [net(x).asnumpy() for _ in range(3)]
    assert capsys.readouterr().out.splitlines() == ["type(x): NDArray, F: dlrun.nd"] * 3

    net.hybridize()
    first = net(x)
    assert capsys.readouterr().out.splitlines() == ["type(x): NDArray, F: dlrun.symbol"]
    later = [net(x) for _ in range(3)]
    assert capsys.readouterr().out == ""  # replays do not run the Python forward
    for y in [first] + later:
        eq(y.asnumpy(), expected[0])
    net(f64(rng, 4, 5))                   # a new input shape traces (and prints) once more
    net(f64(rng, 4, 5))
    assert capsys.readouterr().out.splitlines() == ["type(x): NDArray, F: dlrun.symbol"]


# ---- 4. untraceable blocks stay imperative and say so once ---------------------------------
class ValueBranch(HybridBlock):
    """Branches on a value: no single graph can stand for it."""

    def __init__(self):
        super().__init__()
        self.fc = gluon.nn.Dense(3)

    def forward(self, x):
        if x.sum().asscalar() > 0:
            return self.fc(x) * 2
        return self.fc(x) - 1


class Noisy(HybridBlock):
    """Draws from dlrun.random inside forward (a graph would freeze the numbers)."""

    def forward(self, x):
        return x + nd.random.normal(shape=x.shape, dtype=x.dtype)


def calls_warning(fn, n):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [fn(i) for i in range(n)]
    return results, [w for w in caught if issubclass(w.category, HybridizeWarning)]


def test_value_dependent_branch_warns_once_and_takes_each_calls_branch():
    rng = np.random.default_rng(10)
    inputs = [f64(rng, 2, 4) for _ in range(6)]
    for i, x in enumerate(inputs):   # alternate the sign of the sum
        x[...] = np.abs(x.asnumpy()) * (1 if i % 2 == 0 else -1)
    net = built(ValueBranch, lambda n: n(inputs[0]))
    w, bias = net.fc.weight.data().asnumpy(), net.fc.bias.data().asnumpy()
    net.hybridize()
    results, caught = calls_warning(lambda i: net(inputs[i]).asnumpy(), len(inputs))
    assert len(caught) == 1
    assert "asscalar" in str(caught[0].message) and "imperatively" in str(caught[0].message)
    assert net._cached.untraceable and not net._cached.graphs
    for i, (x, y) in enumerate(zip(inputs, results)):
        dense = x.asnumpy() @ w.T + bias
        np.testing.assert_allclose(y, dense * 2 if i % 2 == 0 else dense - 1, rtol=1e-12)
    # gradients are the imperative ones too
    x = inputs[1].copy()
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), np.ones((2, 3)) @ w, rtol=1e-12)


def test_random_draw_inside_forward_stays_imperative():
    x = nd.array(np.zeros((2, 3)), dtype=F64)
    net = Noisy()
    net.hybridize()

    def call(i):
        mx.random.seed(i)
        return net(x).asnumpy()
    results, caught = calls_warning(call, 4)
    assert len(caught) == 1 and "random" in str(caught[0].message)
    plain = Noisy()
    for i, y in enumerate(results):
        mx.random.seed(i)
        eq(y, plain(x).asnumpy())     # each call draws anew, as imperatively
    assert not np.array_equal(results[0], results[1])


def leaf(word, label=1):
    from dlrun.data.trees import Tree
    return Tree(label, [], word)


def node(label, *children):
    from dlrun.data.trees import Tree
    return Tree(label, list(children))


TREES = [node(0, node(1, leaf(0), leaf(1)), leaf(2)), node(2, leaf(3), leaf(4), leaf(5)), leaf(6, 4)]


def tree_model(batched):
    mx.random.seed(0)
    net = TreeLSTM(10, 5, embed_size=3, hidden_size=4, dropout=0.0, batched=batched)
    net.initialize(mx.init.Xavier())
    net.cast(F64)
    rng = np.random.default_rng(11)
    for p in net.collect_params().values():
        p.set_data(rng.normal(scale=0.5, size=p.shape))
    return net


def tree_step(net):
    with autograd.record():
        out = net(TreeBatch.of(TREES))
        loss = (out.tanh() * nd.array(np.linspace(-1, 1, out.size).reshape(out.shape), dtype=F64)).sum()
    loss.backward()
    return out.asnumpy(), grads_of(net)


@pytest.mark.parametrize("batched", [True, False], ids=["levels", "recursive"])
def test_tree_lstm_hybridized_keeps_the_imperative_results(batched):
    a, b = tree_model(batched), tree_model(batched)
    b.hybridize()
    for _ in range(3):
        (out_a, grads_a), (out_b, grads_b) = tree_step(a), tree_step(b)
        eq(out_a, out_b)
        assert_same_dicts(grads_a, grads_b)


def test_tree_lstm_says_once_that_it_stays_imperative():
    net = tree_model(True)
    net.hybridize()
    _, caught = calls_warning(lambda i: net(TreeBatch.of(TREES)), 3)
    assert len(caught) == 1


def test_a_hybrid_block_called_on_a_tree_batch_warns_once():
    class Wrapper(HybridBlock):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, trees):
            return self.inner(trees)

    a, b = tree_model(True), Wrapper(tree_model(True))
    b.hybridize()
    results, caught = calls_warning(lambda i: b(TreeBatch.of(TREES)).asnumpy(), 3)
    # each untraceable block says so once: the wrapper, then the TreeLSTM inside it
    assert [str(w.message).split(".")[0] for w in caught] == ["Wrapper", "TreeLSTM"]
    assert all("TreeBatch" in str(w.message) for w in caught)
    for y in results:
        eq(y, a(TreeBatch.of(TREES)).asnumpy())


# ---- 5. mixing hybridized and imperative code ----------------------------------------------
class Body(HybridBlock):
    def __init__(self):
        super().__init__()
        self.fc1 = gluon.nn.Dense(6, activation="tanh")
        self.fc2 = gluon.nn.Dense(4)

    def forward(self, x):
        return self.fc2(self.fc1(x)) + x.sum(axis=1, keepdims=True)


class Outer(Block):
    """Imperative: Python control flow on values around a hybridizable body."""

    def __init__(self):
        super().__init__()
        self.body = Body()
        self.head = gluon.nn.Dense(2)

    def forward(self, x):
        h = self.body(x)
        steps = 1 + int(h.abs().sum().asscalar() > 3)
        for _ in range(steps):
            h = h.tanh() * 1.5
        if h.max().asscalar() > 0:
            h = h + self.body(x)    # the body twice in one recording
        return self.head(h)


def test_hybridized_block_inside_imperative_block_and_imperative_code_after_it():
    rng = np.random.default_rng(12)
    x = f64(rng, 3, 5)
    a, b = twins(Outer, lambda n: n(x))
    assert set(cached_ops(b)) == {"body", "body.fc1", "body.fc2", "head"}  # not Outer itself
    ta, tb = trainer_of(a), trainer_of(b)
    loss = head_loss()
    with warnings.catch_warnings():
        warnings.simplefilter("error", HybridizeWarning)  # nothing here is untraceable
        for step in range(3):
            out_a, grads_a = train_step(a, ta, [x], loss, step)
            out_b, grads_b = train_step(b, tb, [x], loss, step)
            eq(out_a[0], out_b[0])
            # x reaches the loss along four paths (two body calls, each through fc1 and the
            # sum); a replay adds its two paths inside its one autograd node, so the input
            # gradient's terms are added in another order: equal up to rounding
            eq_params = {k: v for k, v in grads_a.items() if k != "input0"}
            assert_same_dicts(eq_params, {k: v for k, v in grads_b.items() if k != "input0"})
            np.testing.assert_allclose(grads_a["input0"], grads_b["input0"], rtol=1e-12, atol=0)
    assert b.body._cached.traces == 1
    assert b.body.fc1._cached.traces == 0  # inside the body's trace the children are ops


def test_hybridized_cell_unrolled_in_python_accumulates_gradients_like_imperative():
    from dlrun.nn.rnn import LSTMCell
    rng = np.random.default_rng(21)
    xs = [f64(rng, 2, 3) for _ in range(4)]
    a, b = twins(lambda: LSTMCell(4, input_size=3),
                 lambda c: c(xs[0], [nd.zeros((2, 4), dtype=F64), nd.zeros((2, 4), dtype=F64)]))
    results = []
    for cell in (a, b):
        for p in cell.collect_params().values():
            p.grad_req = "add"
        for _ in range(2):                       # two backward passes add up
            states = [nd.zeros((2, 4), dtype=F64), nd.zeros((2, 4), dtype=F64)]
            with autograd.record():
                total = None
                for x in xs:                     # each step's replay reads the last one's states
                    h, states = cell(x, states)
                    total = (h * h).sum() if total is None else total + (h * h).sum()
            total.backward()
        results.append((grads_of(cell), [s.asnumpy() for s in states]))
    # h_t gets three gradient terms (twice from h*h, once from step t+1); the replay adds
    # them as (a + a) + b inside its node where the imperative sweep adds (b + a) + a: equal
    # up to rounding
    assert_same_dicts(results[0][0], results[1][0], rtol=1e-12)
    for x, y in zip(results[0][1], results[1][1], strict=True):
        eq(x, y)
    assert b._cached.traces == 1 and b._cached.last_graph().param_grad_reqs == ["add"] * 4


class Parent(HybridBlock):
    def __init__(self):
        super().__init__()
        self.child = Body()
        self.out = gluon.nn.Dense(2)

    def forward(self, x):
        return self.out(self.child(x).relu())


def test_hybridized_child_inside_hybridized_parent_is_inlined():
    rng = np.random.default_rng(13)
    x = f64(rng, 3, 5)
    a, b = twins(Parent, lambda n: n(x))
    b.child(x)                           # the child has a graph of its own from a direct call
    assert b.child._cached.traces == 1
    child_ops = [n.op.name for n in b.child._cached.last_graph().nodes]
    for _ in range(2):
        eq(b(x).asnumpy(), a(x).asnumpy())
    parent_ops = [n.op.name for n in b._cached.last_graph().nodes]
    assert parent_ops == child_ops + ["relu", "fully_connected"]
    assert b.child._cached.traces == 1   # not traced nor replayed inside the parent
    loss = head_loss()
    ta, tb = trainer_of(a), trainer_of(b)
    for step in range(2):
        out_a, grads_a = train_step(a, ta, [x], loss, step)
        out_b, grads_b = train_step(b, tb, [x], loss, step)
        eq(out_a[0], out_b[0])
        assert_same_dicts(grads_a, grads_b)
    assert b._cached.traces == 2 and b.child._cached.traces == 1


# ---- 6. export -> SymbolBlock.imports ---------------------------------------------------------
def trained_hybrid(make, x, steps=2):
    net = built(make, lambda n: n(x))
    net.hybridize()
    trainer = trainer_of(net)
    for step in range(steps):
        train_step(net, trainer, [x], head_loss(), step)
    return net


@pytest.mark.parametrize("make,shape,has_bn", [
    (lambda: LeNet(channels=(3, 4), kernel_size=3, hidden=8, classes=3), (2, 1, 12, 12), False),
    (lambda: Inception(classes=3, width=0.0625, dropout=0.3), (2, 1, 12, 12), True),
], ids=["lenet", "inception"])
def test_export_then_imports_round_trip(make, shape, has_bn, tmp_path):
    rng = np.random.default_rng(14)
    x = f64(rng, *shape)
    net = trained_hybrid(make, x)
    expected = net(x).asnumpy()                  # predict mode (BatchNorm: running statistics)
    files = net.export(str(tmp_path / "model"))
    assert files == (str(tmp_path / "model-symbol.json"), str(tmp_path / "model-0000.params"))
    assert all(Path(f).is_file() for f in files)

    text = Path(files[0]).read_text()
    assert "\n" in text                          # indented, for people to read
    spec = json.loads(text)
    names = [n["op"] for n in spec["nodes"]]
    assert names and all(n in OPS for n in names)
    assert "convolution" in names and "fully_connected" in names
    if has_bn:
        assert "batch_norm" in names and "concat" in names
    assert spec["inputs"] == [{"name": "data", "shape": list(shape), "dtype": "float64"}]
    assert spec["training"] is False
    assert [p["name"] for p in spec["params"]] == net._cached.last_graph(False).param_names

    sym = gluon.SymbolBlock.imports(files[0], ["data"], files[1])
    eq(sym(x).asnumpy(), expected)
    eq(gluon.SymbolBlock.imports(files[0], "data", files[1])(x).asnumpy(), expected)
    assert set(sym.collect_params()) <= set(net.collect_params())
    for name, p in sym.collect_params().items():
        eq(p.data().asnumpy(), net.collect_params()[name].data().asnumpy())
        assert p.grad_req == net.collect_params()[name].grad_req

    # fine-tuning: gradients w.r.t. the SymbolBlock's parameters are the original net's
    loss = head_loss()
    t_net, t_sym = trainer_of(net), trainer_of(sym)
    for step in range(2):
        results = []
        for block, trainer in ((net, t_net), (sym, t_sym)):
            xi = x.copy()
            xi.attach_grad()
            with autograd.record(train_mode=False):
                value = loss(block(xi))
            value.backward()
            grads = grads_of(block)
            grads["input"] = xi.grad.asnumpy()
            results.append(grads)
            trainer.step(1)
        common = {k: v for k, v in results[0].items() if k in results[1]}
        assert common.keys() == results[1].keys()
        assert_same_dicts(common, results[1])
        eq(sym(x).asnumpy(), net(x).asnumpy())   # after the same update


def test_export_needs_a_predict_mode_graph(tmp_path):
    rng = np.random.default_rng(15)
    x = f64(rng, 2, 3)
    net = built(lambda: MLP(hidden=(4,), dropout=0.5, classes=2), lambda n: n(x))
    with pytest.raises(RuntimeError, match="not hybridized"):
        net.export(str(tmp_path / "m"))
    net.hybridize()
    with pytest.raises(RuntimeError, match="no predict-mode graph"):
        net.export(str(tmp_path / "m"))          # hybridized, never called
    with autograd.record():
        net(x)
    with pytest.raises(RuntimeError, match="no predict-mode graph"):
        net.export(str(tmp_path / "m"))
    assert not list(tmp_path.iterdir())
    net(x)
    js, params = net.export(str(tmp_path / "m"), epoch=3)
    assert params.endswith("m-0003.params")
    sym = gluon.SymbolBlock.imports(js, ["data"], params)
    eq(sym(x).asnumpy(), net(x).asnumpy())
    with pytest.raises(ValueError, match="as exported"):
        sym(f64(rng, 3, 3))


def test_export_of_a_model_with_several_inputs_and_nested_outputs(tmp_path):
    rng = np.random.default_rng(22)
    tokens = nd.array(rng.integers(0, 7, (3, 2)), dtype="int64")
    net = built(lambda: LSTMLM(7, embed_size=4, hidden_size=4, num_layers=2, dropout=0.2),
                lambda n: n(tokens, [s.astype(F64) for s in n.begin_state(2)]))
    states = [f64(rng, 2, 2, 4), f64(rng, 2, 2, 4)]
    net.hybridize()
    logits, new = net(tokens, states)
    js, params = net.export(str(tmp_path / "lm"))
    spec = json.loads(Path(js).read_text())
    assert [i["name"] for i in spec["inputs"]] == ["data0", "data1", "data2"]
    assert spec["inputs"][0]["dtype"] == "int64"
    sym = gluon.SymbolBlock.imports(js, ["data0", "data1", "data2"], params)
    logits2, new2 = sym(tokens, *states)
    eq(logits2.asnumpy(), logits.asnumpy())
    assert isinstance(new2, list)
    for x, y in zip(new, new2, strict=True):
        eq(x.asnumpy(), y.asnumpy())
    with pytest.raises(GraphFormatError, match="input names"):
        gluon.SymbolBlock.imports(js, ["data"], params)
    with pytest.raises(ValueError, match="takes 3 inputs"):
        sym(tokens)


def test_symbol_block_inside_a_hybridized_parent_is_inlined(tmp_path):
    rng = np.random.default_rng(16)
    x = f64(rng, 2, 1, 10, 10)
    net = built(lambda: LeNet(channels=(2, 3), kernel_size=3, hidden=5, classes=3), lambda n: n(x))
    net.hybridize()
    expected = net(x)
    js, params = net.export(str(tmp_path / "lenet"))
    sym = gluon.SymbolBlock.imports(js, ["data"], params)
    head = gluon.nn.Dense(2, in_units=3, dtype=F64)
    head.initialize(mx.init.Xavier())
    parent = gluon.nn.HybridSequential()
    parent.add(sym, head)
    parent.hybridize()
    y = parent(x)
    y2 = parent(x)
    eq(y.asnumpy(), head(expected).asnumpy())
    eq(y2.asnumpy(), y.asnumpy())
    graph = parent._cached.last_graph()
    assert [n.op.name for n in graph.nodes] == [n.op.name for n in sym.graph.nodes] + ["fully_connected"]


# ---- 7. malicious or corrupt graph files ----------------------------------------------------
def _tripwire(path):
    """What a malicious pickle would run on load; its file shows whether anything unpickled."""
    Path(path).write_text("unpickled")


class Tripwire:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_tripwire, (self.path,))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A LeNet exported once: (json path, params path, spec dict, input, expected output)."""
    folder = tmp_path_factory.mktemp("exported")
    rng = np.random.default_rng(17)
    x = f64(rng, 2, 1, 10, 10)
    net = built(lambda: LeNet(channels=(2, 3), kernel_size=3, hidden=5, classes=3), lambda n: n(x))
    net.hybridize()
    y = net(x).asnumpy()
    js, params = net.export(str(folder / "lenet"))
    return js, params, json.loads(Path(js).read_text()), x, y


def first(spec, op):
    return next(k for k, n in enumerate(spec["nodes"]) if n["op"] == op)


def load_mutated(exported, tmp_path, mutate=None, text=None, input_names=("data",)):
    js, params, spec, _, _ = exported
    spec = copy.deepcopy(spec)
    if mutate is not None:
        mutate(spec)
    path = tmp_path / "bad-symbol.json"
    path.write_text(text if text is not None else json.dumps(spec))
    return gluon.SymbolBlock.imports(str(path), list(input_names), params)


def set_node(op, key, value):
    def mutate(spec):
        spec["nodes"][first(spec, op)][key] = value
    return mutate


def set_attr(op, name, value):
    def mutate(spec):
        spec["nodes"][first(spec, op)]["attrs"][name] = value
    return mutate


CORRUPT = {
    "op os.system": (set_node("convolution", "op", "os.system"), "not a registered dlrun op"),
    "op __import__": (set_node("tanh", "op", "__import__"), "not a registered dlrun op"),
    "op builtins.eval": (set_node("flatten", "op", "builtins.eval"), "not a registered dlrun op"),
    "op not a string": (set_node("tanh", "op", ["tanh"]), "not a registered dlrun op"),
    "attr tagged pickle": (set_attr("convolution", "stride", {"pickle": "gASVAAAA"}),
                           "not a value dlrun graphs hold"),
    "attr tagged object dtype": (set_attr("convolution", "stride", {"dtype": "object"}),
                                 "not a numeric dtype"),
    "literal tagged pickle": (set_node("convolution", "inputs", [0, 1, {"value": {"pickle": "x"}}]),
                              "not a value dlrun graphs hold"),
    "attr not an argument": (set_attr("convolution", "callback", "os.system"),
                             r"\['callback'\] are not arguments of op 'convolution'"),
    "attr xp": (set_attr("tanh", "xp", "numpy"), "not arguments of op 'tanh'"),
    "attr rng": (set_attr("convolution", "rng", 0), "not arguments of op 'convolution'"),
    "input from a later node": (set_node("convolution", "inputs", [9, 1, 2]),
                                "input 9 is not an earlier value slot"),
    "input from its own output": (lambda s: s["nodes"][1].__setitem__("inputs", [len(s["params"]) + 2]),
                                  "not an earlier value slot"),
    "negative input slot": (set_node("tanh", "inputs", [-1]), "not an earlier value slot"),
    "wrong format": (lambda s: s.__setitem__("format", "mxnet-symbol"), "not a dlrun graph"),
    "no format": (lambda s: s.pop("format"), "not a dlrun graph"),
    "wrong version": (lambda s: s.__setitem__("version", 99), "version 99"),
    "input dtype object": (lambda s: s["inputs"][0].__setitem__("dtype", "object"), "malformed header"),
    "negative shape": (lambda s: s["params"][0].__setitem__("shape", [-2, 1]), "malformed header"),
    "bad grad_req": (lambda s: s["params"][0].__setitem__("grad_req", "exec"), "malformed header"),
    "output out of range": (lambda s: s.__setitem__("outputs", [10 ** 6]), "must be value slots"),
    "bad output tree": (lambda s: s.__setitem__("output_tree", ["dict", [0]]), "malformed header"),
    "constants not stored": (lambda s: s.__setitem__("constants", [{"shape": [1], "dtype": "float64"}]),
                             "constants const:0 are missing"),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_or_malicious_graph_is_refused(case, exported, tmp_path):
    mutate, message = CORRUPT[case]
    with pytest.raises(GraphFormatError, match=message):
        load_mutated(exported, tmp_path, mutate)


@pytest.mark.parametrize("case", ["truncated", "not json", "a list", "empty", "binary"])
def test_unreadable_graph_file_is_refused(case, exported, tmp_path):
    text = Path(exported[0]).read_text()
    bad = {"truncated": text[:len(text) // 2], "not json": "format: dlrun-graph",
           "a list": "[1, 2, 3]", "empty": "", "binary": None}[case]
    if bad is None:
        (tmp_path / "bad-symbol.json").write_bytes(b"\x80\x04\x95\xff\xfe")
        with pytest.raises(GraphFormatError, match="cannot read graph file"):
            gluon.SymbolBlock.imports(str(tmp_path / "bad-symbol.json"), ["data"], exported[1])
        return
    with pytest.raises(GraphFormatError, match="cannot read graph file|not a dlrun graph"):
        load_mutated(exported, tmp_path, text=bad)


# damage that only running the graph would otherwise reveal: refused when the file is loaded
CORRUPT_AT_LOAD = {
    "attrs not an object": set_node("tanh", "attrs", [1]),
    "nodes not a list": lambda s: s.__setitem__("nodes", 5),
    "constants not a list": lambda s: s.__setitem__("constants", 5),
    "wrong number of inputs": set_node("tanh", "inputs", [0, 0]),
    "attr naming a positional input": set_attr("tanh", "x", 1),
}


@pytest.mark.parametrize("case", list(CORRUPT_AT_LOAD))
def test_corrupt_graph_is_refused_at_load_time(case, exported, tmp_path):
    mutate = CORRUPT_AT_LOAD[case]
    with pytest.raises(GraphFormatError):
        load_mutated(exported, tmp_path, mutate)  # at load, not later when it runs


def test_deeply_nested_graph_file_is_refused(exported, tmp_path):
    with pytest.raises(GraphFormatError):
        load_mutated(exported, tmp_path, text="[" * 100_000 + "]" * 100_000)


def test_the_unmodified_export_loads(exported, tmp_path):
    _, _, _, x, y = exported
    eq(load_mutated(exported, tmp_path)(x).asnumpy(), y)


def test_wrong_input_names_are_refused(exported, tmp_path):
    js, params, _, x, _ = exported
    with pytest.raises(GraphFormatError, match=r"input names \['x'\] do not match .*\['data'\]"):
        gluon.SymbolBlock.imports(js, ["x"], params)
    with pytest.raises(GraphFormatError, match="input names"):
        gluon.SymbolBlock.imports(js, ["data", "label"], params)


def _npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def test_bad_params_files_are_refused(exported, tmp_path):
    js, params, spec, x, _ = exported
    with np.load(params, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    name = spec["params"][0]["name"]

    text = tmp_path / "text.params"
    text.write_text("features.0.weight = [1, 2, 3]\n")
    with pytest.raises(GraphFormatError, match="cannot read parameter file"):
        gluon.SymbolBlock.imports(js, ["data"], str(text))

    missing = _npz(tmp_path / "missing.params", {k: v for k, v in arrays.items() if k != name})
    with pytest.raises(GraphFormatError, match=f"{name} is missing"):
        gluon.SymbolBlock.imports(js, ["data"], missing)

    shape = _npz(tmp_path / "shape.params", dict(arrays, **{name: np.zeros((1, 2))}))
    with pytest.raises(GraphFormatError, match=f"{name} is float64\\[1, 2\\], the graph wants"):
        gluon.SymbolBlock.imports(js, ["data"], shape)

    dtype = _npz(tmp_path / "dtype.params", dict(arrays, **{name: arrays[name].astype(np.float32)}))
    with pytest.raises(GraphFormatError, match="the graph wants"):
        gluon.SymbolBlock.imports(js, ["data"], dtype)

    no_file = tmp_path / "absent.params"
    with pytest.raises(GraphFormatError, match="cannot read parameter file"):
        gluon.SymbolBlock.imports(js, ["data"], str(no_file))


def test_params_are_never_unpickled(exported, tmp_path):
    js, params, spec, _, _ = exported
    with np.load(params, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    name = spec["params"][0]["name"]
    marker = tmp_path / "tripwire"
    # an npz whose parameter is an object array (a pickle inside the .npy)
    payload = np.array([Tripwire(marker)], dtype=object)
    evil = _npz(tmp_path / "object.params", dict(arrays, **{name: payload}))
    with pytest.raises(GraphFormatError, match="cannot read parameter file"):
        gluon.SymbolBlock.imports(js, ["data"], evil)
    # an extra object array next to good parameters is refused as well
    extra = _npz(tmp_path / "extra.params", dict(arrays, payload=payload))
    with pytest.raises(GraphFormatError, match="cannot read parameter file"):
        gluon.SymbolBlock.imports(js, ["data"], extra)
    # a bare pickle named .params
    import pickle
    raw = tmp_path / "raw.params"
    raw.write_bytes(pickle.dumps(Tripwire(marker)))
    with pytest.raises(GraphFormatError, match="cannot read parameter file"):
        gluon.SymbolBlock.imports(js, ["data"], str(raw))
    assert not marker.exists(), "a parameter file was unpickled"
    pickle.loads(raw.read_bytes())  # the tripwire does work when something unpickles it
    assert marker.read_text() == "unpickled"


# ---- 8. graph optimisations -----------------------------------------------------------------
@pytest.fixture
def count_ops(monkeypatch):
    """A list that receives the name of every op invoked through the registry."""
    names = []
    invoke = registry.invoke

    def counting(op, inputs, attrs):
        names.append(op.name)
        return invoke(op, inputs, attrs)
    monkeypatch.setattr(registry, "invoke", counting)
    return names


class WithConstant(HybridBlock):
    def forward(self, x):
        c = nd.ones((2, 3), dtype=x.dtype) * 2 + 1
        return x * c


def test_constant_folding_leaves_only_ops_that_read_inputs(count_ops):
    net = WithConstant()
    x = nd.array(np.arange(6.0).reshape(2, 3), dtype=F64)
    net(x)
    assert count_ops == ["multiply", "add", "multiply"]  # imperatively: three ops
    net.hybridize()
    eq(net(x).asnumpy(), np.arange(6.0).reshape(2, 3) * 3)
    graph = net._cached.last_graph()
    assert [n.op.name for n in graph.nodes] == ["multiply"]
    assert len(graph.nodes) < 3
    assert len(graph.consts) == 1
    eq(graph.consts[0], np.full((2, 3), 3.0))
    del count_ops[:]
    x2 = nd.array(-np.ones((2, 3)), dtype=F64)
    eq(net(x2).asnumpy(), -3 * np.ones((2, 3)))          # the replay, with the folded constant
    assert count_ops == []  # a replay does not go through the registry op by op


def test_folding_stops_at_parameters():
    class Biased(HybridBlock):
        def __init__(self):
            super().__init__()
            self.fc = gluon.nn.Dense(3, in_units=3, dtype=F64)

        def forward(self, x):
            w = self.fc.weight.data() * 2           # reads a parameter: not a constant
            return ops.dot(x, w) + nd.ones((3,), dtype=F64) * 5
    net = Biased()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = nd.array(np.eye(3), dtype=F64)
    net(x)
    graph = net._cached.last_graph()
    assert graph.param_names == ["fc.weight"]
    assert [n.op.name for n in graph.nodes] == ["multiply", "dot", "add"]
    assert len(graph.consts) == 1 and graph.consts[0].shape == (3,)
    net.fc.weight.set_data(np.eye(3))                  # the replay reads the new weight
    eq(net(x).asnumpy(), 2 * np.eye(3) + 5)


class WithDeadBranch(HybridBlock):
    def __init__(self):
        super().__init__()
        self.fc = gluon.nn.Dense(2, in_units=3, dtype=F64)
        self.unused = gluon.nn.Dense(4, in_units=3, dtype=F64)

    def forward(self, x):
        (self.unused(x) * 3).exp().sum()  # computed, never used
        return self.fc(x.tanh())


def test_dead_nodes_are_eliminated(count_ops):
    net = WithDeadBranch()
    net.initialize(mx.init.Xavier())
    x = nd.array(np.random.default_rng(18).normal(size=(2, 3)), dtype=F64)
    expected = net(x).asnumpy()
    imperative = list(count_ops)
    # (the method x.sum() gives MXNet 1.x's shape (1,): a reshape follows the sum)
    assert imperative == ["fully_connected", "multiply", "exp", "sum", "reshape", "tanh", "fully_connected"]
    net.hybridize()
    eq(net(x).asnumpy(), expected)
    graph = net._cached.last_graph()
    assert [n.op.name for n in graph.nodes] == ["tanh", "fully_connected"]
    assert graph.param_names == ["fc.weight", "fc.bias"]   # the dead branch's weights are not read
    eq(net(x).asnumpy(), expected)


def test_dead_random_ops_are_kept_so_the_random_stream_matches():
    class DeadDropout(HybridBlock):
        def forward(self, x):
            ops.dropout(x, p=0.5)            # unused, but it advances the generator
            return ops.dropout(x, p=0.5)
    plain, net = DeadDropout(), DeadDropout()
    net.hybridize()
    x = nd.array(np.ones((4, 8)), dtype=F64)
    for seed in range(3):                    # the trace, then replays
        mx.random.seed(seed)
        with autograd.record():
            y = net(x).asnumpy()
        mx.random.seed(seed)
        with autograd.record():
            eq(y, plain(x).asnumpy())
    assert [n.op.name for n in net._cached.last_graph().nodes] == ["dropout", "dropout"]


def check_memory_plan(graph):
    """Simulate the replay's frees: every read finds its value alive, each intermediate is
    freed exactly once right after its last reader, and only intermediates are freed."""
    fixed = graph.n_leaves + len(graph.consts)
    last_use = {}
    for k, n in enumerate(graph.nodes):
        for s in n.outs:
            last_use.setdefault(s, k)
        for s in n.args:
            if s is not None:
                last_use[s] = k
    alive = set(range(fixed))
    freed = set()
    for k, n in enumerate(graph.nodes):
        for s in n.args:
            assert s is None or s in alive, f"node {k} ({n.op.name}) reads slot {s} after it was freed"
        alive.update(n.outs)
        for s in n.frees:
            assert s >= fixed, f"node {k} frees an input, parameter or constant ({s})"
            assert s not in graph.outputs, f"node {k} frees output slot {s}"
            assert last_use[s] == k, f"slot {s} freed at node {k}, last used at {last_use[s]}"
            assert s not in freed
            freed.add(s)
            alive.discard(s)
    intermediates = {s for n in graph.nodes for s in n.outs} - set(graph.outputs)
    assert freed == intermediates
    assert set(graph.outputs) <= alive | set(range(fixed))


def test_memory_plan_frees_each_value_after_its_last_use():
    class Small(HybridBlock):
        def forward(self, x):
            a = x.tanh()                 # slot 1
            b = a * 2                    # slot 2
            c = b.exp()                  # slot 3: b dies here
            left, right = ops.split(c, num_outputs=2, axis=1)  # slots 4, 5: right is never read
            return a.sum(axis=1, keepdims=True) + left         # slots 6, 7: a, left die at 6 / 7
    net = Small()
    net.hybridize()
    xv = np.random.default_rng(19).normal(size=(2, 4))
    y = net(nd.array(xv, dtype=F64))
    a = np.tanh(xv)
    expected = a.sum(axis=1, keepdims=True) + np.exp(a * 2)[:, :2]
    np.testing.assert_allclose(y.asnumpy(), expected, rtol=1e-12)
    eq(net(nd.array(xv, dtype=F64)).asnumpy(), y.asnumpy())
    graph = net._cached.last_graph()
    assert [n.op.name for n in graph.nodes] == ["tanh", "multiply", "exp", "split", "sum", "add"]
    assert [n.outs for n in graph.nodes] == [(1,), (2,), (3,), (4, 5), (6,), (7,)]
    assert [sorted(n.frees) for n in graph.nodes] == [[], [], [2], [3, 5], [1], [4, 6]]
    assert graph.outputs == [7]
    check_memory_plan(graph)


@pytest.mark.parametrize("make,shape", [
    (lambda: LeNet(channels=(2, 3), kernel_size=3, hidden=5, classes=3), (2, 1, 10, 10)),
    (lambda: Inception(classes=3, width=0.0625), (1, 1, 12, 12)),
    (lambda: LSTMLM(7, embed_size=4, hidden_size=4, num_layers=2), None),
], ids=["lenet", "inception", "lstm-lm"])
def test_memory_plans_of_model_graphs_are_sound(make, shape):
    rng = np.random.default_rng(20)
    if shape is None:
        tokens = nd.array(rng.integers(0, 7, (3, 2)), dtype="int64")
        inputs = lambda n: (tokens, [s.astype(F64) for s in n.begin_state(2)])  # noqa: E731
    else:
        x = f64(rng, *shape)
        inputs = lambda n: (x,)  # noqa: E731
    net = built(make, lambda n: n(*inputs(n)))
    net.hybridize()
    net(*inputs(net))
    with autograd.record():
        net(*inputs(net))
    for training in (False, True):
        graph = net._cached.last_graph(training)
        assert graph.training is training
        check_memory_plan(graph)


# ---- aliasing: arrays the graph and its callers share ----------------------------------------
def test_the_same_array_passed_twice_does_not_bind_later_calls():
    from dlrun.nn.rnn import LSTMCell
    rng = np.random.default_rng(23)
    a, b = twins(lambda: LSTMCell(4, input_size=3),
                 lambda c: c(f64(rng, 2, 3), [nd.zeros((2, 4), dtype=F64), nd.zeros((2, 4), dtype=F64)]))
    zero = nd.zeros((2, 4), dtype=F64)
    x = f64(rng, 2, 3)
    eq(b(x, [zero, zero])[0].asnumpy(), a(x, [zero, zero])[0].asnumpy())  # the trace
    h, c = f64(rng, 2, 4), f64(rng, 2, 4)
    eq(b(x, [h, c])[0].asnumpy(), a(x, [h, c])[0].asnumpy())             # a replay


def test_writing_into_a_constant_result_does_not_change_the_graph():
    class WithMask(HybridBlock):
        def forward(self, x):
            return x * 2, nd.ones((2,), dtype=x.dtype) * 3
    net = WithMask()
    net.hybridize()
    x = nd.array(np.ones(2), dtype=F64)
    _, mask = net(x)
    mask[:] = 0                       # the caller's own array
    _, mask = net(x)
    mask[:] = 7
    eq(net(x)[1].asnumpy(), [3, 3])


def test_a_constant_written_after_its_first_use():
    class Mutating(HybridBlock):
        def forward(self, x):
            c = nd.zeros((2,), dtype=x.dtype)
            y = x + c
            c[0] = 5
            return y * c + y
    plain, net = Mutating(), Mutating()
    net.hybridize()
    x = nd.array(np.array([1.0, 2.0]), dtype=F64)
    expected = plain(x).asnumpy()
    eq(expected, [6, 2])
    eq(net(x).asnumpy(), expected)    # the trace (imperative)
    eq(net(x).asnumpy(), expected)    # the replay
