"""The data layer: IDX reader, checksummed fetch, dataset builders and the DataLoader."""
import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from dlrun.data import (ArrayDataset, ChecksumError, CorruptFileError, DataLoader,
                        DatasetNotFoundError, IdxFiles, RemoteFile, default_root, digits,
                        fashion_mnist, fetch, fetch_all, load_idx_dataset, mnist, read_idx)
from dlrun.data import vision
from dlrun.engine import NDArray

OFFLINE = "http://127.0.0.1:9/"  # the discard port: refused at once, nothing leaves the machine
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_DATA = Path(os.environ.get("DLRUN_DATA") or SHARED_DATA)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Writes a uint8 array in the IDX format, gzip-compressed when the name ends in .gz."""
    raw = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# ---- IDX ----

@pytest.mark.parametrize("name", ["images.idx3", "images.idx3.gz"])
def test_read_idx_roundtrip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / name, images), ndim=3)
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_read_idx_labels(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels), ndim=1), labels)


@pytest.mark.parametrize("name", ["images.idx3", "images.idx3.gz"])
def test_read_idx_rejects_truncated_payload(tmp_path, name):
    path = write_idx(tmp_path / name, np.zeros((3, 28, 28), np.uint8))
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    raw = raw[:1000]
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(CorruptFileError, match=r"expected 2352 bytes of data, found 984") as e:
        read_idx(path, ndim=3)
    assert str(path) in str(e.value)


def test_read_idx_rejects_extra_bytes(tmp_path):
    path = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CorruptFileError, match="expected 4 bytes of data, found 5"):
        read_idx(path, ndim=1)


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(4, np.uint8))
    match = "magic number 0x00000801, expected 0x00000803"
    with pytest.raises(CorruptFileError, match=match) as e:
        read_idx(path, ndim=3)
    assert str(path) in str(e.value)


def test_read_idx_rejects_truncated_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(struct.pack(">I", 0x0803) + b"\0\0")
    with pytest.raises(CorruptFileError, match="truncated header"):
        read_idx(path, ndim=3)


def test_read_idx_rejects_damaged_gzip(tmp_path):
    path = write_idx(tmp_path / "images.gz", np.ones((20, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(CorruptFileError, match="damaged gzip data") as e:
        read_idx(path, ndim=3)
    assert str(path) in str(e.value)


# ---- fetch ----

@pytest.fixture
def remote(tmp_path):
    """A file served by a file:// URL, with its SHA-256."""
    source = tmp_path / "remote" / "blob.bin"
    source.parent.mkdir()
    content = os.urandom(3000)
    source.write_bytes(content)
    return source.as_uri(), sha256(content), content


def test_fetch_downloads_and_verifies(tmp_path, remote):
    url, digest, content = remote
    root = tmp_path / "data" / "set"
    path = fetch(root, "blob.bin", [url], digest)
    assert path == root / "blob.bin" and path.read_bytes() == content
    assert os.listdir(root) == ["blob.bin"]  # no temp file left behind


def test_fetch_uses_local_file_without_network(tmp_path, remote):
    url, digest, content = remote
    fetch(tmp_path, "blob.bin", [url], digest)
    assert fetch(tmp_path, "blob.bin", [OFFLINE + "blob.bin"], digest).read_bytes() == content


def test_fetch_falls_back_to_next_mirror(tmp_path, remote):
    url, digest, content = remote
    assert fetch(tmp_path, "blob.bin", [OFFLINE + "blob.bin", url], digest).read_bytes() == content


def test_fetch_rejects_wrong_checksum_without_partial_file(tmp_path, remote):
    url, _, content = remote
    wrong = "0" * 64
    root = tmp_path / "data"
    match = rf"SHA-256 {sha256(content)}, expected {wrong}"
    with pytest.raises(DatasetNotFoundError, match=match):
        fetch(root, "blob.bin", [url], wrong)
    assert os.listdir(root) == []


def test_fetch_rejects_damaged_local_file(tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"not it")
    expected = "1" * 64
    with pytest.raises(ChecksumError) as e:
        fetch(tmp_path, "blob.bin", [OFFLINE], expected)
    message = str(e.value)
    assert str(tmp_path / "blob.bin") in message and expected in message
    assert sha256(b"not it") in message and "Delete it" in message


def test_fetch_offline_names_file_checksum_urls_and_folder(tmp_path):
    digest = "2" * 64
    with pytest.raises(DatasetNotFoundError) as e:
        fetch(tmp_path / "set", "blob.bin", [OFFLINE + "blob.bin"], digest)
    assert isinstance(e.value, FileNotFoundError)
    message = str(e.value)
    for expected in ["blob.bin", digest, OFFLINE + "blob.bin", str(tmp_path / "set"),
                     "dataset.root=", "DLRUN_DATA"]:
        assert expected in message


def test_fetch_all_reports_every_missing_file_at_once(tmp_path, remote):
    url, digest, _ = remote
    files = [RemoteFile("a.bin", "a" * 64, (OFFLINE + "a.bin",)),
             RemoteFile("blob.bin", digest, (url,)),
             RemoteFile("c.bin", "c" * 64, (OFFLINE + "c.bin",))]
    with pytest.raises(DatasetNotFoundError) as e:
        fetch_all(tmp_path, files)
    message = str(e.value)
    assert "a.bin" in message and "c.bin" in message and "a" * 64 in message
    assert (tmp_path / "blob.bin").exists()  # what could be fetched was kept


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("DLRUN_DATA", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("DLRUN_DATA")
    assert default_root() == Path.home() / ".cache" / "dlrun"


# ---- MNIST-style datasets ----

def fake_idx_files(folder: Path, n_train: int = 12, n_test: int = 5) -> IdxFiles:
    """Small IDX files in the MNIST layout, and a file table with their own checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    paths = [write_idx(folder / name, a) for name, a in zip(vision.IDX_FILENAMES, arrays)]
    return IdxFiles(*(RemoteFile(p.name, sha256(p.read_bytes()), (OFFLINE + p.name,))
                      for p in paths))


def test_load_idx_dataset(tmp_path):
    files = fake_idx_files(tmp_path / "mnist")
    splits = load_idx_dataset(tmp_path / "mnist", files, vision.MNIST_STATS)
    assert (len(splits.train), len(splits.test)) == (12, 5)
    assert splits.train.data.shape == (12, 1, 28, 28) and splits.train.data.dtype == np.float32
    assert splits.test.label.dtype == np.int32 and splits.test.label.max() < 10
    assert splits.num_classes == 10 and splits.input_shape == (1, 28, 28)
    raw = read_idx(tmp_path / "mnist" / files.train_images.filename, ndim=3)
    np.testing.assert_allclose(splits.train.data[:, 0], (raw / 255 - 0.1307) / 0.3081, rtol=1e-5)


def test_load_idx_dataset_rejects_count_mismatch(tmp_path):
    files = fake_idx_files(tmp_path)
    labels = write_idx(tmp_path / files.test_labels.filename, np.zeros(3))
    files = files._replace(test_labels=RemoteFile(labels.name, sha256(labels.read_bytes()), ()))
    with pytest.raises(CorruptFileError, match="holds 5 images but .* holds 3 labels"):
        load_idx_dataset(tmp_path, files, vision.MNIST_STATS)


@pytest.mark.parametrize("builder, mirrors, folder", [
    (mnist, "MNIST_MIRRORS", "mnist"),
    (fashion_mnist, "FASHION_MNIST_MIRRORS", "fashion_mnist")])
def test_builder_offline_lists_all_four_files(tmp_path, monkeypatch, builder, mirrors, folder):
    monkeypatch.setattr(vision, mirrors, [OFFLINE])
    with pytest.raises(DatasetNotFoundError) as e:
        builder(root=tmp_path)
    message = str(e.value)
    assert str(tmp_path / folder) in message
    checksums = vision.MNIST_SHA256 if folder == "mnist" else vision.FASHION_MNIST_SHA256
    for name, digest in checksums.items():
        assert name in message and digest in message


def test_checksums_match_shared_sums():
    sums = SHARED_DATA / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"{sums} not present")
    listed = dict(line.split()[::-1] for line in sums.read_text().splitlines())
    tables = {"mnist": vision.MNIST_SHA256, "fashion_mnist": vision.FASHION_MNIST_SHA256}
    for folder, table in tables.items():
        for name, digest in table.items():
            assert listed[f"{folder}/{name}"] == digest


@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="real MNIST not present")
def test_real_mnist_test_label_counts():
    splits = mnist(root=REAL_DATA)
    assert splits.train.data.shape == (55000, 1, 28, 28)
    assert splits.val.data.shape == (5000, 1, 28, 28)
    assert mnist(root=REAL_DATA, val_size=None).train.data.shape == (60000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(splits.test.label),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


# ---- digits ----

@pytest.fixture(scope="module")
def digit_splits():
    return digits(seed=0)


def test_digits_shapes_and_values(digit_splits):
    train, test = digit_splits.train, digit_splits.test
    assert train.data.shape[1:] == test.data.shape[1:] == (1, 28, 28)
    assert train.data.dtype == np.float32 and train.label.dtype == np.int32
    assert set(np.unique(train.label)) == set(range(10)) and test.label.max() <= 9
    assert digit_splits.num_classes == 10 and digit_splits.input_shape == (1, 28, 28)
    assert abs(train.data.mean()) < 0.05 and abs(train.data.std() - 1) < 0.05


def test_digits_split_is_disjoint_complete_and_stratified(digit_splits):
    train, val, test = digit_splits.train, digit_splits.val, digit_splits.test
    assert (len(train), len(val), len(test)) == (1150, 287, 360)
    rows = lambda d: {x.tobytes() for x in d.data}  # the 1797 digits are distinct images
    assert len(rows(train) | rows(val) | rows(test)) == 1797
    assert not rows(train) & rows(test) and not rows(val) & rows(test) and not rows(train) & rows(val)
    assert np.bincount(test.label).min() >= 34 and np.bincount(val.label).min() >= 28


def test_digits_split_is_fixed_by_seed(digit_splits):
    again = digits(seed=0)
    np.testing.assert_array_equal(again.test.data, digit_splits.test.data)
    np.testing.assert_array_equal(again.train.label, digit_splits.train.label)
    assert not np.array_equal(digits(seed=1).test.data, digit_splits.test.data)


# ---- DataLoader ----

def toy(n=10):
    data = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return ArrayDataset(data, np.arange(n, dtype=np.int32))


def labels_of(loader):
    return [b[1].asnumpy().tolist() for b in loader]


def test_loader_batches():
    loader = DataLoader(toy(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    data, label = batches[0]
    assert isinstance(data, NDArray) and data.shape == (4, 2) and data.dtype == np.float32
    assert label.dtype == np.int32
    assert labels_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_loader_drop_last():
    loader = DataLoader(toy(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(b) for b in labels_of(loader)] == [4, 4]


@pytest.mark.parametrize("bad", [0, -3])
def test_loader_rejects_bad_batch_size(bad):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {bad}"):
        DataLoader(toy(), batch_size=bad)


def test_loader_shuffle_is_reproducible_and_changes_per_epoch():
    first = DataLoader(toy(50), batch_size=8, shuffle=True, seed=3)
    second = DataLoader(toy(50), batch_size=8, shuffle=True, seed=3)
    epoch0, epoch1 = labels_of(first), labels_of(first)
    assert epoch0 == labels_of(second) and epoch1 == labels_of(second)
    assert epoch0 != epoch1 and epoch0 != labels_of(DataLoader(toy(50), 8, shuffle=True))
    for epoch in (epoch0, epoch1):
        assert sorted(sum(epoch, [])) == list(range(50))  # every example exactly once


def test_loader_batch_pairs_data_with_label():
    for data, label in DataLoader(toy(20), batch_size=6, shuffle=True, seed=0):
        np.testing.assert_array_equal(data.asnumpy()[:, 0], 2 * label.asnumpy())
