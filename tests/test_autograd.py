"""Autograd: the seed's examples, long graphs, fan-out, grad_req modes and the error messages."""
import numpy as np
import pytest

from dlrun.engine import ContextError, array, autograd, cpu, ops, random
from dlrun.engine.autograd import AutogradError
from dlrun.engine.backend import Context


def test_seed_example_product_rule():
    x = array([[1, 2], [3, 4]])
    x.attach_grad()
    with autograd.record():
        y = x * 2
        z = y * x
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 4 * np.array([[1, 2], [3, 4]]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_seed_example_control_flow(seed):
    random.seed(seed)
    a = random.normal(shape=(3,))
    a.attach_grad()
    with autograd.record():
        b = a * 2
        while (ops.norm(b) < 1000).asscalar():
            b = b * 2
        if (ops.sum(b) > 0).asscalar():
            c = b
        else:
            c = 100 * b
    c.backward()
    # c is linear in a: c = k * a, so dc/da = k = c / a elementwise
    k = (c / a).asnumpy()
    np.testing.assert_allclose(a.grad.asnumpy(), k, rtol=1e-6)
    assert np.allclose(k, k[0])


def test_hundred_thousand_node_graph():
    x = array([0.5], dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = x
        for _ in range(100_000):
            y = y * 1.0 + 0.0  # two nodes per step: 200,000 in all
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [1.0])


def test_fan_out_accumulates():
    x = array([2.0, -1.0], dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = x * x + ops.exp(x) * x  # x used by three ops
    y.backward()
    xv = np.array([2.0, -1.0])
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * xv + np.exp(xv) * (1 + xv))


def test_recursion_over_a_tree():
    leaves = [array([float(i + 1)], dtype="float64") for i in range(8)]
    for leaf in leaves:
        leaf.attach_grad()

    def combine(nodes):
        if len(nodes) == 1:
            return nodes[0]
        mid = len(nodes) // 2
        return ops.tanh(combine(nodes[:mid]) * 0.3 + combine(nodes[mid:]) * 0.2)

    with autograd.record():
        root = combine(leaves)
    root.backward()
    eps = 1e-6
    for i, leaf in enumerate(leaves):
        vals = [np.array([float(j + 1)]) for j in range(8)]

        def f(vs):
            if len(vs) == 1:
                return vs[0]
            mid = len(vs) // 2
            return np.tanh(f(vs[:mid]) * 0.3 + f(vs[mid:]) * 0.2)
        vals[i] = vals[i] + eps
        up = f(vals)
        vals[i] = vals[i] - 2 * eps
        down = f(vals)
        np.testing.assert_allclose(leaf.grad.asnumpy(), (up - down) / (2 * eps), rtol=1e-5, atol=1e-10)


def test_grad_req_write_overwrites_add_accumulates_null_skips():
    w = array([1.0, 2.0])
    a = array([1.0, 2.0])
    n = array([1.0, 2.0])
    w.attach_grad("write")
    a.attach_grad("add")
    n.attach_grad("null")
    for _ in range(3):
        with autograd.record():
            y = w * 3 + a * 3 + n * 3
        y.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), [3, 3])
    np.testing.assert_allclose(a.grad.asnumpy(), [9, 9])
    assert n.grad is None


def test_head_gradient_scales_and_is_checked():
    x = array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * x
    y.backward(array([10.0, 0.5]))
    np.testing.assert_allclose(x.grad.asnumpy(), [20.0, 2.0])
    with autograd.record():
        y = x * x
    with pytest.raises(AutogradError, match=r"head gradient has shape \(3,\).*\(2,\)"):
        y.backward(array([1.0, 2.0, 3.0]))


def test_backward_outside_record_is_a_clear_error():
    x = array([1.0])
    x.attach_grad()
    y = x * 2
    with pytest.raises(AutogradError, match="autograd.record"):
        y.backward()


def test_second_backward_needs_retain_graph():
    x = array([3.0])
    x.attach_grad("add")
    with autograd.record():
        y = x * x
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [12.0])
    with pytest.raises(AutogradError, match="retain_graph=True"):
        y.backward()


def test_pause_and_detach_cut_the_graph():
    x = array([2.0])
    x.attach_grad()
    with autograd.record():
        with autograd.pause():
            c = x * 5  # a constant
        y = x * c + x.detach() * 100
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [10.0])


def test_training_mode_flags():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
        with autograd.predict_mode():
            assert autograd.is_recording() and not autograd.is_training()
    with autograd.record(train_mode=False):
        assert not autograd.is_training()
    with autograd.train_mode():
        assert autograd.is_training() and not autograd.is_recording()


def test_mixing_contexts_names_both():
    a = array([1.0], ctx=cpu(0))
    b = array([1.0], ctx=Context("cpu", 1))
    with pytest.raises(ContextError, match=r"cpu\(0\) and cpu\(1\)"):
        a + b


def test_asking_for_a_missing_gpu_says_what_to_do():
    # as MXNet's: gpu(i) is only a name; the first array allocated there fails
    from dlrun.engine import gpu, num_gpus, zeros
    missing = gpu(num_gpus())
    with pytest.raises(ContextError, match="cpu"):
        zeros((2,), ctx=missing)


def test_as_in_context_carries_gradient():
    a = array([1.0, 2.0], ctx=cpu(0))
    a.attach_grad()
    with autograd.record():
        b = a.as_in_context(Context("cpu", 1))
        y = b * b
    y.backward()
    np.testing.assert_allclose(a.grad.asnumpy(), [2.0, 4.0])
    assert b.ctx == Context("cpu", 1)


def test_array_defaults_and_conversions():
    assert array([[1, 2]]).dtype == np.float32
    assert array(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    x = array([3.5])
    assert x.asscalar() == 3.5 and x.item() == 3.5 and float(x) == 3.5
    with pytest.raises(ValueError, match="size 1"):
        array([1, 2]).asscalar()


def test_in_place_operators_write_into_the_array_as_in_mxnet():
    a = array(np.arange(6.0).reshape(2, 3))
    alias = a
    a += array(np.ones((2, 3)))
    a *= 3
    a -= array(np.ones(3))  # broadcast into a's shape
    a /= 2
    assert alias is a
    np.testing.assert_array_equal(alias.asnumpy(), ((np.arange(6.0).reshape(2, 3) + 1) * 3 - 1) / 2)


def test_in_place_operators_refuse_an_array_autograd_tracks():
    x = array(np.ones(3))
    x.attach_grad()
    with autograd.record():
        y = x * 2
        with pytest.raises(RuntimeError, match=r"in-place '\+=' .* \(x = x \+ y\)"):
            x += 1
        with pytest.raises(RuntimeError, match="in-place '\\*='"):
            y *= 2
        z = array(np.zeros(3))  # a constant: nothing to corrupt
        z += y
    np.testing.assert_array_equal(z.asnumpy(), [2, 2, 2])
