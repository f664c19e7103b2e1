"""gluon.data (datasets, samplers, the DataLoader's batches and last-batch rules, workers),
the vision datasets' first items after transforms, the transforms, mx.metric and
mx.io.NDArrayIter, in MXNet 1.9.1 and dlrun."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .harness import compare, run_dlrun

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
_rng = np.random.default_rng(3)
INPUTS = {
    "x": np.arange(30, dtype=np.float32).reshape(10, 3),
    "y": np.arange(10, dtype=np.float32),
    "img": _rng.integers(0, 256, (12, 10, 3)).astype(np.uint8),
    "root": np.array(str(SHARED)),
    "pred": _rng.uniform(size=(6, 3)).astype(np.float32),
    "label": np.array([0, 2, 1, 1, 0, 2], np.float32),
    "pred2": _rng.uniform(size=(6, 2)).astype(np.float32),
    "label2": np.array([0, 1, 1, 1, 0, 0], np.float32),
    "reg_p": _rng.normal(size=(6,)).astype(np.float32),
    "reg_t": _rng.normal(size=(6,)).astype(np.float32),
}

LOADER = """
ds = gluon.data.ArrayDataset(nd.array(inputs['x']), inputs['y'])
loader = gluon.data.DataLoader(ds, batch_size=4, {args})
out = {{'n': np.array(len(loader))}}
for epoch in range(2):
    for i, (a, b) in enumerate(loader):
        out[f'e{{epoch}}_{{i}}'] = [a, b]
"""
SNIPPETS = {
    f"loader_{k}": LOADER.format(args=v) for k, v in {
        "keep": "last_batch='keep'", "discard": "last_batch='discard'",
        "rollover": "last_batch='rollover'", "default": "shuffle=False",
        "workers": "num_workers=2", "threads": "num_workers=2, thread_pool=True",
        "pin_memory": "pin_memory=True",
        "shuffle": "shuffle=True",
        "sampler": "sampler=gluon.data.SequentialSampler(10, start=0)",
    }.items()}
SNIPPETS["loader_batch_sampler"] = """
ds = gluon.data.SimpleDataset(list(range(10)))
bs = gluon.data.BatchSampler(gluon.data.SequentialSampler(10), 3, 'rollover')
loader = gluon.data.DataLoader(ds, batch_sampler=bs)
out = {'epoch0': [b for b in loader], 'epoch1': [b for b in loader], 'n': np.array(len(bs))}
"""
SNIPPETS["loader_batchify"] = """
ds = gluon.data.ArrayDataset(inputs['x'], inputs['y'])
loader = gluon.data.DataLoader(ds, batch_size=3, batchify_fn=lambda items: nd.array([x.sum() + y for x, y in items]))
out = {'batches': [b for b in loader]}
"""
SNIPPETS["dataset_transform"] = """
ds = gluon.data.ArrayDataset(inputs['x'], inputs['y'])
t = ds.transform(lambda x, y: (x * 2, y + 1))
f = ds.transform_first(lambda x: x - 1, lazy=False)
s = gluon.data.SimpleDataset([1, 2, 3]).transform(lambda v: v * 10)
one = gluon.data.ArrayDataset(nd.array(inputs['y']))
out = {'t': list(t[3]), 'f': list(f[2]), 's': np.array([s[i] for i in range(len(s))]),
       'len': np.array([len(t), len(f)]), 'one': np.array(one[4]), 'take': list(ds.take(2)[1])}
"""
SNIPPETS["samplers"] = """
np.random.seed(5)
r = list(gluon.data.RandomSampler(7))
out = {'seq': np.array(list(gluon.data.SequentialSampler(5))), 'random': np.array(r),
       'interval': np.array(list(gluon.contrib.data.IntervalSampler(7, 3))),
       'interval_no_roll': np.array(list(gluon.contrib.data.IntervalSampler(7, 3, rollover=False))),
       'filter': np.array(list(gluon.data.FilterSampler(lambda v: v % 3 == 1, list(range(10))))),
       'batch_keep': [np.array(b) for b in gluon.data.BatchSampler(range(7), 3, 'keep')],
       'batch_discard': [np.array(b) for b in gluon.data.BatchSampler(range(7), 3, 'discard')]}
"""
T = "gluon.data.vision.transforms"
SNIPPETS["transforms"] = f"""
img = nd.array(inputs['img'], dtype='uint8')
tt = {T}.ToTensor()(img)
norm = {T}.Normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))(tt)
comp = {T}.Compose([{T}.ToTensor(), {T}.Normalize(0.5, 0.25)])(img)
out = {{'to_tensor': tt, 'normalize': norm, 'compose': comp,
       'cast': {T}.Cast('float64')(img), 'center': {T}.CenterCrop(6)(img),
       'center_rect': {T}.CenterCrop((4, 8))(img), 'batch_to_tensor': {T}.ToTensor()(nd.stack(img, img))}}
"""
SNIPPETS["transforms_resize"] = f"""
img = nd.array(inputs['img'], dtype='uint8')
out = {{'resize': {T}.Resize(7)(img), 'resize_wh': {T}.Resize((5, 9))(img),
       'resize_up': {T}.Resize(20)(img), 'keep_ratio': {T}.Resize(6, keep_ratio=True)(img)}}
"""
SNIPPETS["transforms_random_shapes"] = f"""
img = nd.array(inputs['img'], dtype='uint8')
out = {{'flip': np.array({T}.RandomFlipLeftRight()(img).shape),
       'flip_values': np.sort({T}.RandomFlipLeftRight()(img).asnumpy().ravel()),
       'crop': np.array({T}.RandomResizedCrop(5)(img).shape)}}
"""
VISION = """
root = str(inputs['root']) + '/{folder}'
ds = gluon.data.vision.{cls}(root=root, train=False)
tf = gluon.data.vision.transforms.Compose([gluon.data.vision.transforms.ToTensor(),
                                           gluon.data.vision.transforms.Normalize(0.13, 0.31)])
loader = gluon.data.DataLoader(ds.transform_first(tf), batch_size=5)
x, y = next(iter(loader))
out = {{'n': np.array(len(ds)), 'first': ds[0][0], 'label': np.array([ds[i][1] for i in range(5)]),
       'x': x, 'y': y}}
"""
SNIPPETS["vision_mnist"] = VISION.format(folder="mnist", cls="MNIST")
# (FashionMNIST is not compared: MXNet checks its own copies' SHA-1, which the official
# files in the shared data do not have, and downloads)
SNIPPETS["vision_cifar_files"] = """
import os, sys, tempfile
rs = np.random.RandomState(0)
root = tempfile.mkdtemp()
for name in ['data_batch_%d.bin' % i for i in range(1, 6)] + ['test_batch.bin']:
    rec = rs.randint(0, 256, (3, 3073)).astype(np.uint8)
    rec[:, 0] %= 10
    rec.tofile(os.path.join(root, name))
for name in ['train.bin', 'test.bin']:
    rec = rs.randint(0, 256, (3, 3074)).astype(np.uint8)
    rec[:, 0] %= 20
    rec[:, 1] %= 100
    rec.tofile(os.path.join(root, name))
module = sys.modules[gluon.data.vision.CIFAR100.__module__]
saved, module.check_sha1 = module.check_sha1, lambda *a: True  # synthetic files, not MXNet's
try:
    c10 = gluon.data.vision.CIFAR10(root=root, train=True)
    c100 = gluon.data.vision.CIFAR100(root=root, train=False, fine_label=True)
    c100c = gluon.data.vision.CIFAR100(root=root, train=True)
finally:
    module.check_sha1 = saved
out = {'n': np.array([len(c10), len(c100), len(c100c)]), 'c10': [c10[4][0], np.array(c10[4][1])],
       'c100': [c100[1][0], np.array(c100[1][1])], 'coarse': np.array([c100c[i][1] for i in range(3)])}
"""
SNIPPETS["record_file_dataset"] = """
import os, tempfile
folder = tempfile.mkdtemp()
records = [b'first', b'', b'x' * 13, b'a' + bytes.fromhex('0a23d7ce') + b'b', bytes(range(256)) * 3]
if hasattr(mx, 'recordio'):  # MXNet writes the file; dlrun reads what the same code wrote there
    writer = mx.recordio.MXIndexedRecordIO(os.path.join(folder, 'r.idx'), os.path.join(folder, 'r.rec'), 'w')
    for i, r in enumerate(records):
        writer.write_idx(i, r)
    writer.close()
    blobs = {'rec': np.frombuffer(open(os.path.join(folder, 'r.rec'), 'rb').read(), np.uint8),
             'idx': np.array(open(os.path.join(folder, 'r.idx')).read())}
    np.savez('recordio.npz', **blobs)
else:
    blobs = np.load('recordio.npz')  # what MXNet wrote, in the folder its snippets ran in
    open(os.path.join(folder, 'r.rec'), 'wb').write(blobs['rec'].tobytes())
    open(os.path.join(folder, 'r.idx'), 'w').write(str(blobs['idx']))
ds = gluon.data.RecordFileDataset(os.path.join(folder, 'r.rec'))
out = {'n': np.array(len(ds)), 'records': [np.frombuffer(ds[i], np.uint8) for i in range(len(ds))]}
"""
METRIC = """
m = mx.metric.create({spec})
p, l = {p}, {l}
for k in range(3):
    m.update([l[2 * k:2 * k + 2]], [p[2 * k:2 * k + 2]])
name, value = m.get()
gname, gvalue = m.get_global()
m.reset_local()
out = {{'value': np.array(value, dtype='float64'), 'global': np.array(gvalue, dtype='float64'),
       'name': np.array(name), 'after_reset': np.array(m.get()[1], dtype='float64')}}
"""
_CLS = "nd.array(inputs['pred']), nd.array(inputs['label'])"
_BIN = "nd.array(inputs['pred2']), nd.array(inputs['label2'])"
_REG = "nd.array(inputs['reg_p']), nd.array(inputs['reg_t'])"
for _k, (_spec, _args) in {
        "acc": ("'acc'", _CLS), "top_k": ("'top_k_accuracy', top_k=2", _CLS),
        "ce": ("'ce'", _CLS), "nll": ("'nll_loss'", _CLS), "perplexity": ("'perplexity', ignore_label=None", _CLS),
        "perplexity_ignore": ("'perplexity', ignore_label=2", _CLS),
        "f1": ("'f1'", _BIN), "f1_micro": ("'f1', average='micro'", _BIN), "mcc": ("'mcc'", _BIN),
        "mae": ("'mae'", _REG), "mse": ("'mse'", _REG), "rmse": ("'rmse'", _REG),
        "loss": ("'loss'", _REG), "pearson": ("'pearsonr'", _REG),
        "custom": ("lambda label, pred: float(np.abs(label - pred).sum())", _REG),
        "composite": ("['acc', 'ce']", _CLS)}.items():
    SNIPPETS[f"metric_{_k}"] = METRIC.format(spec=_spec, p=_args.split(", ")[0], l=_args.split(", ")[1])
ITER = """
np.random.seed(7)
it = mx.io.NDArrayIter(nd.array(inputs['x']), nd.array(inputs['y']), batch_size=4, {args})
out = {{'provide': np.array(it.provide_data[0].shape)}}
for epoch in range(2):
    for i, batch in enumerate(it):
        out[f'e{{epoch}}_{{i}}'] = [batch.data[0], batch.label[0], np.array(batch.pad)]
    it.reset()
"""
for _k, _v in {"pad": "last_batch_handle='pad'", "discard": "last_batch_handle='discard'",
               "roll_over": "last_batch_handle='roll_over'", "shuffle": "shuffle=True"}.items():
    SNIPPETS[f"ndarrayiter_{_k}"] = ITER.format(args=_v)

NEEDS_SHARED = {"vision_mnist"}
# decided before MXNet runs: its MNIST makes the root folder when it does not find the files
UNAVAILABLE = set() if (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file() else NEEDS_SHARED
NO_DTYPE = {"loader_batch_sampler", "dataset_transform", "transforms_random_shapes"}
CLOSE = {"transforms_resize": 1.0}  # OpenCV's fixed-point bilinear rounds a few pixels 1 apart


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_data_matches_mxnet(name, oracle, oracle_folder, monkeypatch):
    if name in UNAVAILABLE:
        pytest.skip(f"the shared MNIST copy is not at {SHARED}")
    theirs, errors = oracle
    assert errors[name] is None, f"the snippet fails in MXNet: {errors[name]}"
    monkeypatch.chdir(oracle_folder)
    ours = run_dlrun(name, SNIPPETS[name], INPUTS)
    compare(name, ours, theirs, rtol=1e-5, atol=CLOSE.get(name, 1e-6), dtypes=name not in NO_DTYPE)
