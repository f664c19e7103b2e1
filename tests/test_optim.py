"""Optimizers, learning-rate schedules, gradient-norm clipping and the Trainer's saved state.

Every update rule is checked against a float64 NumPy implementation of its published
formula (source cited next to each reference) over several steps, on random weights and
gradients, with the Trainer's 1/batch_size rescaling, with and without weight decay,
elementwise clipping and momentum.
"""
import json
import math

import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine import backend
from dlrun.loss import SoftmaxCrossEntropyLoss
from dlrun.nn import Parameter
from dlrun.optim import (DCASGD, NAG, SGD, SGLD, AdaDelta, AdaGrad, Adam, Adamax, Ftrl, Nadam,
                         RMSProp, Signum, Trainer, clip_global_norm, create)
from dlrun.optim import schedules as S
from tests.contexts import CONTEXTS

B = 4       # batch size: step(B) rescales gradients by 1/B
STEPS = 6
SEED = 1234


# ---- float64 references of the published rules -----------------------------------------

DECAY_OWN = ("ftrl", "adagrad", "adadelta", "nag")  # MXNet applies their wd in the update itself
DECAY_THEN_CLIP = ("adam", "adamax", "nadam", "rmsprop")  # MXNet clips after adding wd*w


def _prep(g, w, hp, name):
    """Optimizer's documented preprocessing, as MXNet 1.x's: g/B, clipped elementwise, plus
    wd*w (before the clipping for the rules of DECAY_THEN_CLIP, not at all for DECAY_OWN)."""
    g = g / B
    decay = 0.0 if name in DECAY_OWN else hp.get("wd", 0.0) * w
    if name in DECAY_THEN_CLIP:
        g, decay = g + decay, 0.0
    if hp.get("clip_gradient") is not None:
        g = np.clip(g, -hp["clip_gradient"], hp["clip_gradient"])
    return g + decay


def ref_sgd(w, g, s, t, hp):
    # Plain SGD: w - lr g. Polyak momentum (the seed's "SGD with momentum"; MXNet sgd_mom_update):
    # v = mu v - lr g, w += v. Nesterov (Sutskever et al. 2013 eq. 3-4 in the look-ahead form of
    # Bengio et al. 2013 eq. 7; MXNet's NAG): w += mu v - lr g.
    lr, mu = hp["learning_rate"], hp.get("momentum", 0.0)
    if not mu:
        return w - lr * g
    s["v"] = mu * s.get("v", 0.0) - lr * g
    return w + (mu * s["v"] - lr * g if hp.get("nesterov") else s["v"])


def ref_nag(w, g, s, t, hp):
    # MXNet's nag_mom_update, in place: the decay of the momentum reads the new weight
    lr, mu, wd = hp["learning_rate"], hp.get("momentum", 0.0), hp.get("wd", 0.0)
    v = mu * s.get("v", 0.0)
    new = w + mu * v - (1 + mu) * lr * (g + wd * w)
    s["v"] = v - lr * (g + wd * new)
    return new


def ref_sgld(w, g, s, t, hp):
    # Welling & Teh (2011) eq. 4: w <- w - lr/2 g + N(0, lr); the noise comes from s["noise"]
    lr = hp["learning_rate"]
    return w - lr / 2 * g + math.sqrt(lr) * s["noise"].pop(0)


def ref_dcasgd(w, g, s, t, hp):
    # Zheng et al. (2017) eq. 10, diagonal Hessian approximation lamda g*g (MXNet's DCASGD):
    # v = mu v - lr (g + lamda g g (w - w_prev)); w_prev = w; w += v
    lr, mu = hp["learning_rate"], hp.get("momentum", 0.0)
    prev = s.get("prev", w)
    d = g + hp["lamda"] * g * g * (w - prev)
    s["prev"] = w
    s["v"] = mu * s.get("v", 0.0) - lr * d
    return w + s["v"]


def ref_signum(w, g, s, t, hp):
    # Bernstein et al. (2018) Algorithms 1 (signSGD) and 3 (Signum), MXNet's decoupled wd_lh:
    # m = mu m - (1 - mu) g; w = (1 - lr wd_lh) w + lr sign(m)
    lr, mu = hp["learning_rate"], hp["momentum"]
    w = (1 - lr * hp.get("wd_lh", 0.0)) * w
    if not mu:
        return w - lr * np.sign(g)
    s["m"] = mu * s.get("m", 0.0) - (1 - mu) * g
    return w + lr * np.sign(s["m"])


def ref_adam(w, g, s, t, hp):
    # Kingma & Ba (2015) Algorithm 1; epsilon as in the efficient form of their section 2 (and
    # MXNet): lr * m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t))
    b1, b2 = hp["beta1"], hp["beta2"]
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
    return w - hp["learning_rate"] * m_hat / (np.sqrt(v_hat) + hp["epsilon"] / math.sqrt(1 - b2 ** t))


def ref_adamax(w, g, s, t, hp):
    # Kingma & Ba (2015) Algorithm 2: m = b1 m + (1-b1) g; u = max(b2 u, |g|); w -= lr/(1-b1^t) m/u
    b1, b2 = hp["beta1"], hp["beta2"]
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
    return w - hp["learning_rate"] / (1 - b1 ** t) * s["m"] / s["u"]


def ref_nadam(w, g, s, t, hp):
    # Dozat (2016) Algorithm 2 with the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi)):
    # m_bar = (1 - mu_t) g / (1 - prod_{i<=t} mu_i) + mu_{t+1} m / (1 - prod_{i<=t+1} mu_i)
    b1, b2, psi = hp["beta1"], hp["beta2"], hp["schedule_decay"]
    mu = [b1 * (1 - 0.5 * 0.96 ** (i * psi)) for i in range(1, t + 2)]
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_bar = (1 - mu[t - 1]) * g / (1 - np.prod(mu[:t])) + mu[t] * s["m"] / (1 - np.prod(mu[:t + 1]))
    v_hat = s["v"] / (1 - b2 ** t)
    return w - hp["learning_rate"] * m_bar / (np.sqrt(v_hat) + hp["epsilon"])


def ref_adagrad(w, g, s, t, hp):
    # Duchi et al. (2011), diagonal; the seed's eta0 / sqrt(K + sum g^2) with K = eps
    # (MXNet's wd outside the history)
    s["h"] = s.get("h", 0.0) + g * g
    return w - hp["learning_rate"] * (g / np.sqrt(s["h"] + hp["eps"]) + hp.get("wd", 0.0) * w)


def ref_rmsprop(w, g, s, t, hp):
    # Tieleman & Hinton (2012), lecture 6.5; centered: Graves (2013) eq. 38-41
    lr, g1, eps = hp["learning_rate"], hp["gamma1"], hp["epsilon"]
    s["n"] = g1 * s.get("n", 0.0) + (1 - g1) * g * g
    if hp.get("centered"):
        s["gbar"] = g1 * s.get("gbar", 0.0) + (1 - g1) * g
        s["d"] = hp["gamma2"] * s.get("d", 0.0) - lr * g / np.sqrt(s["n"] - s["gbar"] ** 2 + eps)
        w = w + s["d"]
    else:
        w = w - lr * g / np.sqrt(s["n"] + eps)
    c = hp.get("clip_weights")
    return w if c is None else np.clip(w, -c, c)


def ref_adadelta(w, g, s, t, hp):
    # Zeiler (2012) Algorithm 1, the step scaled by lr (lr = 1 is the paper's rule); MXNet's
    # decay wd*w outside the accumulators
    rho, eps = hp["rho"], hp["epsilon"]
    s["Eg"] = rho * s.get("Eg", 0.0) + (1 - rho) * g * g
    dx = np.sqrt(s.get("Edx", 0.0) + eps) / np.sqrt(s["Eg"] + eps) * g
    s["Edx"] = rho * s.get("Edx", 0.0) + (1 - rho) * dx * dx
    return w - hp["learning_rate"] * dx - hp.get("wd", 0.0) * w


def ref_ftrl(w, g, s, t, hp):
    # McMahan et al. (2013) Algorithm 1 (per coordinate), lambda2 = wd (the paper's penalty is
    # lambda2/2 ||w||^2, MXNet's ftrl_update), wd not added to g
    lr, l1, beta, l2 = hp["learning_rate"], hp["lamda1"], hp["beta"], hp.get("wd", 0.0)
    n = s.get("n", np.zeros_like(w))
    sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / lr
    s["z"] = s.get("z", 0.0) + g - sigma * w
    s["n"] = n + g * g
    z = s["z"]
    return np.where(np.abs(z) <= l1, 0.0, -(z - np.sign(z) * l1) / ((beta + np.sqrt(s["n"])) / lr + l2))


CASES = [  # (name, hyperparameters): every rule with and without wd, clipping and momentum
    ("sgd", dict(learning_rate=0.1)),
    ("sgd", dict(learning_rate=0.1, wd=0.1, clip_gradient=0.2)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=0.3)),
    ("sgd", dict(learning_rate=0.1, momentum=0.8, nesterov=True, wd=0.05)),
    ("nag", dict(learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=0.3)),
    ("sgld", dict(learning_rate=0.01)),
    ("sgld", dict(learning_rate=0.01, wd=0.1, clip_gradient=0.2)),
    ("dcasgd", dict(learning_rate=0.1, lamda=0.04)),
    ("dcasgd", dict(learning_rate=0.1, momentum=0.9, lamda=0.5, wd=0.01, clip_gradient=0.3)),
    ("signum", dict(learning_rate=0.01, momentum=0.0)),
    ("signum", dict(learning_rate=0.01, momentum=0.9, wd=0.01, wd_lh=0.1, clip_gradient=0.3)),
    ("adam", dict(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8)),
    ("adam", dict(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-6, wd=0.01, clip_gradient=0.2)),
    ("adamax", dict(learning_rate=0.01, beta1=0.9, beta2=0.999)),
    ("adamax", dict(learning_rate=0.01, beta1=0.8, beta2=0.99, wd=0.01, clip_gradient=0.2)),
    ("nadam", dict(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004)),
    ("nadam", dict(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-6, schedule_decay=0.1,
                   wd=0.01, clip_gradient=0.2)),
    ("adagrad", dict(learning_rate=0.1, eps=1e-7)),
    ("adagrad", dict(learning_rate=0.1, eps=1e-3, wd=0.01, clip_gradient=0.2)),
    ("rmsprop", dict(learning_rate=0.01, gamma1=0.9, epsilon=1e-8)),
    ("rmsprop", dict(learning_rate=0.01, gamma1=0.8, gamma2=0.9, epsilon=1e-6, centered=True,
                     wd=0.01, clip_gradient=0.2)),
    ("rmsprop", dict(learning_rate=0.05, gamma1=0.9, epsilon=1e-8, clip_weights=0.5)),
    ("adadelta", dict(learning_rate=1.0, rho=0.9, epsilon=1e-6)),
    ("adadelta", dict(learning_rate=0.5, rho=0.95, epsilon=1e-4, wd=0.01, clip_gradient=0.2)),
    ("ftrl", dict(learning_rate=0.1, lamda1=0.01, beta=1.0)),
    ("ftrl", dict(learning_rate=0.1, lamda1=0.05, beta=0.5, wd=0.01, clip_gradient=0.2)),
]
REFERENCES = {name[4:]: f for name, f in globals().items() if name.startswith("ref_")}
RULE_HP = ("learning_rate", "momentum", "nesterov", "lamda", "wd_lh", "beta1", "beta2", "epsilon",
           "schedule_decay", "eps", "gamma1", "gamma2", "centered", "clip_weights", "rho", "lamda1",
           "beta")


def _problem(shape=(3, 5), steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape).astype(np.float32),
            [rng.normal(size=shape).astype(np.float32) for _ in range(steps)])


def _reference(name, hp, w0, grads, noise=None):
    w, s = w0.astype(np.float64), {"noise": list(noise or [])}
    for t, g in enumerate(grads, start=1):
        w = REFERENCES[name](w, _prep(g.astype(np.float64), w, hp, name), s, t, hp)
    return w


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()  # a CuPy array comes to the host with get()


def _param(w0, ctx, name="weight"):
    p = Parameter(name, shape=w0.shape)
    p.initialize(mx.init.Zero(), ctx=ctx)  # draws nothing from the seeded generator
    p.set_data(w0)
    return p


def _set_grad(p, g):
    """Write ``g`` into p's gradient as a backward would (fresh for the next step)."""
    p.grad()[:] = g
    p.data()._fresh_grad = True


def _steps(trainer, params, grads_per_param, ctx):
    for gs in zip(*grads_per_param):
        for p, g in zip(params, gs):
            _set_grad(p, nd.array(g, ctx=ctx))
        trainer.step(B)


@pytest.mark.parametrize("ctx_fn", CONTEXTS)
@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_update_matches_published_formula(name, hp, ctx_fn):
    ctx = ctx_fn()
    w0, grads = _problem()
    p = _param(w0, ctx)
    noise = None
    if name == "sgld":  # the noise the engine's generator will draw, seeded the same way
        mx.random.seed(SEED)
        gen = backend.generator(ctx)
        noise = [_host(gen.standard_normal(size=w0.shape, dtype=np.float32)).astype(np.float64)
                 for _ in grads]
        mx.random.seed(SEED)
    trainer = Trainer([p], name, hp)
    _steps(trainer, [p], [grads], ctx)
    np.testing.assert_allclose(p.data().asnumpy(), _reference(name, hp, w0, grads, noise),
                               rtol=1e-5, atol=1e-6)
    assert trainer.optimizer.num_update == STEPS


@pytest.mark.parametrize("name,hp", [("adamax", {}), ("ftrl", {"beta": 0.0, "lamda1": 0.0}),
                                     ("adagrad", {}), ("rmsprop", {"centered": True}), ("adadelta", {})])
def test_coordinates_without_gradient_stay_finite(name, hp):
    # a coordinate whose gradient is always 0 (an unused embedding row) must not become NaN
    p = _param(np.ones((2, 3), np.float32), mx.cpu())
    trainer = Trainer([p], name, hp)
    g = np.zeros((2, 3), np.float32)
    g[1] = [1.0, -2.0, 0.5]
    for _ in range(3):
        _set_grad(p, g)
        trainer.step(1)
    assert np.all(np.isfinite(p.data().asnumpy()))


def test_sgld_noise_has_the_langevin_variance():
    # Welling & Teh (2011): with g = 0 the update is pure N(0, lr) noise
    mx.random.seed(3)
    lr, p = 0.04, _param(np.zeros((200, 100), np.float32), mx.cpu())
    trainer = Trainer([p], SGLD(learning_rate=lr))
    _set_grad(p, 0.0)
    trainer.step(1)
    w = p.data().asnumpy()
    assert abs(w.mean()) < 0.01 and abs(w.var() / lr - 1) < 0.05


def test_nag_is_sgd_with_nesterov_and_named_optimizers_are_created():
    assert isinstance(create("nag"), SGD) and create("nag").nesterov
    for name, cls in [("sgd", SGD), ("nag", NAG), ("sgld", SGLD), ("dcasgd", DCASGD), ("signum", Signum),
                      ("adam", Adam), ("adamax", Adamax), ("nadam", Nadam), ("adagrad", AdaGrad),
                      ("rmsprop", RMSProp), ("adadelta", AdaDelta), ("ftrl", Ftrl)]:
        assert type(create(name.upper())) is cls
    trainer = Trainer([_param(np.ones(2, np.float32), mx.cpu())], "adagrad", {"learning_rate": 0.3, "eps": 1e-6})
    assert isinstance(trainer.optimizer, AdaGrad) and trainer.learning_rate == 0.3


def test_weight_decay_is_mxnets():
    # MXNet's (and PyTorch's) wd: w <- w - eta (g + wd w); the seed's lambda is wd / 2
    p = _param(np.array([1.0, -2.0], np.float32), mx.cpu())
    trainer = Trainer([p], "sgd", {"learning_rate": 0.1, "wd": 0.5})
    _set_grad(p, 4.0)
    trainer.step(B)
    np.testing.assert_allclose(p.data().asnumpy(), (1 - 0.1 * 0.5) * np.array([1.0, -2.0]) - 0.1 * 1.0,
                               rtol=1e-6)


def test_lr_mult_and_wd_mult_per_parameter():
    w0, grads = _problem(steps=3)
    a, b = _param(w0, mx.cpu(), "a"), _param(w0, mx.cpu(), "b")
    b.lr_mult, b.wd_mult = 0.5, 0.0
    hp = dict(learning_rate=0.1, momentum=0.9, wd=0.05)
    trainer = Trainer([a, b], "sgd", hp)
    _steps(trainer, [a, b], [grads, grads], mx.cpu())
    np.testing.assert_allclose(a.data().asnumpy(), _reference("sgd", hp, w0, grads), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.data().asnumpy(), _reference("sgd", {**hp, "learning_rate": 0.05, "wd": 0.0},
                                                              w0, grads), rtol=1e-5, atol=1e-6)


def test_frozen_parameters_are_not_updated():
    w0, grads = _problem(steps=2)
    a, b = _param(w0, mx.cpu(), "a"), _param(w0, mx.cpu(), "b")
    b.grad_req = "null"
    trainer = Trainer([a, b], "adam", {"learning_rate": 0.1})
    for g in grads:
        _set_grad(a, g)
        trainer.step(B)
    np.testing.assert_array_equal(b.data().asnumpy(), w0)
    assert not np.array_equal(a.data().asnumpy(), w0)


def test_trainer_follows_the_schedule_of_its_optimizer():
    w0, grads = _problem(steps=7)
    sched = S.FactorScheduler(step=2, factor=0.5)
    opt = SGD(learning_rate=0.4, lr_scheduler=sched)
    assert sched.base_lr == 0.4
    p = _param(w0, mx.cpu())
    trainer = Trainer([p], opt)
    assert trainer.learning_rate == 0.4
    _steps(trainer, [p], [grads], mx.cpu())
    lrs = [0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05]  # updates 1..7
    expected = w0.astype(np.float64) - sum(lr * g / B for lr, g in zip(lrs, grads))
    np.testing.assert_allclose(p.data().asnumpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="schedule"):
        trainer.set_learning_rate(0.1)


def test_set_learning_rate():
    p = _param(np.ones(2, np.float32), mx.cpu())
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 0.5})
    assert trainer.learning_rate == 0.5
    _set_grad(p, 2.0)
    trainer.step(4)  # gradient rescaled by 1/4
    np.testing.assert_allclose(p.data().asnumpy(), [0.75, 0.75])
    trainer.set_learning_rate(0.1)
    assert trainer.learning_rate == 0.1
    with pytest.raises(ValueError, match="learning_rate"):
        trainer.set_learning_rate(-1.0)


# ---- saved state resumes the same trajectory ------------------------------------------

RESUME_CASES = {name: hp for name, hp in CASES}  # the last (richest) case of each rule


@pytest.mark.parametrize("ctx_fn", CONTEXTS)
@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_save_and_load_states_resume_exactly(name, ctx_fn, tmp_path):
    ctx = ctx_fn()
    hp = RESUME_CASES[name]
    w0, grads = _problem(steps=6)
    v0, vgrads = _problem(shape=(4,), steps=6, seed=1)

    def make(w, v):
        sched = S.FactorScheduler(step=2, factor=0.7, warmup_steps=2, warmup_begin_lr=0.001)
        params = [_param(w, ctx, "w"), _param(v, ctx, "v")]
        return params, Trainer(params, create(name, lr_scheduler=sched, **hp))

    mx.random.seed(SEED)
    params, trainer = make(w0, v0)
    _steps(trainer, params, [grads, vgrads], ctx)
    uninterrupted = [p.data().asnumpy() for p in params]

    mx.random.seed(SEED)
    params, trainer = make(w0, v0)
    _steps(trainer, params, [grads[:3], vgrads[:3]], ctx)
    trainer.save_states(tmp_path / "opt.states")
    with np.load(tmp_path / "opt.states", allow_pickle=False) as f:  # no pickle anywhere
        meta = json.loads(str(f["__meta__"]))
    assert meta["optimizer"]["num_update"] == 3 and meta["optimizer"]["index_update_count"] == {"0": 3, "1": 3}

    params, trainer = make(*[p.data().asnumpy() for p in params])  # a fresh trainer
    trainer.load_states(tmp_path / "opt.states")
    assert trainer.optimizer.num_update == 3
    _steps(trainer, params, [grads[3:], vgrads[3:]], ctx)
    for p, expected in zip(params, uninterrupted):
        np.testing.assert_array_equal(p.data().asnumpy(), expected)


def test_state_dict_names_arrays_by_index_and_slot_and_checks_the_optimizer(tmp_path):
    w0, grads = _problem(steps=2)
    p = _param(w0, mx.cpu())
    trainer = Trainer([p], "adam", {"learning_rate": 0.1})
    _steps(trainer, [p], [grads], mx.cpu())
    d = trainer.state_dict()
    assert sorted(d) == ["0.0", "0.1", "__meta__"] and d["0.0"].shape == w0.shape
    trainer.save_states(tmp_path / "adam.npz")
    other = Trainer([_param(w0, mx.cpu())], "sgd", {"momentum": 0.9})
    with pytest.raises(ValueError, match="Adam"):
        other.load_states(tmp_path / "adam.npz")


# ---- gradient-norm clipping ------------------------------------------------------------

def test_clip_global_norm_helper():
    rng = np.random.default_rng(5)
    arrays = [nd.array(rng.normal(size=(3, 4))), nd.array(rng.normal(size=(5,)))]
    raw = [a.asnumpy() for a in arrays]
    norm = math.sqrt(sum((r.astype(np.float64) ** 2).sum() for r in raw))
    assert clip_global_norm(arrays, 1.0) == pytest.approx(norm, rel=1e-6)
    for a, r in zip(arrays, raw):
        np.testing.assert_allclose(a.asnumpy(), r / norm, rtol=1e-6)
    after = math.sqrt(sum((a.asnumpy().astype(np.float64) ** 2).sum() for a in arrays))
    assert after == pytest.approx(1.0, rel=1e-6)
    assert clip_global_norm(arrays, 10.0) == pytest.approx(1.0, rel=1e-6)  # below: untouched
    assert math.sqrt(sum((a.asnumpy().astype(np.float64) ** 2).sum() for a in arrays)) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_global_norm_leaves_non_finite_gradients_untouched(bad):
    a = nd.array(np.array([3.0, 4.0, bad], np.float32))
    b = nd.array(np.array([1.0, 2.0], np.float32))
    norm = clip_global_norm([a, b], 1.0)
    assert not math.isfinite(norm)
    np.testing.assert_array_equal(b.asnumpy(), [1.0, 2.0])
    np.testing.assert_array_equal(a.asnumpy()[:2], [3.0, 4.0])


def test_trainer_clips_the_rescaled_gradient_norm():
    w0, (g,) = _problem(steps=1)
    v0, (h,) = _problem(shape=(4,), steps=1, seed=1)
    rescaled_norm = math.sqrt(((g / B).astype(np.float64) ** 2).sum() + ((h / B).astype(np.float64) ** 2).sum())
    for max_norm in (0.5 * rescaled_norm, 2 * rescaled_norm):
        a, b = _param(w0, mx.cpu(), "a"), _param(v0, mx.cpu(), "b")
        trainer = Trainer([a, b], "sgd", {"learning_rate": 0.1}, clip_global_norm=max_norm)
        _set_grad(a, g)
        _set_grad(b, h)
        norm = trainer.step(B)
        assert norm == pytest.approx(rescaled_norm, rel=1e-6)  # the norm after 1/B, before clipping
        f = min(1.0, max_norm / rescaled_norm)
        np.testing.assert_allclose(a.data().asnumpy(), w0 - 0.1 * f * g / B, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b.data().asnumpy(), v0 - 0.1 * f * h / B, rtol=1e-5, atol=1e-7)
    _set_grad(a, g)
    assert Trainer([a], "sgd").step(B) is None  # no clipping: no norm


def test_trainer_skips_the_update_on_a_non_finite_gradient_norm():
    w0, (g,) = _problem(steps=1)
    p = _param(w0, mx.cpu())
    trainer = Trainer([p], "adam", {"learning_rate": 0.1}, clip_global_norm=5.0)
    g = g.copy()
    g[0, 0] = np.nan
    _set_grad(p, g)
    assert math.isnan(trainer.step(B))
    np.testing.assert_array_equal(p.data().asnumpy(), w0)
    assert trainer.optimizer.num_update == 0


# ---- learning-rate schedules -----------------------------------------------------------

def _seq(sched, n, base_lr=1.0):
    sched.base_lr = base_lr
    return np.array([sched(t) for t in range(n)])


def test_constant_with_linear_and_constant_warmup():
    np.testing.assert_allclose(_seq(S.Constant(warmup_steps=4, warmup_begin_lr=0.2), 7),
                               [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(_seq(S.Constant(warmup_steps=2, warmup_begin_lr=0.1, warmup_mode="constant"), 4),
                               [0.1, 0.1, 1.0, 1.0])


def test_factor_scheduler():
    # MXNet: updates 1..step at base_lr, then times factor every step updates, floored at stop_factor_lr
    got = _seq(S.FactorScheduler(step=3, factor=0.5, stop_factor_lr=0.1), 15)
    np.testing.assert_allclose(got, [1, 1, 1, 1, .5, .5, .5, .25, .25, .25, .125, .125, .125, .1, .1])


def test_multi_factor_scheduler_is_piecewise_constant():
    got = _seq(S.MultiFactorScheduler(step=[2, 5], factor=0.1), 8)
    np.testing.assert_allclose(got, [1, 1, 1, .1, .1, .1, .01, .01])


def test_poly_and_cosine_schedulers_with_warmup():
    t = np.arange(14)
    warm = t * 1.0 / 2
    progress = np.clip((t - 2) / 8, 0, 1)
    poly = _seq(S.PolyScheduler(max_update=10, pwr=2, final_lr=0.1, warmup_steps=2), 14)
    np.testing.assert_allclose(poly, np.where(t < 2, warm, 0.1 + 0.9 * (1 - progress) ** 2))
    cos = _seq(S.CosineScheduler(max_update=10, final_lr=0.1, warmup_steps=2), 14)
    np.testing.assert_allclose(cos, np.where(t < 2, warm, 0.1 + 0.9 * (1 + np.cos(np.pi * progress)) / 2))
    assert poly[-1] == cos[-1] == pytest.approx(0.1)


def test_inverse_sqrt_scheduler_is_the_seeds_alpha_over_sqrt_beta_plus_t():
    t = np.arange(10)
    np.testing.assert_allclose(_seq(S.InverseSqrtScheduler(alpha=2.0, beta=3.0), 10), 2.0 / np.sqrt(3.0 + t))
    # alpha defaults to base_lr * sqrt(beta): the schedule starts at the optimizer's rate
    np.testing.assert_allclose(_seq(S.InverseSqrtScheduler(beta=4.0), 10, base_lr=0.5), 1.0 / np.sqrt(4.0 + t))
    warm = _seq(S.InverseSqrtScheduler(beta=1.0, warmup_steps=3), 10)
    np.testing.assert_allclose(warm, np.where(t < 3, t / 3, 1 / np.sqrt(1.0 + np.maximum(t - 3, 0))))


def test_exponential_scheduler():
    t = np.arange(9)
    np.testing.assert_allclose(_seq(S.ExponentialScheduler(gamma=0.9), 9), 0.9 ** t)
    np.testing.assert_allclose(_seq(S.ExponentialScheduler(gamma=0.5, step=3), 9), 0.5 ** (t // 3))


def test_epoch_decay_is_zarembas_ptb_recipe():
    # lr 1 for 4 epochs, then halved every epoch; 10 updates per epoch
    got = _seq(S.EpochDecay(constant_epochs=4, factor=0.5, steps_per_epoch=10), 71)
    epoch = np.maximum(np.arange(71) - 1, 0) // 10
    np.testing.assert_allclose(got, 0.5 ** np.maximum(0, epoch - 3))
    assert got[40] == 1.0 and got[41] == 0.5 and got[51] == 0.25
    with pytest.raises(RuntimeError, match="steps_per_epoch"):
        S.EpochDecay()(5)


def test_reduce_on_plateau_reacts_to_a_stalled_metric_only():
    sched = S.ReduceOnPlateau(factor=0.5, patience=3, mode="min")
    sched.base_lr = 1.0
    for loss in [5.0, 4.0, 3.0, 2.5, 2.0, 1.9, 1.8]:  # improving: never reduced
        assert not sched.observe(loss)
    assert sched(100) == 1.0
    assert [sched.observe(v) for v in (1.8, 1.85, 1.8)] == [False, False, True]  # 3 without improvement
    assert sched(101) == 0.5
    assert [sched.observe(v) for v in (1.79999, 2.0, float("nan"))] == [False, False, True]  # < rel 1e-4: stalled
    assert sched(102) == 0.25


def test_reduce_on_plateau_max_mode_cooldown_floor_and_state():
    def make():
        return S.ReduceOnPlateau(factor=0.1, patience=2, mode="max", cooldown=2, min_lr=0.005,
                                 threshold=0.01, threshold_mode="abs")
    sched = make()
    sched.base_lr = 0.1
    # +0.005 is below the absolute threshold 0.01: not an improvement
    assert [sched.observe(v) for v in (0.90, 0.905, 0.95, 0.955, 0.94)] == [False] * 4 + [True]
    assert sched(7) == pytest.approx(0.01)
    assert [sched.observe(0.5) for _ in range(3)] == [False, False, False]  # 2 in cooldown, then 1 bad
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    for s in (sched, restored):
        assert s.observe(0.5) is True and s(0) == pytest.approx(0.005)  # 0.001 floored at min_lr
        assert [s.observe(0.5) for _ in range(6)] == [False] * 6  # cooldown, then at the floor
        assert s.num_reductions == 2


def test_every_schedule_state_is_json():
    for sched in [S.Constant(), S.FactorScheduler(2), S.MultiFactorScheduler([3]), S.PolyScheduler(10),
                  S.CosineScheduler(10), S.InverseSqrtScheduler(), S.ExponentialScheduler(0.9),
                  S.EpochDecay(steps_per_epoch=3), S.ReduceOnPlateau()]:
        sched.base_lr = 0.3
        state = json.loads(json.dumps(sched.state_dict()))
        sched.base_lr = 1.0
        sched.load_state_dict(state)
        assert sched.base_lr == 0.3


# ---- hyperparameter validation ---------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: SGD(momentum=1.0), "SGD: momentum must"),
    (lambda: SGD(momentum="0.9"), "SGD: momentum must"),
    (lambda: SGD(lr=-1), "SGD: learning_rate"),
    (lambda: Adam(learning_rate=float("nan")), "Adam: learning_rate"),
    (lambda: SGD(wd=-0.1), "SGD: wd must"),
    (lambda: SGD(clip_gradient=0), "SGD: clip_gradient must"),
    (lambda: SGD(rescale_grad=0), "SGD: rescale_grad must"),
    (lambda: NAG(momentum=-0.1), "NAG: momentum must"),
    (lambda: Adam(beta1=1.0), "Adam: beta1 must"),
    (lambda: Adamax(beta2=-0.1), "Adamax: beta2 must"),
    (lambda: Adam(epsilon=0), "Adam: epsilon must"),
    (lambda: Nadam(schedule_decay=-1), "Nadam: schedule_decay must"),
    (lambda: AdaGrad(eps=0), "AdaGrad: eps must"),
    (lambda: RMSProp(gamma1=1), "RMSProp: gamma1 must"),
    (lambda: RMSProp(gamma2=1.5), "RMSProp: gamma2 must"),
    (lambda: RMSProp(clip_weights=-1), "RMSProp: clip_weights must"),
    (lambda: AdaDelta(rho=1), "AdaDelta: rho must"),
    (lambda: AdaDelta(epsilon=-1), "AdaDelta: epsilon must"),
    (lambda: Ftrl(lamda1=-1), "Ftrl: lamda1 must"),
    (lambda: Ftrl(beta=-1), "Ftrl: beta must"),
    (lambda: DCASGD(lamda=-1), "DCASGD: lamda must"),
    (lambda: Signum(wd_lh=-1), "Signum: wd_lh must"),
    (lambda: create("sgdd"), "unknown optimizer 'sgdd'.*adam"),
    (lambda: Trainer([], "sgd", clip_global_norm=0), "Trainer: clip_global_norm must"),
    (lambda: clip_global_norm([], -1.0), "max_norm must"),
    (lambda: S.FactorScheduler(step=0), "FactorScheduler: step must"),
    (lambda: S.FactorScheduler(step=2, factor=1.5), "FactorScheduler: factor must"),
    (lambda: S.MultiFactorScheduler(step=[5, 3]), "step must be increasing"),
    (lambda: S.PolyScheduler(max_update=0), "PolyScheduler: max_update must"),
    (lambda: S.CosineScheduler(max_update=5, warmup_steps=5), "CosineScheduler: max_update must"),
    (lambda: S.ExponentialScheduler(gamma=0), "ExponentialScheduler: gamma must"),
    (lambda: S.EpochDecay(factor=0), "EpochDecay: factor must"),
    (lambda: S.InverseSqrtScheduler(beta=0), "InverseSqrtScheduler: beta must"),
    (lambda: S.Constant(warmup_steps=1.5), "Constant: warmup_steps must"),
    (lambda: S.ReduceOnPlateau(mode="avg"), "ReduceOnPlateau: mode must"),
    (lambda: S.ReduceOnPlateau(factor=1.0), "ReduceOnPlateau: factor must"),
    (lambda: S.ReduceOnPlateau(patience=-1), "ReduceOnPlateau: patience must"),
])
def test_bad_hyperparameters_are_rejected_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_training_reduces_loss_on_a_separable_problem():
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    net = gluon.nn.Dense(2)
    net.initialize()
    trainer = Trainer(net.collect_params(), Adam(lr=0.1))
    loss_fn = SoftmaxCrossEntropyLoss()
    for _ in range(50):
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y))
        loss.backward()
        trainer.step(64)
    acc = (net(nd.array(x)).argmax(axis=1).asnumpy() == y).mean()
    assert acc > 0.95
