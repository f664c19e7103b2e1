"""gluon.data.vision.ImageFolderDataset (dlrun.data.gluon_vision) and the image reader under
it (dlrun.data.images.read_image): classes, items, skipped files, decoded pixels, errors."""
import sys

import numpy as np
import pytest

import dlrun
from dlrun.data import gluon_vision
from dlrun.data.errors import CorruptFileError, DatasetNotFoundError
from dlrun.data.images import read_image, write_png

PRIMARIES = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]]], np.uint8)
GREY = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20


@pytest.fixture
def folder(tmp_path):
    """root/{ant,bee}: an RGB PNG, a grey one with an upper-case extension, a text file."""
    write_png(tmp_path / "bee" / "rgb.png", PRIMARIES)
    write_png(tmp_path / "ant" / "g.PNG", GREY)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / "stray.png").write_bytes(b"a file, not a class folder")
    return tmp_path


def test_both_gluon_paths_give_the_class():
    vision = dlrun.gluon.data.vision
    assert vision.ImageFolderDataset is vision.datasets.ImageFolderDataset is gluon_vision.ImageFolderDataset


def test_classes_items_and_skipped_files(folder):
    pytest.importorskip("PIL")
    with pytest.warns(UserWarning) as caught:
        ds = dlrun.gluon.data.vision.ImageFolderDataset(str(folder))
    assert sorted(str(w.message) for w in caught) == [
        f"Ignoring {folder}/ant/notes.txt of type .txt. Only support .jpg, .jpeg, .png",
        f"Ignoring {folder}/stray.png, which is not a directory."]
    assert ds.synsets == ["ant", "bee"]
    assert ds.items == [(f"{folder}/ant/g.PNG", 0), (f"{folder}/bee/rgb.png", 1)]
    assert len(ds) == 2
    grey, label = ds[0]
    assert label == 0 and grey.dtype == np.uint8 and grey.shape == (3, 4, 3)
    np.testing.assert_array_equal(grey.asnumpy(), np.repeat(GREY[..., None], 3, axis=2))
    np.testing.assert_array_equal(ds[1][0].asnumpy(), PRIMARIES)


@pytest.mark.filterwarnings("ignore:Ignoring")
def test_flag0_greys_as_mxnet_and_transforms(folder):
    pytest.importorskip("PIL")
    ds = dlrun.gluon.data.vision.ImageFolderDataset(str(folder), flag=0)
    assert ds[0][0].shape == (3, 4, 1)
    np.testing.assert_array_equal(ds[0][0].asnumpy()[..., 0], GREY)
    # libpng's truncated 0.299/0.587/0.114 weights, which MXNet's OpenCV reader gets
    np.testing.assert_array_equal(ds[1][0].asnumpy()[0, :, 0], [76, 149, 29, 90])
    tensors = ds.transform_first(dlrun.gluon.data.vision.transforms.ToTensor())
    x, y = tensors[1]
    assert x.shape == (1, 1, 4) and x.dtype == np.float32 and y == 1
    np.testing.assert_allclose(x.asnumpy()[0, 0], np.array([76, 149, 29, 90]) / 255, rtol=1e-6)
    labelled = gluon_vision.ImageFolderDataset(str(folder), transform=lambda d, l: (d.shape, l + 10))
    assert labelled[1] == ((1, 4, 3), 11)


def test_jpeg_and_16_bit_png(tmp_path):
    image = pytest.importorskip("PIL.Image")
    image.fromarray(np.full((6, 5, 3), 200, np.uint8)).save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").shape == (6, 5, 3)
    assert read_image(tmp_path / "c.jpg", 0).shape == (6, 5, 1)
    deep = np.array([[0, 255, 256, 65535]], np.uint16)
    image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_array_equal(read_image(tmp_path / "d.png", 0)[..., 0], [[0, 0, 1, 255]])
    (tmp_path / "bad.png").write_bytes(b"truncated")
    with pytest.raises(CorruptFileError, match="cannot read image .*bad.png"):
        read_image(tmp_path / "bad.png")


def test_errors_say_what_to_do(folder, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="flag=2: give 1 for RGB images or 0 for greyscale"):
        gluon_vision.ImageFolderDataset(str(folder), flag=2)
    with pytest.raises(DatasetNotFoundError, match="one sub-folder of images per class"):
        gluon_vision.ImageFolderDataset(str(tmp_path / "missing"))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'dlrun\[images\]'"):
        read_image(folder / "ant" / "g.PNG")
