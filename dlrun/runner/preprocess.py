"""The preprocessing of a run's dataset, kept with its model, and new data read through it.

A dataset of images standardises its pixels as ``(x / 255 - mean[c]) / std[c]`` (MNIST,
Fashion-MNIST, the digits, CIFAR-10: the statistics of ``dlrun.data``). The MLflow model of a
run records that as ``{"kind": "image", "shape": [C, H, W], "scale": 1/255, "mean": [...],
"std": [...]}`` (other data: ``{"kind": "none"}``), and ``dlrun predict RUN --input FILE``
reads new examples through it:

* a ``.npy`` (or ``.npz`` with one array) of examples as the model takes them (float, the
  model's shape) is used as it is; of integer pixels (N x H x W, N x C x H x W or N x H x W x C,
  0..255) it is standardised;
* a folder of PNG/JPEG images is read (grey or RGB as the model's channels), resized to the
  model's H x W (bilinear), and standardised.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class InputError(ValueError):
    """New data that does not fit the model; the message says what was expected."""


def _image_stats() -> dict[str, tuple[Any, Any]]:
    """{dataset builder: (mean, std) of its [0, 1] pixels}."""
    from dlrun.data.cifar import CIFAR10_MEAN, CIFAR10_STD
    from dlrun.data.vision import DIGITS_STATS, FASHION_MNIST_STATS, MNIST_STATS

    return {"dlrun.data.vision.mnist": MNIST_STATS, "dlrun.data.vision.digits": DIGITS_STATS,
            "dlrun.data.vision.fashion_mnist": FASHION_MNIST_STATS,
            "dlrun.data.cifar.cifar10": (CIFAR10_MEAN, CIFAR10_STD)}


def spec_for(dataset_target: str, example_shape: tuple[int, ...]) -> dict:
    """The preprocessing record of the dataset built by ``dataset_target`` for examples of
    ``example_shape`` (the model's input without the batch axis)."""
    stats = _image_stats().get(dataset_target)
    if stats is None or len(example_shape) != 3:
        return {"kind": "none"}
    channels = example_shape[0]
    mean, std = (np.broadcast_to(np.asarray(s, dtype=float), (channels,)).tolist() for s in stats)
    return {"kind": "image", "shape": list(example_shape), "scale": 1 / 255, "mean": mean, "std": std}


def standardise(spec: dict, pixels: np.ndarray) -> np.ndarray:
    """float32 N x C x H x W examples of integer ``pixels`` (N x H x W, N x C x H x W or
    N x H x W x C, of the model's size), as the run's dataset standardised its images."""
    c, h, w = spec["shape"]
    x = np.asarray(pixels)
    if x.ndim == 3 and c == 1:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] != c and x.shape[3] == c:
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1:] != (c, h, w):
        raise InputError(f"images of shape {list(pixels.shape[1:])} do not fit the model, which "
                         f"takes {c} x {h} x {w} (channels x height x width) images")
    mean = np.asarray(spec["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec["std"], np.float32).reshape(1, -1, 1, 1)
    return ((x.astype(np.float32) * np.float32(spec["scale"]) - mean) / std).astype(np.float32)


def read_images(folder: Path, spec: dict) -> tuple[np.ndarray, list[str]]:
    """(the standardised images of ``folder``'s PNG/JPEG files, their names), in name order."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError("reading images needs Pillow: pip install 'dlrun[images]'") from None
    if spec.get("kind") != "image":
        raise InputError(f"{folder} is a folder of images, but the model was not trained on "
                         "images; give a .npy file of its examples")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    c, h, w = spec["shape"]
    pixels = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                pixels.append(np.asarray(im))
        except OSError as e:
            raise InputError(f"cannot read image {f}: {e}") from None
    return standardise(spec, np.stack(pixels)), [f.name for f in files]


def read_array(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, or the one array of a ``.npz`` file (no pickles)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"cannot read {path} as a NumPy array: {e}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if len(loaded.files) != 1:
            raise InputError(f"{path} holds {len(loaded.files)} arrays ({', '.join(loaded.files)}); "
                             "give a .npz with one array of examples, or a .npy")
        return loaded[loaded.files[0]]


def read_input(path: Path, spec: dict, example_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """(examples for the model, a name per example) from ``path``: a ``.npy``/``.npz`` array
    or a folder of images, as the module says."""
    if path.is_dir():
        return read_images(path, spec)
    if path.suffix not in (".npy", ".npz"):
        raise InputError(f"{path}: give a .npy/.npz array of examples or a folder of "
                         f"{'/'.join(IMAGE_SUFFIXES)} images")
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    x = read_array(path)
    if x.dtype.kind in "iu" and spec.get("kind") == "image":
        x = standardise(spec, x)
    if x.ndim == len(example_shape):  # one example
        x = x[None]
    if x.shape[1:] != tuple(example_shape) or x.dtype.kind not in "biuf":
        raise InputError(f"{path} holds a {x.dtype} array of shape {list(x.shape)}; the model "
                         f"takes examples of shape {list(example_shape)} (N x "
                         f"{' x '.join(map(str, example_shape))})")
    return x, [str(i) for i in range(len(x))]


def text_spec(itos: list[str], level: str) -> dict:
    """The preprocessing record of a language model's corpus: its vocabulary (``itos``) and
    whether it reads words or characters."""
    return {"kind": "text", "level": level, "vocab": list(itos)}


def read_text(path: Path, spec: dict) -> tuple[list[np.ndarray], list[str]]:
    """(the token ids of each non-empty line of the text file ``path``, the lines), tokenized
    as the corpus was (words split at whitespace, or characters); a token outside the
    vocabulary is ``<unk>`` when it has one."""
    if spec.get("kind") != "text":
        raise InputError(f"{path} is text, but the model was not trained on text; give a .npy "
                         "file of its examples")
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path} as UTF-8 text: {e}") from None
    if not lines:
        raise InputError(f"{path} holds no line of text")
    stoi = {t: i for i, t in enumerate(spec["vocab"])}
    unk = stoi.get("<unk>")
    rows = []
    for n, line in enumerate(lines, 1):
        tokens = list(line) if spec["level"] == "char" else line.split()
        missing = [t for t in tokens if t not in stoi]
        if missing and unk is None:
            raise InputError(f"{path}, line {n}: {missing[:5]} are not in the model's vocabulary "
                             "(which has no <unk>)")
        rows.append(np.array([stoi.get(t, unk) for t in tokens], dtype=np.int32))
    return rows, lines
