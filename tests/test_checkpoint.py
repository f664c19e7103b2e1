"""Checkpoint files: atomic writes, verification before loading, pruning, RNG states."""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from dlrun.runner.checkpoint import (Checkpoint, CheckpointError, CheckpointStore, load_checkpoint,
                                     rng_state, set_rng_state)


def make(step: int, value: float = 1.0) -> Checkpoint:
    return Checkpoint(step=step, epoch=2, batch=7,
                      arrays={"param/dense.weight": np.full((3, 4), value, np.float32),
                              "optim/0.0": np.arange(5.0)},
                      state={"schedule": {"lr": 0.5}, "best": [1, 2]}, config_hash="abc")


def test_round_trip_and_keeps_the_newest(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for step in (10, 20, 30):
        store.save(make(step, value=step))
    assert [p.name for p in store.manifests()] == ["ckpt-00000020.json", "ckpt-00000030.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-00000020.json", "ckpt-00000020.npz", "ckpt-00000030.json", "ckpt-00000030.npz"]
    ckpt = load_checkpoint(tmp_path)  # a folder: its newest checkpoint
    assert (ckpt.step, ckpt.epoch, ckpt.batch, ckpt.config_hash) == (30, 2, 7, "abc")
    np.testing.assert_array_equal(ckpt.arrays["param/dense.weight"], np.full((3, 4), 30, np.float32))
    np.testing.assert_array_equal(ckpt.arrays["optim/0.0"], np.arange(5.0))
    assert ckpt.state == {"schedule": {"lr": 0.5}, "best": [1, 2]}
    assert load_checkpoint(tmp_path / "ckpt-00000020.json").step == 20


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_array_file_is_refused_by_name(tmp_path, damage):
    manifest = CheckpointStore(tmp_path).save(make(5))
    npz = tmp_path / "ckpt-00000005.npz"
    raw = bytearray(npz.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    npz.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"ckpt-00000005\.npz does not match the SHA-256"):
        load_checkpoint(manifest)


def test_a_pickle_bearing_npz_is_never_unpickled(tmp_path):
    manifest = CheckpointStore(tmp_path).save(make(5))
    npz = tmp_path / "ckpt-00000005.npz"
    np.savez(npz, evil=np.array([{"a": 1}], dtype=object))  # needs pickle to load
    spec = json.loads(manifest.read_text())
    import hashlib
    spec["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()  # a consistent but hostile pair
    manifest.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*pickle"):
        load_checkpoint(manifest)


def test_the_manifest_cannot_point_outside_its_folder(tmp_path):
    inner = tmp_path / "run"
    manifest = CheckpointStore(inner).save(make(5))
    (tmp_path / "secret.npz").write_bytes(b"x")
    spec = json.loads(manifest.read_text())
    spec["arrays"] = "../secret.npz"
    manifest.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="array file secret.npz is missing"):
        load_checkpoint(manifest)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "ckpt-00000001.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not a dlrun checkpoint"):
        load_checkpoint(tmp_path / "ckpt-00000001.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path / "empty")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_failing_write_keeps_the_last_good_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path, keep=1)
    good = store.save(make(1))
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="ckpt-00000001.json is intact"):
            store.save(make(2))
    finally:
        tmp_path.chmod(0o700)
    assert store.manifests() == [good] and load_checkpoint(good).step == 1


def test_a_failing_write_keeps_the_last_good_checkpoint_even_as_root(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path, keep=1)
    good = store.save(make(1))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device; the previous checkpoint"):
        store.save(make(2))
    assert store.manifests() == [good] and load_checkpoint(good).step == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no debris


def test_random_states_round_trip():
    from dlrun import nd
    from dlrun.engine import random as engine_random

    engine_random.seed(3)
    nd.random.uniform(shape=(2,))  # the engine's generator exists and has moved
    random.random(), np.random.rand()
    saved = json.loads(json.dumps(rng_state()))  # it is plain JSON
    expected = (random.random(), np.random.rand(3), nd.random.uniform(shape=(4,)).asnumpy())
    random.random(), np.random.rand(), nd.random.uniform(shape=(9,))  # move every stream on
    set_rng_state(saved)
    again = (random.random(), np.random.rand(3), nd.random.uniform(shape=(4,)).asnumpy())
    assert expected[0] == again[0]
    np.testing.assert_array_equal(expected[1], again[1])
    np.testing.assert_array_equal(expected[2], again[2])
