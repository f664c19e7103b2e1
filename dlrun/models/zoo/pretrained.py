"""Pretrained weights of the vision zoo: MXNet's model-zoo ``.params`` files.

``get_model(name, pretrained=True)`` loads ``<root>/<name>-<first 8 hex of its SHA-1>.params``
(MXNet's cache layout; ``root`` defaults to ``$MXNET_HOME/models`` or ``~/.mxnet/models``),
checked against the SHA-1 MXNet 1.9.1 publishes for it; a missing file is downloaded from
MXNet's repository (``$MXNET_GLUON_REPO`` to use a mirror) as MXNet does, a damaged one is
refused.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from ...data.download import check_sha1, download

# the SHA-1 of each file, as mxnet/gluon/model_zoo/model_store.py (MXNet 1.9.1) lists them
SHA1 = {
    "alexnet": "44335d1f0046b328243b32a26a4fbd62d9057b45",
    "densenet121": "f27dbf2dbd5ce9a80b102d89c7483342cd33cb31",
    "densenet161": "b6c8a95717e3e761bd88d145f4d0a214aaa515dc",
    "densenet169": "2603f878403c6aa5a71a124c4a3307143d6820e9",
    "densenet201": "1cdbc116bc3a1b65832b18cf53e1cb8e7da017eb",
    "inceptionv3": "ed47ec45a937b656fcc94dabde85495bbef5ba1f",
    "resnet18_v1": "a0666292f0a30ff61f857b0b66efc0228eb6a54b",
    "resnet34_v1": "48216ba99a8b1005d75c0f3a0c422301a0473233",
    "resnet50_v1": "0aee57f96768c0a2d5b23a6ec91eb08dfb0a45ce",
    "resnet101_v1": "d988c13d6159779e907140a638c56f229634cb02",
    "resnet152_v1": "671c637a14387ab9e2654eafd0d493d86b1c8579",
    "resnet18_v2": "a81db45fd7b7a2d12ab97cd88ef0a5ac48b8f657",
    "resnet34_v2": "9d6b80bbc35169de6b6edecffdd6047c56fdd322",
    "resnet50_v2": "ecdde35339c1aadbec4f547857078e734a76fb49",
    "resnet101_v2": "18e93e4f48947e002547f50eabbcc9c83e516aa6",
    "resnet152_v2": "f2695542de38cf7e71ed58f02893d82bb409415e",
    "squeezenet1.0": "264ba4970a0cc87a4f15c96e25246a1307caf523",
    "squeezenet1.1": "33ba0f93753c83d86e1eb397f38a667eaf2e9376",
    "vgg11": "dd221b160977f36a53f464cb54648d227c707a05",
    "vgg11_bn": "ee79a8098a91fbe05b7a973fed2017a6117723a8",
    "vgg13": "6bc5de58a05a5e2e7f493e2d75a580d83efde38c",
    "vgg13_bn": "7d97a06c3c7a1aecc88b6e7385c2b373a249e95e",
    "vgg16": "e660d4569ccb679ec68f1fd3cce07a387252a90a",
    "vgg16_bn": "7f01cf050d357127a73826045c245041b0df7363",
    "vgg19": "ad2f660d101905472b83590b59708b71ea22b2e5",
    "vgg19_bn": "f360b758e856f1074a85abd5fd873ed1d98297c3",
}
REPO = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/"


def default_root() -> Path:
    """MXNet's model cache: ``$MXNET_HOME/models``, else ``~/.mxnet/models``."""
    return Path(os.environ.get("MXNET_HOME") or Path.home() / ".mxnet") / "models"


def pretrained_file(name: str, root: str | os.PathLike | None = None) -> Path:
    """The checked path of the pretrained weights of zoo model ``name``, downloaded if missing."""
    if name not in SHA1:
        raise ValueError(f"no pretrained weights for {name!r}; MXNet publishes them for "
                         f"{', '.join(sorted(SHA1))}")
    folder = Path(root).expanduser() if root is not None else default_root()
    stem = f"{name}-{SHA1[name][:8]}"
    path = folder / f"{stem}.params"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        repo = os.environ.get("MXNET_GLUON_REPO", REPO).rstrip("/") + "/"
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            archive = download(f"{repo}gluon/models/{stem}.zip", Path(tmp) / f"{stem}.zip")
            with zipfile.ZipFile(archive) as zf:
                zf.extract(f"{stem}.params", tmp)  # only that member, inside tmp
            os.replace(Path(tmp) / f"{stem}.params", path)
    if not check_sha1(path, SHA1[name]):
        raise ValueError(f"{path} does not have the SHA-1 {SHA1[name]} MXNet publishes for "
                         f"{name}: it is damaged or another file; delete it to download it again")
    return path
