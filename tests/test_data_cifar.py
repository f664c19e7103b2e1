"""CIFAR-10 (binary version), safe archive extraction, augmentation and the DataLoader hook."""
import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dlrun.data import (ArrayDataset, ChecksumError, CorruptFileError, DataLoader,
                        DatasetNotFoundError, RemoteFile, Splits)
from dlrun.data import cifar as cifarmod
from dlrun.data.archive import extract_zip_members, safe_extract
from dlrun.data.cifar import cifar10, load_cifar10, read_cifar_batch
from dlrun.data.transforms import Compose, RandomCrop, RandomFlip, crop_flip

OFFLINE = "http://127.0.0.1:9/"
NAMES = cifarmod.CIFAR10_TRAIN + cifarmod.CIFAR10_TEST


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def records(labels, seed) -> tuple[bytes, np.ndarray]:
    """Binary CIFAR records for ``labels`` and their pixels (N x 3 x 32 x 32 uint8)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (len(labels), 3, 32, 32), np.uint8)
    raw = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, pixels))
    return raw, pixels


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def cifar_tar(tmp_path):
    """A cifar-10-binary.tar.gz with 2 records per batch file, its RemoteFile and contents."""
    folder = tmp_path / "cifar10"
    folder.mkdir()
    path = folder / "cifar-10-binary.tar.gz"
    contents = {}
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n")
        for i, name in enumerate(NAMES):
            raw, pixels = records([i, 9 - i], seed=i)
            contents[name] = (raw, pixels, [i, 9 - i])
            add_file(tar, f"cifar-10-batches-bin/{name}", raw)
    remote = RemoteFile(path.name, sha256(path.read_bytes()), (OFFLINE + path.name,))
    return folder, remote, contents


def test_cifar10_reads_binary_batches(cifar_tar):
    folder, remote, contents = cifar_tar
    splits = load_cifar10(folder, remote, records_per_file=2)
    assert isinstance(splits, Splits) and splits.task == "classify"
    assert splits.num_classes == 10 and splits.input_shape == (3, 32, 32)
    assert splits.train.data.shape == (10, 3, 32, 32) and splits.train.data.dtype == np.float32
    assert splits.test.data.shape == (2, 3, 32, 32) and splits.test.label.dtype == np.int32
    np.testing.assert_array_equal(splits.train.label, [0, 9, 1, 8, 2, 7, 3, 6, 4, 5])
    np.testing.assert_array_equal(splits.test.label, [5, 4])
    pixels = np.concatenate([contents[n][1] for n in cifarmod.CIFAR10_TRAIN])
    mean = np.array(cifarmod.CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = np.array(cifarmod.CIFAR10_STD).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(splits.train.data, (pixels / 255 - mean) / std, rtol=1e-5,
                               atol=1e-5)
    batches = folder / "cifar-10-batches-bin"
    assert sorted(p.name for p in batches.iterdir()) == sorted(NAMES)  # only what is read
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-bin",
                                                        "cifar-10-binary.tar.gz"]
    (folder / remote.filename).unlink()  # the extracted batches are enough from now on
    again = load_cifar10(folder, remote, records_per_file=2)
    np.testing.assert_array_equal(again.test.data, splits.test.data)


def test_cifar10_truncated_record_names_the_file(cifar_tar):
    folder, remote, _ = cifar_tar
    load_cifar10(folder, remote, records_per_file=2)
    path = folder / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CorruptFileError, match="6141 bytes is not a whole number of "
                                               "3073-byte records") as e:
        load_cifar10(folder, remote, records_per_file=2)
    assert str(path) in str(e.value)


def test_cifar10_record_count_and_label_checks(cifar_tar, tmp_path):
    folder, remote, _ = cifar_tar
    with pytest.raises(CorruptFileError, match="data_batch_1.bin: 2 records, expected 10000"):
        load_cifar10(folder, remote)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(records([3, 10], seed=0)[0])
    with pytest.raises(CorruptFileError, match="label 10 in record 1 is not a class index"):
        read_cifar_batch(bad)
    bad.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="0 bytes is not a whole number"):
        read_cifar_batch(bad)


def test_cifar10_rejects_wrong_archive(cifar_tar):
    folder, remote, _ = cifar_tar
    with pytest.raises(ChecksumError, match="cifar-10-binary.tar.gz has SHA-256"):
        load_cifar10(folder, RemoteFile(remote.filename, "3" * 64, remote.urls), 2)


def test_cifar10_offline_names_archive_and_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(cifarmod, "CIFAR10_FILE", RemoteFile(
        "cifar-10-binary.tar.gz", cifarmod.CIFAR10_FILE.sha256, (OFFLINE,)))
    with pytest.raises(DatasetNotFoundError) as e:
        cifar10(root=tmp_path)
    message = str(e.value)
    assert "cifar-10-binary.tar.gz" in message and str(tmp_path / "cifar10") in message
    assert "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd" in message


def test_cifar10_archive_lacking_a_batch(tmp_path):
    path = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "cifar-10-batches-bin/data_batch_1.bin", records([1], 0)[0])
    remote = RemoteFile(path.name, sha256(path.read_bytes()), ())
    with pytest.raises(CorruptFileError, match="lacks cifar-10-batches-bin/data_batch_2.bin"):
        load_cifar10(tmp_path, remote, 1)


# ---- safe extraction ----

def make_tar(path: Path, build) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "ok/file.txt", b"fine")
        build(tar)
    return path


def link(tar, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


@pytest.mark.parametrize("build, member, why", [
    (lambda t: add_file(t, "../x", b"evil"), "../x", "a '..' component"),
    (lambda t: add_file(t, "ok/../../x", b"evil"), "ok/../../x", "a '..' component"),
    (lambda t: add_file(t, "/tmp/abs-x", b"evil"), "/tmp/abs-x", "an absolute path"),
    (lambda t: link(t, "ok/link", "../../outside"), "ok/link", "outside the destination"),
    (lambda t: link(t, "ok/link", "/etc/passwd"), "ok/link", "absolute path"),
    (lambda t: link(t, "hard", "../outside", tarfile.LNKTYPE), "hard", "outside the destination"),
    (lambda t: link(t, "fifo", "", tarfile.FIFOTYPE), "fifo", "special file"),
    (lambda t: (link(t, "ok/up", ".."), link(t, "ok/up/esc", "..")), "ok/up/esc",
     "a path through the link 'ok/up'"),
])
def test_safe_extract_refuses_unsafe_members(tmp_path, build, member, why):
    archive = make_tar(tmp_path / "a.tar.gz", build)
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(CorruptFileError) as e:
        safe_extract(archive, dest)
    message = str(e.value)
    assert str(archive) in message and repr(member) in message and why in message
    assert not dest.exists() and not (tmp_path / "x").exists()  # nothing was written


def test_safe_extract_keeps_safe_links_and_subsets(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", lambda t: link(t, "ok/alias", "file.txt"))
    files = safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "ok" / "file.txt").read_bytes() == b"fine"
    assert (tmp_path / "out" / "ok" / "alias").read_bytes() == b"fine"
    assert sorted(p.name for p in files) == ["alias", "file.txt"]
    only = safe_extract(archive, tmp_path / "sub", members=["ok/file.txt"])
    assert only == [tmp_path / "sub" / "ok" / "file.txt"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["ok"]  # no temp folder left


def test_safe_extract_reports_damaged_archive(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", lambda t: add_file(t, "big", os.urandom(50000)))
    archive.write_bytes(archive.read_bytes()[:-2000])
    with pytest.raises(CorruptFileError, match="damaged or truncated archive") as e:
        safe_extract(archive, tmp_path / "out")
    assert str(archive) in str(e.value)


def test_extract_zip_members_writes_only_named_members(tmp_path):
    import zipfile
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("trees/a.txt", "alpha")
        zf.writestr("../evil", "no")
    out = extract_zip_members(archive, {"trees/a.txt": tmp_path / "out" / "a.txt"})
    assert out == [tmp_path / "out" / "a.txt"] and out[0].read_text() == "alpha"
    assert not (tmp_path.parent / "evil").exists()
    with pytest.raises(CorruptFileError, match="lacks trees/b.txt"):
        extract_zip_members(archive, {"trees/b.txt": tmp_path / "b.txt"})
    archive.write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match="damaged or truncated zip"):
        extract_zip_members(archive, {"trees/a.txt": tmp_path / "a.txt"})


# ---- transforms ----

def images(n=6, c=3, h=5, w=7):
    return np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32)


def test_random_crop_matches_a_loop_over_the_same_offsets():
    x, p = images(), 2
    out = RandomCrop(p)(x, np.random.default_rng(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    rng = np.random.default_rng(5)
    dy, dx = rng.integers(0, 2 * p + 1, len(x)), rng.integers(0, 2 * p + 1, len(x))
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], padded[i, :, dy[i]:dy[i] + 5, dx[i]:dx[i] + 7])
    assert len({(a, b) for a, b in zip(dy, dx)}) > 1  # offsets differ between images


def test_random_crop_on_single_channel_batches_and_padding_zero():
    x = images()[:, 0]  # N x H x W
    out = RandomCrop(1)(x, np.random.default_rng(0))
    assert out.shape == x.shape
    np.testing.assert_array_equal(RandomCrop(0)(x, np.random.default_rng(0)), x)
    with pytest.raises(ValueError, match="non-negative integer"):
        RandomCrop(-1)


def test_random_flip():
    x = images()
    np.testing.assert_array_equal(RandomFlip(1.0)(x, np.random.default_rng(0)), x[..., ::-1])
    np.testing.assert_array_equal(RandomFlip(0.0)(x, np.random.default_rng(0)), x)
    out = RandomFlip()(x, np.random.default_rng(3))
    flipped = np.random.default_rng(3).random(len(x)) < 0.5
    np.testing.assert_array_equal(out[flipped], x[flipped][..., ::-1])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])


def test_transforms_are_deterministic_per_seed_and_leave_input_alone():
    x = images(n=32)
    before = x.copy()
    t = crop_flip(padding=2)
    assert isinstance(t, Compose) and len(t.transforms) == 2
    a, b = t(x, np.random.default_rng(1)), t(x, np.random.default_rng(1))
    c = t(x, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.array_equal(a, c)
    np.testing.assert_array_equal(x, before)


def test_loader_applies_transform_to_data_only_reproducibly():
    data = np.arange(8 * 1 * 4 * 4, dtype=np.float32).reshape(8, 1, 4, 4)
    dataset = ArrayDataset(data, np.arange(8, dtype=np.int32))

    def run(seed, epochs=2):
        loader = DataLoader(dataset, batch_size=3, shuffle=True, seed=seed,
                            transform=RandomFlip(0.5))
        return [[(x.asnumpy(), y.asnumpy()) for x, y in loader] for _ in range(epochs)]

    first, again = run(4), run(4)
    for epoch_a, epoch_b in zip(first, again):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    flips = []
    for epoch in first:
        for x, y in epoch:
            for image, label in zip(x, y):  # each image is its own or mirrored, label kept
                original = data[label]
                mirrored = np.array_equal(image, original[..., ::-1])
                assert mirrored or np.array_equal(image, original)
                flips.append(mirrored)
    assert any(flips) and not all(flips)
    plain = DataLoader(dataset, batch_size=8)
    np.testing.assert_array_equal(next(iter(plain))[0].asnumpy(), data)
