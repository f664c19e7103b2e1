"""GANs: the two steps touch only their own network, a toy GAN learns, both families' shapes,
the PNG writer, the sample score, and ``dlrun model=gan_mlp`` end to end."""
from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np
import pytest

from dlrun.data.images import image_grid, png_bytes
from dlrun.engine import array, autograd, cpu
from dlrun.engine import random as engine_random
from dlrun.loss import SigmoidBinaryCrossEntropyLoss
from dlrun.models.gan import DCGAN, GANMLP
from dlrun.nn import init
from dlrun.optim import SGD, Adam, Trainer
from dlrun.runner.tasks.gan import discriminator_step, generator_step
from dlrun.runner.tasks.scorer import class_scores, load_scorer

from .conftest import clean_env

CTX = cpu()


def built(net, n=4):
    """``net`` initialized, its deferred shapes resolved by one forward pass."""
    engine_random.seed(0)
    net.initialize(init.Xavier(), ctx=CTX)
    with autograd.pause():
        net.discriminate(net.generate(net.sample_noise(n, CTX)))
    return net


def trainable(block):
    return {k: p.data().asnumpy().copy() for k, p in block.collect_params().items()
            if p.grad_req != "null"}


def changed(before, block):
    after = trainable(block)
    return {k for k in before if not np.array_equal(before[k], after[k])}


@pytest.mark.parametrize("make, real_shape", [
    (lambda: GANMLP(latent=4, hidden=[16], image_shape=[2], out_activation=None), (8, 2)),
    (lambda: DCGAN(latent=8, base_channels=4), (8, 1, 28, 28)),
])
def test_each_step_changes_only_its_own_network(make, real_shape):
    net = built(make())
    d_trainer = Trainer(net.discriminator.collect_params(), SGD(lr=0.1))
    g_trainer = Trainer(net.generator.collect_params(), SGD(lr=0.1))
    loss = SigmoidBinaryCrossEntropyLoss()
    real = array(np.random.default_rng(0).normal(size=real_shape).astype(np.float32), ctx=CTX)
    z = net.sample_noise(real_shape[0], CTX)

    d_before, g_before = trainable(net.discriminator), trainable(net.generator)
    discriminator_step(net, real, z, d_trainer, loss)
    assert changed(d_before, net.discriminator) == set(d_before)  # every D weight moved
    assert changed(g_before, net.generator) == set()              # no G weight did

    d_before, g_before = trainable(net.discriminator), trainable(net.generator)
    generator_step(net, z, g_trainer, loss)
    assert changed(g_before, net.generator) == set(g_before)
    assert changed(d_before, net.discriminator) == set()


def toy_gan():
    net = built(GANMLP(latent=2, hidden=[32, 32], image_shape=[2], out_activation=None), n=64)
    return (net, Trainer(net.discriminator.collect_params(), Adam(lr=2e-3, beta1=0.5)),
            Trainer(net.generator.collect_params(), Adam(lr=2e-3, beta1=0.5)),
            SigmoidBinaryCrossEntropyLoss())


TARGET_MEAN = np.array([2.0, -1.0], dtype=np.float32)


def blob(rng, n=64):
    """A batch of the target: a Gaussian blob around TARGET_MEAN."""
    return array(rng.normal(TARGET_MEAN, 0.3, size=(n, 2)).astype(np.float32), ctx=CTX)


def test_discriminator_steps_tell_real_from_fake_on_a_toy_blob():
    net, d_trainer, _, loss = toy_gan()
    rng = np.random.default_rng(1)
    for _ in range(50):
        discriminator_step(net, blob(rng), net.sample_noise(64, CTX), d_trainer, loss)
    real, fake = blob(rng, 256), net.generate(net.sample_noise(256, CTX))
    with autograd.pause():
        p_real = 1 / (1 + np.exp(-net.discriminate(real).asnumpy()))
        p_fake = 1 / (1 + np.exp(-net.discriminate(fake).asnumpy()))
        loss_real = float(loss(net.discriminate(real), array(np.ones(256), ctx=CTX)).mean().asscalar())
        loss_fake_as_real = float(loss(net.discriminate(fake), array(np.ones(256), ctx=CTX)).mean().asscalar())
    assert p_real.mean() > 0.9 and p_fake.mean() < 0.25, (p_real.mean(), p_fake.mean())
    assert loss_real < 0.1 < 1.0 < loss_fake_as_real  # -log D(x) small, -log D(G(z)) large


def test_the_toy_gan_moves_its_samples_onto_the_blob():
    net, d_trainer, g_trainer, loss = toy_gan()
    rng = np.random.default_rng(2)
    probe = net.sample_noise(512, CTX)

    def gap():
        with autograd.pause():
            return float(np.linalg.norm(net.generate(probe).asnumpy().mean(axis=0) - TARGET_MEAN))

    start = gap()
    for _ in range(300):
        z = net.sample_noise(64, CTX)
        discriminator_step(net, blob(rng), z, d_trainer, loss)
        generator_step(net, z, g_trainer, loss)
    end = gap()
    assert start > 1.5 and end < 0.4 and end < start / 5, (start, end)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 32, 32), (3, 32, 32)])
@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_both_families_make_and_judge_images_of_the_data_shape(family, shape):
    net = (GANMLP(latent=10, hidden=[16], image_shape=list(shape)) if family == "mlp" else
           DCGAN(latent=10, base_channels=4, image_shape=list(shape)))
    net = built(net)
    assert net.task == "gan"
    with autograd.pause():
        z = net.sample_noise(5, CTX)
        x = net.generate(z)
        logits = net.discriminate(x)
    assert x.shape == (5, *shape) and logits.shape == (5,)
    values = x.asnumpy()
    assert np.abs(values).max() <= 1.0 and values.std() > 0  # tanh images, not constant
    if family == "dcgan":
        assert z.shape == (5, 10, 1, 1)


def test_defaults_and_bad_sizes():
    assert GANMLP().image_shape == (1, 28, 28) and DCGAN().image_shape == (1, 28, 28)
    with pytest.raises(ValueError, match="side 30"):
        DCGAN(image_shape=[1, 30, 30])
    with pytest.raises(ValueError, match="square"):
        DCGAN(image_shape=[1, 28, 32])


# --- PNG and the score -------------------------------------------------------------------------
def read_png(data: bytes):
    """(width, height, colour type, pixel bytes) of a PNG, checking signature and CRCs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    w, h, depth, colour, compression, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filt, interlace) == (8, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return w, h, colour, raw


@pytest.mark.parametrize("shape, colour", [((5, 7), 0), ((4, 6, 3), 2)])
def test_png_writer_stores_the_pixels(shape, colour):
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    w, h, got_colour, raw = read_png(png_bytes(pixels))
    assert (w, h, got_colour) == (shape[1], shape[0], colour)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, -1)
    assert (rows[:, 0] == 0).all()  # filter type 0 on every row
    assert rows[:, 1:].tobytes() == pixels.tobytes()


def test_image_grid_tiles_images_in_8_columns():
    images = np.full((10, 1, 3, 4), -1.0, dtype=np.float32)
    images[1] = 1.0
    grid = image_grid(images, columns=8, pad=2)
    assert grid.shape == (2 + 2 * 5, 2 + 8 * 6) and grid.dtype == np.uint8
    assert (grid[2:5, 8:12] == 255).all() and (grid[2:5, 2:6] == 0).all()
    assert image_grid(np.zeros((2, 3, 4, 4))).shape == (2 + 6, 2 + 8 * 6, 3)


def test_class_scores_reward_confident_and_varied_samples():
    even = np.eye(10)[np.arange(1000) % 10]
    conf, entropy = class_scores(even)
    assert conf == pytest.approx(1.0) and entropy == pytest.approx(math.log(10))
    collapsed = np.eye(10)[np.zeros(1000, dtype=int)]
    assert class_scores(collapsed) == pytest.approx((1.0, 0.0))
    unsure = np.full((1000, 10), 0.1)
    assert class_scores(unsure) == pytest.approx((0.1, math.log(10)))


def test_a_classification_runs_model_npz_is_loaded_as_the_scorer(tmp_path):
    from dlrun.models.mlp import MLP

    class Data:
        num_classes = 10
        model_args = {"classes": 10}

    net = MLP(hidden=[12], classes=10)
    net.initialize(init.Xavier(), ctx=CTX)
    x = array(np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype(np.float32), ctx=CTX)
    expected = net(x).asnumpy()
    net.save_parameters(str(tmp_path / "model.npz"))
    (tmp_path / "config.yaml").write_text(
        "model:\n  _target_: dlrun.models.mlp.MLP\n  hidden: [12]\n  activation: relu\n"
        "  dropout: 0.5\n  classes: null\n")
    scorer = load_scorer(tmp_path, Data, CTX)  # the run folder, or its model.npz
    np.testing.assert_allclose(scorer(x).asnumpy(), expected, rtol=1e-6)
    with pytest.raises(Exception, match="no such parameter file"):
        load_scorer(tmp_path / "missing.npz", Data, CTX)


# --- the command ------------------------------------------------------------------------------
def test_dlrun_model_gan_mlp_trains_scores_and_writes_the_sample_grid(run_dlrun, tmp_path,
                                                                     monkeypatch):
    from mlflow.tracking import MlflowClient

    from dlrun.runner.predict import predict

    res = run_dlrun("model=gan_mlp", "model.hidden=[32]", "task.scorer_steps=10",
                    "trainer.epochs=1", "trainer.batch_size=64", "optimizer=adam",
                    "optimizer.lr=0.0002", "optimizer.beta1=0.5", "experiment=gan",
                    env=clean_env(HOME=str(tmp_path / "home")))  # the scorer cache lands there
    assert res.returncode == 0, res
    assert "D loss" in res.stdout and "class entropy" in res.stdout, res
    (run_dir,) = res.run_dirs()
    png = run_dir / "samples" / "epoch_001.png"
    w, h, colour, raw = read_png(png.read_bytes())
    assert (w, h, colour) == (2 + 8 * 30, 2 + 8 * 30, 0)  # 64 digits of 28x28, 2-pixel gaps
    assert len(raw) == h * (w + 1)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epoch"] == 1 and results["steps"] == 1150 // 64
    for key in ("train/d_loss", "train/g_loss"):
        assert 0 < results[key] < 10, key
    assert 0 < results["train/d_fake"] < results["train/d_real"] < 1  # D tells them apart
    assert 0.1 <= results["test/confidence"] <= 1
    assert 0 <= results["test/class_entropy"] <= math.log(10) + 1e-9
    assert 0.1 <= results["scorer/test_accuracy"] <= 1  # 10 steps: barely trained
    assert "scorer test accuracy" in res.stdout and "sample quality" in res.stdout
    assert results["test/quality"] == pytest.approx(
        results["test/confidence"] * results["test/class_entropy"] / math.log(10))
    assert list((tmp_path / "home" / ".cache" / "dlrun" / "scorers").glob("lenet-*.npz"))
    assert (run_dir / "scorer.npz").exists() and (run_dir / "model.npz").exists()
    with np.load(run_dir / "model.npz") as params:  # generator and discriminator together
        assert {k.split(".")[0] for k in params.files} == {"generator", "discriminator"}
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the scorer cache the run filled
    tested = predict([str(run_dir)])  # dlrun test RUN: the test noise again, the same figures
    assert "test/quality" in tested and tested == {k: results[k] for k in tested}

    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("gan").experiment_id])
    assert run.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == [
        "samples/epoch_001.png"]
    assert {"train/d_loss", "val/confidence", "val/class_entropy", "test/quality"} <= set(run.data.metrics)


def test_training_the_scorer_leaves_every_random_stream_as_it_was():
    """A GAN run must not depend on whether its default scorer came from the cache."""
    from dlrun.data import digits
    from dlrun.runner.checkpoint import rng_state
    from dlrun.runner.tasks.scorer import train_scorer

    data = digits()
    engine_random.seed(5)
    engine_random.uniform(shape=(3,))
    before = rng_state()
    net, accuracy = train_scorer(data, cpu(), steps=3, seed=0)
    assert rng_state() == before and 0.0 <= accuracy <= 1.0
