"""The Tree-LSTM model and the tree sentiment task: the plain recursion and the level-by-level
evaluation agree (outputs and gradients, float64), unlabelled nodes carry no target, training
lowers the loss on ListOps, and ``dlrun model=treelstm`` runs end to end."""
import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

import dlrun as mx
from dlrun import autograd
from dlrun.data.listops import listops
from dlrun.data.trees import Tree
from dlrun.engine import array, cpu
from dlrun.loss import SoftmaxCrossEntropyLoss
from dlrun.models.treelstm import TreeBatch, TreeLSTM, flatten_tree
from dlrun.optim import AdaGrad, Trainer
from dlrun.runner.loop import Loop
from dlrun.runner.tasks.base import Setup
from dlrun.runner.tasks.tree_sentiment import TreeSentimentTask, targets
from tests.garbage import cyclic_garbage

F64 = "float64"


def leaf(word, label=1):
    return Tree(label, [], word)


def node(label, *children):
    return Tree(label, list(children))


def binary_trees():
    """Binary trees of different shapes: a deep left spine, a balanced tree, a node with a
    single child, a lone leaf; some labels -1 (no target)."""
    spine = node(0, node(1, node(2, leaf(0), leaf(1, -1)), leaf(2)), leaf(3))
    balanced = node(4, node(3, leaf(4), leaf(5)), node(-1, leaf(6), leaf(7, 0)))
    unary = node(2, node(1, leaf(8)), leaf(9, 3))
    return [spine, balanced, unary, leaf(5, 4)]


def wide_trees():
    """Child-Sum trees: nodes with 1 to 4 children, and the binary ones."""
    wide = node(1, leaf(1), node(2, leaf(2), leaf(3), leaf(4), leaf(5, -1)), leaf(6))
    chain = node(3, node(0, node(4, leaf(7))))
    return [wide, chain] + binary_trees()


TREES = {"childsum": wide_trees, "binary": binary_trees}


def model(cell, classify="all", dropout=0.0, vocab=10, classes=5, seed=0):
    mx.random.seed(seed)
    net = TreeLSTM(vocab, classes, embed_size=3, hidden_size=4, cell=cell, classify=classify,
                   dropout=dropout)
    net.initialize(mx.init.Xavier())
    net.cast(F64)
    rng = np.random.default_rng(seed)
    for p in net.collect_params().values():  # biases too, so that every gradient is exercised
        p.set_data(rng.normal(scale=0.5, size=p.shape))
    return net


def test_tree_batch_lists_the_nodes_tree_by_tree_in_post_order():
    trees = binary_trees()
    batch = TreeBatch.of(trees)
    assert batch.num_nodes == sum(t.num_nodes for t in trees) == 7 + 7 + 4 + 1
    np.testing.assert_array_equal(batch.roots, [6, 13, 17, 18])
    np.testing.assert_array_equal(batch.offsets, [0, 7, 14, 18, 19])
    # the spine, post-order: 0 1 (2) 2 (1) 3 (0)
    np.testing.assert_array_equal(batch.words[:7], [0, 1, -1, 2, -1, 3, -1])
    np.testing.assert_array_equal(batch.labels[:7], [1, -1, 2, 1, 1, 1, 0])
    np.testing.assert_array_equal(batch.heights[:7], [0, 0, 1, 0, 2, 0, 3])
    np.testing.assert_array_equal(batch.children[6], [4, 5])
    np.testing.assert_array_equal(batch.children[14 + 1], [14, -1])  # the single child, left
    np.testing.assert_array_equal(batch.children[:2], -1)
    assert flatten_tree(trees[3]).children.shape == (1, 0)


@pytest.mark.parametrize("classify", ["all", "root"])
@pytest.mark.parametrize("cell", ["childsum", "binary"])
def test_recursive_and_level_batched_give_the_same_outputs_and_gradients(cell, classify):
    trees = TREES[cell]()
    batch = TreeBatch.of(trees)
    net = model(cell, classify, dropout=0.3)
    rows = batch.num_nodes if classify == "all" else len(trees)
    head = np.random.default_rng(1).normal(size=(rows, 5))
    params = net.collect_params()
    results = []
    for batched in (False, True):
        net.batched = batched
        mx.random.seed(7)  # the same dropout mask
        with autograd.record():
            out = net(batch)
        out.backward(array(head, dtype=F64))
        results.append((out.asnumpy(), {k: p.grad().asnumpy().copy() for k, p in params.items()}))
    (o1, g1), (o2, g2) = results
    assert o1.shape == (rows, 5) and o1.dtype == np.float64
    np.testing.assert_allclose(o2, o1, rtol=1e-12, atol=1e-13)
    for k in g1:
        assert np.abs(g1[k]).sum() > 0, k
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-10, atol=1e-12, err_msg=k)
    # an unused vocabulary entry gets no gradient in either mode
    assert not g1["embedding.weight"][np.setdiff1d(np.arange(10), batch.words)].any()


@pytest.mark.parametrize("batched", [False, True], ids=["recursive", "levels"])
def test_a_forward_pass_leaves_no_reference_cycle_holding_the_graph(batched):
    # a cycle would keep every node's state and autograd graph alive until the collector ran
    net = model("binary")
    net.batched = batched
    batch = TreeBatch.of(binary_trees())

    def step():
        with autograd.record():
            out = net(batch)
        out.backward()
    assert cyclic_garbage(step) == []


def test_the_root_logits_are_the_last_node_of_each_tree():
    trees = wide_trees()
    net = model("childsum")
    batch = TreeBatch.of(trees)
    for batched in (False, True):
        net.batched = batched
        every, roots = net(batch, "all").asnumpy(), net(batch, "root").asnumpy()
        np.testing.assert_allclose(every[batch.roots], roots, rtol=1e-12)
    alone = net(TreeBatch.of(trees[:1]), "root").asnumpy()   # a tree's result does not depend
    np.testing.assert_allclose(alone, roots[:1], rtol=1e-12)  # on the rest of its minibatch


def test_unlabelled_nodes_carry_no_target():
    trees = binary_trees()
    batch = TreeBatch.of(trees)
    rows, labels = targets(batch, "all")
    assert -1 not in labels and len(rows) == int((batch.labels >= 0).sum()) == 17
    np.testing.assert_array_equal(batch.labels[rows], labels)
    root_rows, root_labels = targets(batch, "root")
    np.testing.assert_array_equal(root_labels, [0, 4, 2, 4])
    # the task's cost is the cross-entropy summed over the labelled nodes only
    net = model("binary")
    logits = net(batch).asnumpy()
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -logp[rows, labels].sum()
    setup = Setup(cfg=OmegaConf.create({"trainer": {"batch_size": 4, "eval_batch_size": None}}),
                  ctx=cpu(), data=_data(trees), net=net, loss=SoftmaxCrossEntropyLoss(),
                  trainer=None, seed=0, report=None)
    task = TreeSentimentTask(setup)
    cost = task._loss(net(batch), rows, labels).sum().asscalar()
    assert cost == pytest.approx(expected, rel=1e-12)
    # evaluation counts the labelled nodes only, and the roots
    task.splits["val"] = trees
    ev = task.evaluate("val")
    assert ev["val/loss"] == pytest.approx(expected / 17, rel=1e-12)
    pred = logits.argmax(axis=1)
    assert ev["val/all_accuracy"] == pytest.approx(np.mean(pred[rows] == labels))
    assert ev["val/root_accuracy"] == pytest.approx(np.mean(pred[batch.roots] == root_labels))


def _data(trees, vocab=10, classes=5):
    from dlrun.data.text import Vocab
    from dlrun.data.trees import TreeDataset

    return TreeDataset(trees, trees, trees, Vocab([str(i) for i in range(vocab)]), classes)


class Recorder:
    """A reporter that keeps what the task sends."""

    def __init__(self):
        self.losses, self.epochs = [], []

    def start(self, epochs, steps_per_epoch, columns=()): pass

    def epoch_start(self, epoch): pass

    def step(self, epoch, step, samples, loss=None): pass

    def validation(self, global_step, metrics): pass

    def train_losses(self, values):
        self.losses.extend(v for _, v in values)

    def epoch_end(self, epoch, global_step, metrics):
        self.epochs.append(dict(metrics))


@pytest.mark.parametrize("batched", [True, False])
def test_training_on_listops_lowers_the_loss(batched):
    data = listops(n_train=150, n_test=40, max_depth=3, seed=1)
    mx.random.seed(0)
    net = TreeLSTM(len(data.vocab), data.num_classes, embed_size=16, hidden_size=24,
                   dropout=0.0, batched=batched)
    net.initialize(mx.init.Xavier(magnitude=2.24))
    report = Recorder()
    cfg = OmegaConf.create({"trainer": {"epochs": 3, "batch_size": 25, "log_every": 1,
                                        "val_every": 1, "eval_batch_size": None}})
    trainer = Trainer(net.collect_params(), AdaGrad(learning_rate=0.1))
    setup = Setup(cfg=cfg, ctx=cpu(), data=data, net=net, loss=SoftmaxCrossEntropyLoss(),
                  trainer=trainer, seed=0, report=report)
    metrics = Loop(setup, TreeSentimentTask(setup)).run()
    losses = report.losses
    assert len(losses) == 3 * 6 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-6:]) < 0.75 * np.mean(losses[:3]), losses
    assert report.epochs[-1]["train/loss"] < report.epochs[0]["train/loss"]
    for key in ("val/root_accuracy", "val/all_accuracy", "test/root_accuracy",
                "test/all_accuracy", "train/trees_per_sec"):
        assert key in metrics, key
    assert 0 <= metrics["test/root_accuracy"] <= 1 and metrics["train/trees_per_sec"] > 0
    # digit leaves are labelled with their own value: every-node accuracy beats the roots'
    assert metrics["val/all_accuracy"] > metrics["val/root_accuracy"]
    assert all("val/root_accuracy" in m for m in report.epochs)  # the console's dev column


def test_pretrained_word_vectors_are_copied_and_can_be_frozen():
    trees = binary_trees()
    data = _data(trees)
    data.embeddings = np.arange(30, dtype=np.float32).reshape(10, 3)
    mx.random.seed(0)
    net = TreeLSTM(10, 5, embed_size=3, hidden_size=4, cell="binary", freeze_embeddings=True,
                   embedding_lr_mult=2.0, embedding_wd_mult=0.0)
    net.initialize()
    weight = net.embedding.weight
    assert weight.grad_req == "null" and weight.lr_mult == 2.0 and weight.wd_mult == 0.0
    cfg = OmegaConf.create({"trainer": {"batch_size": 4, "eval_batch_size": None}})
    TreeSentimentTask(Setup(cfg=cfg, ctx=cpu(), data=data, net=net, loss=None, trainer=None,
                            seed=0, report=None))
    np.testing.assert_array_equal(weight.data().asnumpy(), data.embeddings)
    data.embeddings = np.zeros((10, 7), dtype=np.float32)
    with pytest.raises(ValueError, match="model.embed_size=7"):
        TreeSentimentTask(Setup(cfg=cfg, ctx=cpu(), data=data, net=net, loss=None, trainer=None,
                                seed=0, report=None))


def test_a_binary_cell_refuses_wider_nodes_and_a_non_tree_dataset_is_named():
    net = model("binary")
    with pytest.raises(ValueError, match="model.cell=childsum or model.arity=4"):
        net(TreeBatch.of(wide_trees()))
    with pytest.raises(ValueError, match="dataset=listops"):
        TreeLSTM(classes=10)


@pytest.mark.slow
def test_dlrun_treelstm_on_listops_end_to_end(run_dlrun):
    res = run_dlrun("model=treelstm", "trainer.epochs=1", "trainer.batch_size=10",
                    "dataset.n_train=60", "dataset.n_test=20", "dataset.max_depth=2",
                    "model.embed_size=8", "model.hidden_size=8", "logger=none")
    assert res.returncode == 0, res
    assert "listops" in res.stdout and "val root accuracy" in res.stdout, res
    assert "test root accuracy" in res.stdout, res
    (run_dir,) = res.run_dirs()
    results = json.loads((run_dir / "results.json").read_text())
    assert 0 <= results["val/root_accuracy"] <= 1 and 0 <= results["test/root_accuracy"] <= 1
    assert results["steps"] == 6 and results["train/trees_per_sec"] > 0
    from dlrun.runner.predict import predict

    # dlrun test RUN of this imperative model: rebuilt from config.yaml, weights from model.npz
    tested = predict([str(run_dir)])
    assert tested == {k: results[k] for k in ("test/root_accuracy", "test/all_accuracy", "test/loss")}
    bad = run_dlrun("model=treelstm", "model.cell=binary", "trainer.epochs=1", "logger=none",
                    "dataset.n_train=20", "dataset.n_test=5")
    assert bad.returncode != 0 and "Traceback" not in bad.output, bad
    assert "model.cell=childsum" in bad.output, bad
