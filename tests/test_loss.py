"""Losses against NumPy implementations of their formulas, gradient checks, large-logit stability.

Formulas (elementwise, before the mean over the non-batch axes that every Gluon loss takes):
  L2            1/2 (f - y)^2                                   (seed: least mean squares)
  L1            |f - y|                                         (seed: L1 loss)
  Huber         (y - f)^2 / (2 rho) if |y - f| < rho else |y - f| - rho/2   (seed: Huber's robust loss)
  Logistic      log(1 + exp(-y f)), y in {-1, 1}; binary t in {0, 1} means y = 2t - 1   (seed)
  Sigmoid BCE   -(y log s(f) + (1 - y) log(1 - s(f))), s = sigmoid; pos_weight pw scales y log s(f)
  Softmax CE    -log softmax(f)[y]  (sparse);  -sum_k y_k log softmax(f)_k  (dense)   (seed: multinomial)
  Hinge         max(0, margin - y f);  squared hinge  max(0, margin - y f)^2
  Perceptron    max(0, -y f)                                    (seed: perceptron loss)
  KL divergence y (log y - p), p = log-probabilities, averaged over the non-batch axes (Gluon)
Then loss * sample_weight * weight, and the mean over every axis but batch_axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from dlrun import nd
from dlrun.engine import autograd
from dlrun.loss import (HingeLoss, HuberLoss, KLDivLoss, L1Loss, L2Loss, LogisticLoss, PerceptronLoss,
                        SigmoidBCELoss, SigmoidBinaryCrossEntropyLoss, SoftmaxCELoss,
                        SoftmaxCrossEntropyLoss, SquaredHingeLoss)
from tests.contexts import CONTEXTS
from tests.gradcheck import check_gradients


# ---------------------------------------------------------------- NumPy references

def np_log_softmax(f: np.ndarray, axis: int = -1) -> np.ndarray:
    m = f.max(axis=axis, keepdims=True)
    return f - m - np.log(np.exp(f - m).sum(axis=axis, keepdims=True))


def np_sigmoid(f: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-f))


def huber_ref(f, y, rho):
    d = np.abs(y - f)
    return np.where(d < rho, (y - f) ** 2 / (2 * rho), d - rho / 2)


def bce_ref(f, y, pw=1.0):
    s = np_sigmoid(f)
    return -(pw * y * np.log(s) + (1 - y) * np.log(1 - s))


def sparse_ce_ref(f, y, axis=-1):
    return -np.take_along_axis(np_log_softmax(f, axis), np.expand_dims(y, axis).astype(int), axis)


def kl_ref(p, y):
    return np.where(y > 0, y * (np.log(np.where(y > 0, y, 1)) - p), 0.0)


def reduce_ref(elem: np.ndarray, weight: float | None, sample_weight: np.ndarray | None,
               batch_axis: int, total: bool = False) -> np.ndarray:
    """Gluon's tail: weight the elementwise loss, then average (``total``: sum, as MXNet's
    KLDivLoss) over the non-batch axes."""
    if sample_weight is not None:
        elem = elem * sample_weight
    if weight is not None:
        elem = elem * weight
    axes = tuple(a for a in range(elem.ndim) if a != batch_axis)
    return (elem.sum(axis=axes) if total else elem.mean(axis=axes)) if axes else elem


# ---------------------------------------------------------------- cases

def away_from(x: np.ndarray, kinks: Callable[[np.ndarray], np.ndarray], gap: float = 0.15) -> np.ndarray:
    """Shift entries whose distance ``kinks(x)`` to a kink is below ``gap`` (for gradient checks)."""
    x = x.copy()
    for _ in range(10):
        near = np.abs(kinks(x)) < gap
        if not near.any():
            return x
        x[near] += 2 * gap
    raise AssertionError("could not move the inputs away from the kinks")


def real(rng, shape):
    return rng.normal(size=shape)


def signed(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape)


def binary(rng, shape):
    return rng.integers(0, 2, size=shape).astype(float)


def soft(rng, shape):
    return rng.uniform(0.05, 0.95, size=shape)


def distribution(rng, shape, axis=-1):
    e = rng.uniform(0.1, 1.0, size=shape)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class LossCase:
    id: str
    make: Callable[..., Any]                  # (weight, batch_axis) -> loss block
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray]   # elementwise (or keepdims) loss
    label: Callable[..., np.ndarray] = real     # (rng, pred shape) -> label
    pred: Callable[..., np.ndarray] = real      # (rng, shape) -> pred
    sparse: bool = False                        # label is pred's shape without the last axis
    keepdims: bool = False                      # reference reduces the last axis, keeping it
    kinks: Callable | None = None               # (pred, label) -> distance to the nearest kink
    label_grad: bool = False                    # also check the gradient w.r.t. the label
    kwargs: dict = field(default_factory=dict)  # extra call arguments (pos_weight)
    total: bool = False                         # summed over the non-batch axes (KLDivLoss)


CASES = [
    LossCase("l2", lambda **kw: L2Loss(**kw), lambda f, y: 0.5 * (f - y) ** 2, label_grad=True),
    LossCase("l1", lambda **kw: L1Loss(**kw), lambda f, y: np.abs(f - y),
             kinks=lambda f, y: f - y, label_grad=True),
    LossCase("huber", lambda **kw: HuberLoss(rho=0.7, **kw), lambda f, y: huber_ref(f, y, 0.7),
             kinks=lambda f, y: np.minimum(np.abs(np.abs(f - y) - 0.7), np.abs(f - y)),
             label_grad=True),
    LossCase("logistic-signed", lambda **kw: LogisticLoss(**kw),
             lambda f, y: np.log(1 + np.exp(-y * f)), label=signed),
    LossCase("logistic-binary", lambda **kw: LogisticLoss(label_format="binary", **kw),
             lambda f, t: np.log(1 + np.exp(-(2 * t - 1) * f)), label=binary),
    LossCase("bce-logits", lambda **kw: SigmoidBinaryCrossEntropyLoss(**kw), bce_ref, label=soft,
             label_grad=True),
    LossCase("bce-pos-weight", lambda **kw: SigmoidBCELoss(**kw), lambda f, y: bce_ref(f, y, 2.5),
             label=soft, label_grad=True, kwargs=dict(pos_weight=2.5)),
    LossCase("bce-from-sigmoid", lambda **kw: SigmoidBCELoss(from_sigmoid=True, **kw),
             lambda p, y: -(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)),
             label=soft, pred=soft, label_grad=True),
    LossCase("softmax-ce-sparse", lambda **kw: SoftmaxCrossEntropyLoss(**kw), sparse_ce_ref,
             label=lambda rng, shape: rng.integers(0, shape[-1], size=shape[:-1]).astype(float),
             sparse=True, keepdims=True),
    LossCase("softmax-ce-dense", lambda **kw: SoftmaxCELoss(sparse_label=False, **kw),
             lambda f, y: -(y * np_log_softmax(f)).sum(axis=-1, keepdims=True),
             label=distribution, keepdims=True, label_grad=True),
    LossCase("softmax-ce-from-logits", lambda **kw: SoftmaxCELoss(from_logits=True, **kw),
             lambda p, y: -np.take_along_axis(p, np.expand_dims(y, -1).astype(int), -1),
             label=lambda rng, shape: rng.integers(0, shape[-1], size=shape[:-1]).astype(float),
             pred=lambda rng, shape: np_log_softmax(rng.normal(size=shape)), sparse=True, keepdims=True),
    LossCase("hinge", lambda **kw: HingeLoss(**kw), lambda f, y: np.maximum(0, 1 - y * f),
             label=signed, kinks=lambda f, y: 1 - y * f),
    LossCase("hinge-margin", lambda **kw: HingeLoss(margin=0.5, **kw),
             lambda f, y: np.maximum(0, 0.5 - y * f), label=signed, kinks=lambda f, y: 0.5 - y * f),
    LossCase("squared-hinge", lambda **kw: SquaredHingeLoss(**kw),
             lambda f, y: np.maximum(0, 1 - y * f) ** 2, label=signed, kinks=lambda f, y: 1 - y * f),
    LossCase("perceptron", lambda **kw: PerceptronLoss(**kw), lambda f, y: np.maximum(0, -y * f),
             label=signed, kinks=lambda f, y: y * f),
    LossCase("kl-from-logits", lambda **kw: KLDivLoss(**kw), kl_ref, label=distribution,
             pred=lambda rng, shape: np_log_softmax(rng.normal(size=shape)), label_grad=True,
             total=True),
    LossCase("kl-scores", lambda **kw: KLDivLoss(from_logits=False, **kw),
             lambda f, y: kl_ref(np_log_softmax(f), y), label=distribution, label_grad=True,
             total=True),
]
CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES]


def make_inputs(case: LossCase, shape: tuple, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pred = case.pred(rng, shape)
    label = case.label(rng, shape)
    if case.kinks is not None:
        pred = away_from(pred, lambda f: case.kinks(f, label))
    return pred, label


def expected(case: LossCase, pred, label, weight=None, sample_weight=None, batch_axis=0):
    return reduce_ref(case.reference(pred, label), weight, sample_weight, batch_axis, case.total)


# ---------------------------------------------------------------- forward against NumPy

# (shape, batch_axis, sample_weight shape): batch on axis 0, and on axis 1 of a 3-D input
LAYOUTS = [((4, 5), 0, (4, 1)), ((3, 4, 5), 1, (1, 4, 1))]


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("case", CASE_PARAMS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["batch0", "batch1"])
def test_forward_matches_numpy_with_weights(case, layout, ctx):
    shape, batch_axis, sw_shape = layout
    pred, label = make_inputs(case, shape, seed=1)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, size=sw_shape)
    c = ctx()
    P, Y, SW = (nd.array(a, ctx=c, dtype="float64") for a in (pred, label, sw))

    plain = case.make(batch_axis=batch_axis)(P, Y, **case.kwargs)
    assert plain.shape == (shape[batch_axis],)
    np.testing.assert_allclose(plain.asnumpy(), expected(case, pred, label, batch_axis=batch_axis),
                               rtol=1e-10, atol=1e-12)

    weighted = case.make(weight=1.7, batch_axis=batch_axis)(P, Y, SW, **case.kwargs)
    np.testing.assert_allclose(weighted.asnumpy(),
                               expected(case, pred, label, 1.7, sw, batch_axis=batch_axis),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_float32_stays_float32_with_integer_labels(case):
    pred, label = make_inputs(case, (4, 3), seed=3)
    int_label = label.astype(np.int64) if np.all(label == np.round(label)) else label
    out = case.make()(nd.array(pred, dtype="float32"), nd.array(int_label), **case.kwargs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.asnumpy(), expected(case, pred, int_label.astype(float)),
                               rtol=2e-5, atol=1e-6)


def test_labels_are_reshaped_to_pred_where_gluon_does():
    """A (N,) label for a (N, 1) prediction is the common case; so is a (N, 1) class index."""
    pred = np.array([[0.5], [-1.0], [2.0]])
    y = np.array([1.0, -1.0, -1.0])
    for loss, ref in [(L2Loss(), 0.5 * (pred[:, 0] - y) ** 2),
                      (HingeLoss(), np.maximum(0, 1 - y * pred[:, 0])),
                      (LogisticLoss(), np.log1p(np.exp(-y * pred[:, 0])))]:
        np.testing.assert_allclose(loss(nd.array(pred, dtype="float64"), nd.array(y, dtype="float64"))
                                   .asnumpy(), ref, rtol=1e-12)
    logits = np.random.default_rng(4).normal(size=(3, 4))
    idx = np.array([[1], [0], [3]])
    got = SoftmaxCrossEntropyLoss()(nd.array(logits, dtype="float64"), nd.array(idx)).asnumpy()
    np.testing.assert_allclose(got, sparse_ce_ref(logits, idx[:, 0])[:, 0], rtol=1e-12)


def test_softmax_ce_on_a_middle_axis():
    """axis=1 on (N, C, T) logits (a sequence of predictions per sample)."""
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 4, 3))
    label = rng.integers(0, 4, size=(2, 3))
    got = SoftmaxCrossEntropyLoss(axis=1)(nd.array(logits, dtype="float64"), nd.array(label)).asnumpy()
    np.testing.assert_allclose(got, sparse_ce_ref(logits, label, axis=1).mean(axis=(1, 2)), rtol=1e-12)


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradients_match_finite_differences(case, ctx):
    pred, label = make_inputs(case, (3, 4), seed=6)
    sw = np.random.default_rng(7).uniform(0.5, 2.0, size=(3, 1))
    c = ctx()
    loss = case.make(weight=0.8)
    wrt = [0, 1, 2] if case.label_grad else [0, 2]

    def fn(p, y, w):
        return loss(p, y, w, **case.kwargs)
    check_gradients(fn, [pred, label, sw], c, wrt=wrt)


# ---------------------------------------------------------------- stability for large logits

def value_and_grad(loss, pred, label, dtype, **kwargs):
    p = nd.array(pred, dtype=dtype)
    p.attach_grad()
    with autograd.record():
        out = loss(p, nd.array(label, dtype=dtype), **kwargs)
    out.backward()
    v, g = out.asnumpy(), p.grad.asnumpy()
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)), (v, g)
    return v, g


DTYPES = pytest.mark.parametrize("dtype", ["float32", "float64"])


@DTYPES
def test_logistic_loss_is_stable_at_large_logits(dtype):
    f = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]])
    y = np.array([[1.0], [-1.0], [-1.0], [1.0]])
    v, g = value_and_grad(LogisticLoss(), f, y, dtype)
    # log(1 + exp(-y f)): 0 when y f = 1000, 1000 when y f = -1000; d/df = -y / (1 + exp(y f))
    np.testing.assert_allclose(v, [0, 0, 1000, 1000], rtol=1e-6)
    np.testing.assert_allclose(g[:, 0], [0, 0, 1, -1], atol=1e-6)
    v_bin, g_bin = value_and_grad(LogisticLoss(label_format="binary"), f, (y + 1) / 2, dtype)
    np.testing.assert_allclose(v_bin, v)
    np.testing.assert_allclose(g_bin, g)


@DTYPES
def test_sigmoid_bce_is_stable_at_large_logits(dtype):
    f = np.array([[1000.0, -1000.0, 1000.0, -1000.0, 1000.0]])
    y = np.array([[1.0, 0.0, 0.0, 1.0, 0.3]])
    v, g = value_and_grad(SigmoidBCELoss(), f, y, dtype)
    # softrelu(f) - f y: 0, 0, 1000, 1000, 700; d/df = sigmoid(f) - y: 0, 0, 1, -1, 0.7 (over 5)
    np.testing.assert_allclose(v, [(0 + 0 + 1000 + 1000 + 700) / 5], rtol=1e-6)
    np.testing.assert_allclose(g, [[0, 0, 0.2, -0.2, 0.7 / 5]], atol=1e-6)
    v, g = value_and_grad(SigmoidBCELoss(), f, y, dtype, pos_weight=3.0)
    # pos_weight scales only the y log sigmoid(f) term: 0, 0, 1000, 3000, 0.7 * 1000
    np.testing.assert_allclose(v, [(1000 + 3000 + 700) / 5], rtol=1e-6)
    # probabilities of exactly 0 and 1 (sigmoid of +-1000) stay finite with from_sigmoid=True
    probs = np.array([[1.0, 0.0]])
    v, g = value_and_grad(SigmoidBCELoss(from_sigmoid=True), probs, np.array([[1.0, 0.0]]), dtype)
    np.testing.assert_allclose(v, [0.0], atol=1e-6)


@DTYPES
def test_softmax_ce_is_stable_at_large_logits(dtype):
    f = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0]])
    y = np.array([0, 1])
    v, g = value_and_grad(SoftmaxCrossEntropyLoss(), f, y, dtype)
    # log sum exp(f) - f_y = 1000 - f_y: 0 and 2000; d/df = softmax(f) - onehot(y)
    np.testing.assert_allclose(v, [0, 2000], rtol=1e-6)
    np.testing.assert_allclose(g, [[0, 0, 0], [1, -1, 0]], atol=1e-6)
    dense = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    v, g = value_and_grad(SoftmaxCrossEntropyLoss(sparse_label=False), f, dense, dtype)
    np.testing.assert_allclose(v, [1000, 1000], rtol=1e-6)
    np.testing.assert_allclose(g, [[0.5, -0.5, 0], [1, 0, -1]], atol=1e-6)


@DTYPES
def test_kl_div_is_stable_at_large_logits_and_zero_labels(dtype):
    f = np.array([[1000.0, -1000.0, 0.0]])
    label = np.array([[0.5, 0.0, 0.5]])
    v, g = value_and_grad(KLDivLoss(from_logits=False), f, label, dtype)
    # log_softmax(f) = [0, -2000, -1000]; sum_k y_k (log y_k - p_k) (MXNet sums), 0 log 0 = 0
    np.testing.assert_allclose(v, [0.5 * np.log(0.5) + 0.5 * (np.log(0.5) + 1000)], rtol=1e-6)
    # d/df = softmax(f) sum(y) - y
    np.testing.assert_allclose(g, [[0.5, 0, -0.5]], atol=1e-6)
    logp = np.array([[0.0, -1000.0, -1000.0]])
    v, g = value_and_grad(KLDivLoss(), logp, label, dtype)
    np.testing.assert_allclose(v, [0.5 * np.log(0.5) + 0.5 * (np.log(0.5) + 1000)], rtol=1e-6)
    np.testing.assert_allclose(g, [[-0.5, 0, -0.5]], atol=1e-7)


# ---------------------------------------------------------------- the seed's formulas, pointwise

@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0])
def test_huber_is_the_seeds_piecewise_formula_on_both_sides_of_rho(rho):
    d = np.array([0.0, 0.3, 0.99, 1.01, 3.0, -0.3, -0.99, -1.01, -3.0]) * rho
    f, y = d.reshape(-1, 1), np.zeros((d.size, 1))
    v, g = value_and_grad(HuberLoss(rho=rho), f, y, "float64")
    inside = np.abs(d) < rho
    # (y - f)^2 / (2 rho) inside, |y - f| - rho / 2 outside; gradient (f - y) / rho, sgn(f - y)
    np.testing.assert_allclose(v, np.where(inside, d ** 2 / (2 * rho), np.abs(d) - rho / 2), rtol=1e-12)
    np.testing.assert_allclose(g[:, 0], np.where(inside, d / rho, np.sign(d)), rtol=1e-12)
    # continuous at the seam: both branches give rho / 2 there
    at = HuberLoss(rho=rho)(nd.array([[rho], [-rho]], dtype="float64"), nd.zeros((2, 1), dtype="float64"))
    np.testing.assert_allclose(at.asnumpy(), [rho / 2, rho / 2])


def test_huber_default_rho_is_one():
    v = HuberLoss()(nd.array([[0.5, 3.0]], dtype="float64"), nd.zeros((1, 2), dtype="float64"))
    np.testing.assert_allclose(v.asnumpy(), [(0.125 + 2.5) / 2])


def test_logistic_signed_and_binary_formats_agree():
    rng = np.random.default_rng(8)
    f = rng.normal(size=(6, 3)) * 4
    y = signed(rng, (6, 3))
    v_s, g_s = value_and_grad(LogisticLoss(label_format="signed"), f, y, "float64")
    v_b, g_b = value_and_grad(LogisticLoss(label_format="binary"), f, (y + 1) / 2, "float64")
    np.testing.assert_allclose(v_s, v_b, rtol=1e-12)
    np.testing.assert_allclose(g_s, g_b, rtol=1e-12)
    # and both are the seed's gradient -y / (1 + exp(y f)), averaged over 3 features
    np.testing.assert_allclose(g_s, -y / (1 + np.exp(y * f)) / 3, rtol=1e-10)


def test_perceptron_loss_is_zero_on_correctly_classified_points():
    rng = np.random.default_rng(9)
    f = away_from(rng.normal(size=(8, 2)), lambda x: x)
    y = np.sign(f)                                   # every point on the right side
    v, g = value_and_grad(PerceptronLoss(), f, y, "float64")
    np.testing.assert_array_equal(v, 0)
    np.testing.assert_array_equal(g, 0)
    v, g = value_and_grad(PerceptronLoss(), f, -y, "float64")   # every point wrong: -y f = |f|
    np.testing.assert_allclose(v, np.abs(f).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(g, np.sign(f) / 2, rtol=1e-12)


def test_hinge_is_zero_beyond_the_margin_only():
    f = np.array([[2.0, 1.5, 0.5, -0.5]])
    y = np.ones((1, 4))
    v, _ = value_and_grad(HingeLoss(margin=1.0), f, y, "float64")
    np.testing.assert_allclose(v, [(0 + 0 + 0.5 + 1.5) / 4])
    v, _ = value_and_grad(SquaredHingeLoss(margin=2.0), f, y, "float64")
    np.testing.assert_allclose(v, [(0 + 0.25 + 2.25 + 6.25) / 4])


def test_kl_div_of_identical_distributions_is_zero():
    p = distribution(np.random.default_rng(10), (3, 5))
    v = KLDivLoss()(nd.array(np.log(p), dtype="float64"), nd.array(p, dtype="float64"))
    np.testing.assert_allclose(v.asnumpy(), 0, atol=1e-15)


# ---------------------------------------------------------------- errors

def test_wrong_label_shape_names_both_shapes():
    pred = nd.zeros((4, 3))
    for loss in (L2Loss(), L1Loss(), HuberLoss(), LogisticLoss(), SigmoidBCELoss(), HingeLoss(),
                 SquaredHingeLoss(), PerceptronLoss(), SoftmaxCrossEntropyLoss(sparse_label=False)):
        with pytest.raises(ValueError, match=r"label of shape \(4, 2\).*pred of shape \(4, 3\)"):
            loss(pred, nd.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"label of shape \(4, 3\).*pred of shape \(4, 3\).*\(4,\)"):
        SoftmaxCrossEntropyLoss()(pred, nd.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"label of shape \(4, 2\).*pred of shape \(4, 3\)"):
        KLDivLoss()(pred, nd.zeros((4, 2)))


def test_unknown_label_format_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"'signed', 'binary'.*'pm1'"):
        LogisticLoss(label_format="pm1")


def test_bad_sample_weight_and_batch_axis_and_rho_are_rejected():
    pred = nd.zeros((4, 1))
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\).*\(4, 1\)"):
        L2Loss()(pred, nd.zeros((4, 1)), nd.ones((4,)))       # would broadcast to (4, 4)
    with pytest.raises(ValueError, match=r"batch_axis=2.*\(4, 1\)"):
        L2Loss(batch_axis=2)(pred, nd.zeros((4, 1)))
    with pytest.raises(ValueError, match="rho > 0"):
        HuberLoss(rho=0)


def test_aliases_and_repr():
    assert SigmoidBCELoss is SigmoidBinaryCrossEntropyLoss
    assert SoftmaxCELoss is SoftmaxCrossEntropyLoss
    assert repr(HuberLoss(rho=2.0)) == "HuberLoss(rho=2.0, weight=None, batch_axis=0)"
