"""MXNet's parameter files in dlrun and dlrun's in MXNet (issue 20, item 5): networks, nd
lists and dicts, 1.x's prefixed save_params files, recurrent layers and model-zoo models
saved by MXNet 1.9.1 load into the same dlrun network and give MXNet's outputs; what dlrun
saves with a .params name MXNet loads. Also hybridized networks and their export."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from .harness import compare, run_dlrun, run_mxnet

_rng = np.random.default_rng(4)
INPUTS = {
    "img": _rng.normal(size=(2, 3, 32, 32)).astype(np.float32),
    "seq": _rng.normal(size=(4, 2, 5)).astype(np.float32),
    "v": _rng.normal(size=(3, 7)).astype(np.float32),
}

NET = """
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Conv2D(4, 3, padding=1), gluon.nn.BatchNorm(), gluon.nn.Activation('relu'),
        gluon.nn.MaxPool2D(), gluon.nn.Dense(8, activation='tanh'), gluon.nn.Dropout(0.5), gluon.nn.Dense(3))
net.initialize(mx.init.Xavier())
"""
# each pair: (the MXNet side, which saves; the dlrun side, which loads): both print 'y'
PAIRS = {
    "net": (NET + "x = nd.array(inputs['img'])\nwith autograd.record():\n    net(x)\n"
            "net.save_parameters('net.params')\nout = {'y': net(x)}\n",
            NET + "net.load_parameters('net.params')\nout = {'y': net(nd.array(inputs['img']))}\n"),
    "save_params_prefixed": (
        # (MXNet 1.9's own save_params fails in Python 3; ParameterDict.save writes the same file)
        NET + "x = nd.array(inputs['img'])\nnet(x)\nnet.collect_params().save('old.params')\nout = {'y': net(x)}\n",
        NET + "net.load_params('old.params')\nout = {'y': net(nd.array(inputs['img']))}\n"),
    "lstm": ("net = gluon.rnn.LSTM(6, num_layers=2, bidirectional=True)\nnet.initialize()\n"
             "x = nd.array(inputs['seq'])\nnet(x)\nnet.save_parameters('lstm.params')\nout = {'y': net(x)}\n",
             "net = gluon.rnn.LSTM(6, num_layers=2, bidirectional=True)\nnet.load_parameters('lstm.params')\n"
             "out = {'y': net(nd.array(inputs['seq']))}\n"),
    "nd_files": ("nd.save('l.nd', [nd.array(inputs['v']), nd.arange(4, dtype='int32')])\n"
                 "nd.save('d.nd', {'w': nd.array(inputs['v']), 'h': nd.ones((2,), dtype='float16')})\n"
                 "out = {'y': [nd.array(inputs['v']), nd.arange(4, dtype='int32'), nd.ones((2,), dtype='float16')]}\n",
                 "l = nd.load('l.nd'); d = nd.load('d.nd')\nout = {'y': [l[0], l[1], d['h']]}\n"),
    "params_into_nd": (NET + "x = nd.array(inputs['img'])\nnet(x)\nnet.save_parameters('p.params')\n"
                       "out = {'y': np.array(sorted(nd.load('p.params')))}\n",
                       "out = {'y': np.array(sorted(nd.load('p.params')))}\n"),
}
# (densenet121, alexnet, inceptionv3 and the VGGs load alike; left out of the lane for
# time: they need 224 x 224 or 299 x 299 inputs in MXNet)
ZOO = {"resnet18_v1": 32, "resnet18_v2": 32, "squeezenet1.1": 224, "resnet50_v2": 32}
for _name, _size in ZOO.items():
    _make = (f"net = gluon.model_zoo.vision.get_model('{_name}', classes=10)\n"
             f"x = nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, {_size}, {_size})))\n")
    PAIRS[f"zoo_{_name}"] = (
        _make + f"net.initialize(mx.init.Xavier())\nnet(x)\nnet.save_parameters('{_name}.params')\nout = {{'y': net(x)}}\n",
        _make + f"net.load_parameters('{_name}.params')\nout = {{'y': net(x)}}\n")
PAIRS["hybridize_export"] = (
    NET + "net.load_parameters('net.params')\nnet.hybridize(static_alloc=True)\nx = nd.array(inputs['img'])\n"
    "net(x)\nnet.export('model', epoch=3)\n"
    "out = {'y': net(x), 'files': np.array([os.path.exists(f) for f in ('model-symbol.json', 'model-0003.params')])}\n",
    NET + "net.load_parameters('net.params')\nnet.hybridize(static_alloc=True)\nx = nd.array(inputs['img'])\n"
    "net(x)\nnet.export('dl_model', epoch=3)\n"
    "out = {'y': net(x), 'files': np.array([os.path.exists(f) for f in ('dl_model-symbol.json', 'dl_model-0003.params')])}\n")
PAIRS["symbolblock_imports"] = (
    NET + "net.load_parameters('net.params')\nnet.hybridize()\nx = nd.array(inputs['img'])\nnet(x)\n"
    "net.export('sym')\nout = {'y': net(x)}\n",
    "net = gluon.SymbolBlock.imports('sym-symbol.json', ['data'], 'sym-0000.params')\n"
    "out = {'y': net(nd.array(inputs['img']))}\n")
_OPS_NET = ("net = gluon.nn.HybridSequential()\n"
            "net.add(gluon.nn.HybridLambda(lambda F, x: F.concat(F.relu(x) * 2 + 1, 1 - F.sigmoid(x) / 3, dim=1)),\n"
            "        gluon.nn.Dense(5, activation='softrelu'), gluon.nn.LeakyReLU(0.2), gluon.nn.Dense(2))\n"
            "net.initialize(mx.init.Xavier())\n")
PAIRS["symbolblock_scalar_ops"] = (
    _OPS_NET + "net.hybridize()\nx = nd.array(inputs['v'])\nnet(x)\nnet.export('ops')\nout = {'y': net(x)}\n",
    "net = gluon.SymbolBlock.imports('ops-symbol.json', 'data', 'ops-0000.params')\n"
    "out = {'y': net(nd.array(inputs['v']))}\n")
SNIPPETS = {name: "import os\n" + mx_side for name, (mx_side, _) in PAIRS.items()}
ORDER = sorted(PAIRS)


@pytest.mark.parametrize("name", ORDER)
def test_mxnet_files_load_into_dlrun(name, oracle, oracle_folder, monkeypatch):
    theirs, errors = oracle
    assert errors[name] is None, f"the snippet fails in MXNet: {errors[name]}"
    monkeypatch.chdir(oracle_folder)
    ours = run_dlrun(name, "import os\n" + PAIRS[name][1], INPUTS)
    compare(name, ours, theirs, rtol=1e-4, atol=1e-5)


def test_dlrun_files_load_into_mxnet(mxnet_python, tmp_path, monkeypatch):
    """What dlrun writes (save_parameters to .params, nd.save) MXNet 1.9.1 reads."""
    monkeypatch.chdir(tmp_path)
    writer = NET + ("x = nd.array(inputs['img'])\nnet(x)\nnet.save_parameters('dl.params')\n"
                    "nd.save('dl.nd', {'a': nd.array(inputs['v']), 'i': nd.arange(3, dtype='int64')})\n"
                    "out = {'y': net(x), 'a': nd.array(inputs['v'])}\n")
    ours = run_dlrun("w", writer, INPUTS)
    reader = NET + ("net.load_parameters('dl.params')\nd = nd.load('dl.nd')\n"
                    "out = {'y': net(nd.array(inputs['img'])), 'a': d['a']}\n")
    theirs, errors = run_mxnet(mxnet_python, {"w": reader}, INPUTS, tmp_path)
    assert errors["w"] is None, errors["w"]
    compare("w", ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_damaged_params_file_is_refused_with_its_offset(tmp_path):
    from dlrun import nd
    from dlrun.engine.mxfile import MXFileError
    path = tmp_path / "x.params"
    nd.save(str(path), {"w": nd.ones((1000, 10))})
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(MXFileError, match="truncated"):
        nd.load(str(path))
    huge = bytearray(data)
    huge[16:24] = (1 << 60).to_bytes(8, "little")  # an absurd array count
    path.write_bytes(bytes(huge))
    with pytest.raises(MXFileError, match="claims"):
        nd.load(str(path))
