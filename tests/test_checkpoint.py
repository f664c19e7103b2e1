"""Checkpoint files: atomic writes, verification before loading, pruning, RNG states."""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from dlrun.runner.checkpoint import (Checkpoint, CheckpointError, CheckpointStore, kept_checkpoints,
                                     load_checkpoint, rng_state, set_rng_state)


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


def test_keep_zero_keeps_the_newest_until_the_run_finished(tmp_path):
    store = CheckpointStore(tmp_path, keep=0)
    for step in (10, 20):
        store.save(make(step))
    assert [p.name for p in store.manifests()] == ["ckpt-00000020.json"]  # a crash can resume
    store.finished()
    assert list(tmp_path.iterdir()) == []
    CheckpointStore(tmp_path, keep=2).finished()  # the default keeps them
    assert (kept_checkpoints(None, False), kept_checkpoints(None, True), kept_checkpoints(3, True)) == (2, 0, 3)


def test_the_best_validations_weights_are_stored_once_when_they_are_the_weights(tmp_path):
    """Issue 19, item 5: a callback's copy of the parameters (the best validation's) that
    equals them bit for bit is not written twice; loading gives it back."""
    from dlrun import nn
    from dlrun.runner.checkpoint import RunCheckpoints

    net = nn.Dense(3, in_units=4)
    net.initialize()
    store = CheckpointStore(tmp_path)
    ckpts = RunCheckpoints(store, 0, net, "abc", lambda: None)
    weight = net.weight.data().asnumpy()
    best = {"cb/best/param/weight": weight.copy(), "cb/best/param/bias": np.ones(3, np.float32)}
    manifest = ckpts.save(1, 0, 5, {"loop": {}}, arrays=best)
    with np.load(tmp_path / "ckpt-00000005.npz") as stored:  # the bias differs: kept
        assert sorted(stored.files) == ["cb/best/param/bias", "param/bias", "param/weight"]
    assert json.loads(manifest.read_text())["state"]["same_as"] == {
        "cb/best/param/weight": "param/weight"}
    loaded = load_checkpoint(manifest)
    for name, value in best.items():
        np.testing.assert_array_equal(loaded.arrays[name], value, err_msg=name)


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


def test_a_corrupt_newest_checkpoint_names_the_one_before_it(tmp_path):
    store = CheckpointStore(tmp_path, keep=3)
    first, _ = store.save(make(5)), store.save(make(9))
    npz = tmp_path / "ckpt-00000009.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(tmp_path)
    assert str(refused.value).endswith(f"resume from the one before it: dlrun resume={first}")
    (tmp_path / "ckpt-00000005.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no earlier checkpoint is left"):
        load_checkpoint(first)


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


# --- the manifest is signed, and its name, step and npz agree (issue 17, item 4) ---------------
def _edit(manifest, **changes):
    spec = json.loads(manifest.read_text())
    spec.update(changes)
    manifest.write_text(json.dumps(spec, indent=1))
    return spec


@pytest.mark.parametrize("field, value", [
    ("step", 46), ("epoch", 9), ("batch", 0), ("config_hash", "another"),
    ("state", {"schedule": {"lr": 0.5}, "best": [1, 2], "mlflow_run_id": "0123456789abcdef"}),
], ids=["step", "epoch", "batch", "config_hash", "mlflow_run_id"])
def test_an_edited_manifest_is_refused_by_name(tmp_path, field, value):
    manifest = CheckpointStore(tmp_path).save(make(42))
    _edit(manifest, **{field: value})
    with pytest.raises(CheckpointError, match=r"ckpt-00000042\.json was changed after it was written"):
        load_checkpoint(manifest)


def test_a_manifest_pointed_at_another_checkpoints_arrays_is_refused(tmp_path):
    import hashlib
    from dlrun.runner.checkpoint import manifest_signature

    store = CheckpointStore(tmp_path, keep=5)
    store.save(make(42, value=42.0))
    manifest = store.save(make(46, value=46.0))
    older = tmp_path / "ckpt-00000042.npz"
    sha = hashlib.sha256(older.read_bytes()).hexdigest()
    # arrays and their hash edited together: step 42's weights labelled step 46
    _edit(manifest, arrays=older.name, sha256=sha)
    with pytest.raises(CheckpointError, match=r"ckpt-00000046\.json was changed after it was written"):
        load_checkpoint(manifest)
    # the same edit signed again (a careful forger): the name and the step still disagree
    spec = _edit(manifest)
    spec["signature"] = manifest_signature(spec)
    manifest.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"ckpt-00000046\.json \(step 46\) names the array "
                                              r"file ckpt-00000042\.npz, not its own ckpt-00000046\.npz"):
        load_checkpoint(manifest)


def test_a_manifest_renamed_to_another_step_is_refused(tmp_path):
    store = CheckpointStore(tmp_path, keep=5)
    store.save(make(42))
    store.save(make(46))
    (tmp_path / "ckpt-00000042.json").replace(tmp_path / "ckpt-00000046.json")
    with pytest.raises(CheckpointError, match=r"ckpt-00000046\.json holds the checkpoint of step 42"):
        load_checkpoint(tmp_path)  # the newest by name


def test_an_unsigned_manifest_is_refused(tmp_path):
    manifest = CheckpointStore(tmp_path).save(make(5))
    spec = json.loads(manifest.read_text())
    del spec["signature"]
    manifest.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"ckpt-00000005\.json was changed after it was written"):
        load_checkpoint(manifest)
    spec["version"] = 1  # what dlrun wrote before manifests were signed
    manifest.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"earlier dlrun \(checkpoint version 1, unsigned\)"):
        load_checkpoint(manifest)


def test_the_signature_survives_what_json_round_trips(tmp_path):
    ckpt = make(7)
    ckpt.state = {"nan": float("nan"), "big": 2**62, "tiny": 1e-300, "text": "naïve ✓",
                  "nested": {"b": [1.5, None, True], "a": -0.0}}
    manifest = CheckpointStore(tmp_path).save(ckpt)
    again = load_checkpoint(manifest)
    assert again.state["big"] == 2**62 and again.state["text"] == "naïve ✓"
