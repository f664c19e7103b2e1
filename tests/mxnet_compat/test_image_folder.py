"""gluon.data.vision.ImageFolderDataset over the same folder of PNG files (RGB, grey, an
upper-case extension, a non-image file, a stray file at the top) in MXNet 1.9.1 and dlrun:
synsets, labels, file names, warnings and the decoded pixels with flag=1 and flag=0."""
from __future__ import annotations

import numpy as np
import pytest

from dlrun.data.images import png_bytes

from .harness import compare, run_dlrun

_rng = np.random.default_rng(20)
# class folder -> {file name: bytes}; every snippet writes them into a fresh folder
FILES = {
    "cat": {"b.png": png_bytes(_rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)),
            "a.png": png_bytes(_rng.integers(0, 256, (6, 4), dtype=np.uint8)),
            "notes.txt": b"not an image"},
    "bus": {"z.PNG": png_bytes(_rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)),
            "grey.png": png_bytes(np.full((4, 4, 3), 77, np.uint8))},
    "ant": {"only.png": png_bytes(_rng.integers(0, 256, (8, 2), dtype=np.uint8))},
}
INPUTS = {f"{c}/{n}": np.frombuffer(b, np.uint8) for c, files in FILES.items() for n, b in files.items()}

MAKE = """
import os, tempfile, warnings
root = tempfile.mkdtemp()
for key, blob in inputs.items():
    os.makedirs(os.path.join(root, os.path.dirname(key)), exist_ok=True)
    open(os.path.join(root, key), 'wb').write(blob.tobytes())
open(os.path.join(root, 'README'), 'w').write('a stray file')
"""
SNIPPETS = {
    f"flag{flag}": MAKE + f"""
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    ds = gluon.data.vision.ImageFolderDataset(root, flag={flag})
out = {{'synsets': np.array(ds.synsets), 'labels': np.array([l for _, l in ds.items]),
       'files': np.array([os.path.relpath(p, root) for p, _ in ds.items]), 'n': np.array(len(ds)),
       'warnings': np.array(sorted(str(w.message).replace(root, 'ROOT') for w in caught)),
       'images': [ds[i][0] for i in range(len(ds))], 'item_labels': np.array([ds[i][1] for i in range(len(ds))])}}
""" for flag in (0, 1)}
SNIPPETS["to_tensor"] = MAKE + """
T = gluon.data.vision.transforms
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    ds = gluon.data.vision.datasets.ImageFolderDataset(root).transform_first(T.ToTensor())
    grey = gluon.data.vision.ImageFolderDataset(root, flag=0, transform=lambda x, y: (x.astype('float32') / 255, y))
out = {'rgb': [ds[i][0] for i in range(len(ds))], 'grey': [grey[i][0] for i in range(len(grey))],
       'label': np.array(grey[3][1])}
"""


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_image_folder_matches_mxnet(name, oracle, oracle_folder, monkeypatch):
    theirs, errors = oracle
    assert errors[name] is None, f"the snippet fails in MXNet: {errors[name]}"
    monkeypatch.chdir(oracle_folder)
    ours = run_dlrun(name, SNIPPETS[name], INPUTS)
    compare(name, ours, theirs, rtol=0, atol=0)
