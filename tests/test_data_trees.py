"""Tree data: the Tree helpers, the SST reader (bracketed trees), GloVe vectors and ListOps."""
import hashlib
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dlrun.data import (ChecksumError, CorruptFileError, DatasetNotFoundError, RemoteFile)
from dlrun.data import trees as treemod
from dlrun.data.glove import load_embeddings, read_glove
from dlrun.data.listops import format_listops, listops, listops_vocab, parse_listops
from dlrun.data.text import UNK, Vocab
from dlrun.data.trees import SstFiles, Tree, TreeDataset, load_sst, parse_tree, read_trees, sst

OFFLINE = "http://127.0.0.1:9/"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_DATA = Path(os.environ.get("DLRUN_DATA") or SHARED_DATA)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# ---- Tree and the bracketed format ----

SENTENCE = "(3 (2 It) (4 (2 's) (3 (2 a) (4 fun))))"


def test_parse_tree_labels_words_and_helpers():
    tree, words = parse_tree(SENTENCE)
    assert words == ["It", "'s", "a", "fun"]
    assert [n.label for n in tree.nodes()] == [2, 2, 2, 4, 3, 4, 3]  # post-order
    assert [n.label for n in tree.leaves()] == [2, 2, 2, 4]
    assert all(n.word == -1 for n in tree.nodes())  # ids are assigned by the dataset
    assert tree.num_nodes == 7 and tree.height() == 3 and tree.children[0].height() == 0
    assert tree.nodes()[-1] is tree and tree.leaves()[0].is_leaf and not tree.is_leaf
    assert tree.to_string() == "(3 (2 -1) (4 (2 -1) (3 (2 -1) (4 -1))))"


def test_tree_helpers_are_iterative():
    deep = Tree(0, [], word=0)
    for i in range(5000):  # deeper than the recursion limit
        deep = Tree(1, [deep, Tree(2, [], word=1)])
    assert deep.height() == 5000 and deep.num_nodes == 10001 and len(deep.leaves()) == 5001
    assert deep.nodes()[0].word == 0


@pytest.mark.parametrize("line, message", [
    ("(3 (2 a) (1 b)", "column 1: unbalanced brackets: 1 '(' never closed"),
    ("(3 (2 a)) (1 b)", "column 11: unbalanced brackets: '(' after the tree's closing ')'"),
    ("(3 (2 a) (1 b)))", "column 16: unbalanced brackets: ')' closes nothing"),
    ("(x (2 a) (1 b))", "the label 'x' is not an integer"),
    ("(7 (2 a) (1 b))", "the label 7 is outside 0..4"),
    ("(2 a b)", "a leaf with two words 'a' and 'b'"),
    ("(2 a (1 b))", "a node mixes a word and subtrees"),
    ("(2 (1 b) a)", "a node mixes subtrees and the word 'a'"),
    ("(2)", "a node without a word or children"),
    ("((2 a))", "a node opens before its label"),
    ("hello", "text 'hello' outside brackets"),
])
def test_parse_tree_errors(line, message):
    with pytest.raises(CorruptFileError) as e:
        parse_tree(line, where="here")
    assert str(e.value).startswith("here, column ") and message in str(e.value)


def test_words_keep_non_ascii_spaces():
    tree, words = parse_tree("(2 (2 8\u00a01\\/2) (2 caf\u00e9))")
    assert words == ["8\u00a01\\/2", "caf\u00e9"]


def test_read_trees_skips_blank_lines_and_rejects_empty_files(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\n(1 (1 a) (2 b))\n\n")
    [(tree, words)] = read_trees(path)
    assert words == ["a", "b"] and tree.label == 1
    path.write_text("\n")
    with pytest.raises(CorruptFileError, match="no trees") as e:
        read_trees(path)
    assert str(path) in str(e.value)


# ---- SST ----

SST_TEXT = {
    "train.txt": "(3 (2 It) (4 (2 's) (3 (2 a) (4 fun))))\n"
                 "(1 (2 a) (0 (0 dull) (2 film)))\n"
                 "(2 (2 It) (2 exists))\n"
                 "(4 (3 fun) (4 (4 fun) (2 film)))\n",
    "dev.txt": "(0 (2 a) (0 (0 dull) (2 plot)))\n(2 (2 Plot) (2 exists))\n",
    "test.txt": "(3 (3 fun) (2 film))\n",
}


def write_sst(folder: Path, texts=SST_TEXT, archive: RemoteFile | None = None) -> SstFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in treemod.SST_FILENAMES:
        data = texts[name].encode()
        (folder / name).write_bytes(data)
        files.append(RemoteFile(name, sha256(data), ()))
    return SstFiles(*files, archive or RemoteFile("trees.zip", "0" * 64, (OFFLINE,)))


def test_sst_fine_grained(tmp_path):
    data = load_sst(tmp_path, write_sst(tmp_path))
    assert isinstance(data, TreeDataset) and data.task == "tree_sentiment"
    assert (len(data.train), len(data.dev), len(data.test)) == (4, 2, 1)
    assert data.num_classes == 5 and data.embeddings is None
    v = data.vocab
    # train words by count: fun 3, It 2, a 2, film 2, then 's, dull, exists (code points)
    assert v.itos == [UNK, "fun", "It", "a", "film", "'s", "dull", "exists"]
    assert data.model_args == {"vocab_size": 8, "classes": 5}
    first = data.train[0]
    assert [v.itos[leaf.word] for leaf in first.leaves()] == ["It", "'s", "a", "fun"]
    assert first.to_string(v) == SST_TEXT["train.txt"].split("\n")[0]
    assert [n.label for n in first.nodes()] == [2, 2, 2, 4, 3, 4, 3]
    assert all(n.word == -1 for n in first.nodes() if n.children)
    # dev words outside the training vocabulary become <unk>
    assert [v.itos[leaf.word] for leaf in data.dev[0].leaves()] == ["a", "dull", UNK]
    assert [v.itos[leaf.word] for leaf in data.dev[1].leaves()] == [UNK, "exists"]


def test_sst_binary_maps_labels_and_drops_neutral_roots(tmp_path):
    data = load_sst(tmp_path, write_sst(tmp_path), fine_grained=False)
    assert data.num_classes == 2 and data.model_args["classes"] == 2
    assert (len(data.train), len(data.dev), len(data.test)) == (3, 1, 1)  # neutral roots gone
    assert [t.label for t in data.train] == [1, 0, 1]
    assert [n.label for n in data.train[0].nodes()] == [-1, -1, -1, 1, 1, 1, 1]
    assert [n.label for n in data.train[1].nodes()] == [-1, 0, -1, 0, 0]
    # the dropped sentence's word 'exists' is not in the vocabulary
    assert "exists" not in data.vocab and "dull" in data.vocab


def test_sst_unbalanced_brackets_name_file_and_line(tmp_path):
    texts = dict(SST_TEXT, **{"dev.txt": "(0 (2 a) (0 dull))\n\n(2 (2 Plot) (2 exists)\n"})
    with pytest.raises(CorruptFileError) as e:
        load_sst(tmp_path, write_sst(tmp_path, texts))
    assert f"{tmp_path / 'dev.txt'}, line 3, column 1: unbalanced brackets" in str(e.value)


def test_sst_rejects_non_utf8_and_damaged_files(tmp_path):
    files = write_sst(tmp_path)
    bad = b"(3 (3 fun) (2 film))\n(2 (2 caf\xe9))\n"
    (tmp_path / "test.txt").write_bytes(bad)
    files = files._replace(test=RemoteFile("test.txt", sha256(bad), ()))
    with pytest.raises(CorruptFileError, match=r"test.txt: not UTF-8 text.*\(line 2\)"):
        load_sst(tmp_path, files)
    (tmp_path / "test.txt").write_bytes(bad[:-3])  # no longer the file the sums name
    with pytest.raises(ChecksumError, match="test.txt has SHA-256"):
        load_sst(tmp_path, files)


def test_sst_unpacks_missing_files_from_the_archive(tmp_path):
    source = tmp_path / "remote" / "trainDevTestTrees_PTB.zip"
    source.parent.mkdir()
    with zipfile.ZipFile(source, "w") as zf:
        for name, content in SST_TEXT.items():
            zf.writestr(f"trees/{name}", content)
        zf.writestr("../evil.txt", "never extracted")
    archive = RemoteFile(source.name, sha256(source.read_bytes()), (source.as_uri(),))
    files = write_sst(tmp_path / "made", archive=archive)  # the checksums of the real content
    folder = tmp_path / "sst"
    data = load_sst(folder, files)
    assert len(data.train) == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        "dev.txt", "test.txt", "train.txt", "trainDevTestTrees_PTB.zip"]
    assert not (tmp_path / "evil.txt").exists()


def test_sst_offline_names_files_and_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(treemod, "SST_ZIP", RemoteFile(treemod.SST_ZIP.filename,
                                                       treemod.SST_ZIP.sha256, (OFFLINE,)))
    with pytest.raises(DatasetNotFoundError) as e:
        sst(root=tmp_path)
    message = str(e.value)
    assert str(tmp_path / "sst") in message and "trainDevTestTrees_PTB.zip" in message
    for name, digest in treemod.SST_SHA256.items():
        assert name in message and digest in message


def test_sst_checksums_match_shared_sums():
    sums = SHARED_DATA / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"{sums} not present")
    listed = dict(line.split()[::-1] for line in sums.read_text().splitlines())
    for name, digest in treemod.SST_SHA256.items():
        assert listed[f"sst/{name}"] == digest


@pytest.mark.skipif(not (REAL_DATA / "sst").is_dir(), reason="real SST not present")
def test_real_sst_counts():
    fine = sst(root=REAL_DATA)
    assert (len(fine.train), len(fine.dev), len(fine.test)) == (8544, 1101, 2210)
    assert [n for _, n in sorted(Counter(t.label for t in fine.train).items())] == \
        [1092, 2218, 1624, 2322, 1288]
    binary = sst(root=REAL_DATA, fine_grained=False)
    assert (len(binary.train), len(binary.dev), len(binary.test)) == (6920, 872, 1821)


# ---- GloVe ----

def test_glove_vectors_for_the_vocabulary(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("fun 0.5 1.0 -1\nit 2 3 4\nplot 7 8 9\ngood 1 1 1\n"
                     "a b 5 5 5\n")  # a word with a space, as in glove.840B
    data = load_sst(tmp_path, write_sst(tmp_path), embeddings=glove, seed=3)
    v, e = data.vocab, data.embeddings
    # dev/test words with a vector (plot, and Plot through 'plot') join the vocabulary
    assert v.itos == [UNK, "fun", "It", "a", "film", "'s", "dull", "exists", "plot", "Plot"]
    assert e.shape == (10, 3) and e.dtype == np.float32
    np.testing.assert_array_equal(e[v.stoi["fun"]], [0.5, 1.0, -1])
    np.testing.assert_array_equal(e[v.stoi["It"]], [2, 3, 4])  # through its lowercase form
    np.testing.assert_array_equal(e[v.stoi["plot"]], [7, 8, 9])
    missing = e[[v.stoi[w] for w in (UNK, "a", "film", "'s", "dull", "exists")]]
    assert np.all(np.abs(missing) <= 0.05) and np.unique(missing).size == missing.size
    assert [v.itos[leaf.word] for leaf in data.dev[1].leaves()] == ["Plot", "exists"]
    again = load_sst(tmp_path, write_sst(tmp_path), embeddings=glove, seed=3)
    np.testing.assert_array_equal(again.embeddings, e)


def test_read_glove_header_and_spaces(tmp_path):
    path = tmp_path / "w.vec"
    path.write_text("3 2\nx 1 2\nnew york 3 4\ny 5 6\n")
    vectors, dim = read_glove(path)
    assert dim == 2 and sorted(vectors) == ["new york", "x", "y"]
    np.testing.assert_array_equal(vectors["new york"], [3, 4])
    matrix = load_embeddings(path, Vocab(["y", "z"]))
    np.testing.assert_array_equal(matrix[0], [5, 6])


@pytest.mark.parametrize("content, message", [
    ("a 1 2 3\nb 1 2\n", "line 2: fewer than 3 values"),
    ("a 1 2 3\nb 1 x 3\n", "line 2: a value that is not a number"),
    ("", "no word vectors"),
])
def test_read_glove_errors(tmp_path, content, message):
    path = tmp_path / "g.txt"
    path.write_text(content)
    with pytest.raises(CorruptFileError, match=message) as e:
        read_glove(path, {"a", "b"})
    assert str(path) in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="no such word-vector file"):
        read_glove(tmp_path / "none.txt")


# ---- ListOps ----

def evaluate(tree: Tree, vocab: Vocab) -> int:
    """The value of a ListOps tree, computed here independently of dlrun."""
    if not tree.children:
        return int(vocab.itos[tree.word])
    op = vocab.itos[tree.children[0].word]
    args = [evaluate(c, vocab) for c in tree.children[1:]]
    if op == "MAX":
        return max(args)
    if op == "MIN":
        return min(args)
    if op == "SM":
        return sum(args) % 10
    assert op == "MED"
    return int(np.sort(args)[(len(args) - 1) // 2])


@pytest.mark.parametrize("expr, value", [
    ("[MAX 2 [MIN 3 4] 9]", 9),
    ("[SM 7 [MED 1 9 4 6] 8]", 9),      # lower median of 1 4 6 9 is 4; 7 + 4 + 8 = 19
    ("[MED 3 1 2]", 2),
    ("[MIN [SM 5 6] [MAX 0 0]]", 0),
    ("[SM [SM 9 9] [MAX 3 [MIN 8 5 7]]]", 3),  # 18 % 10 = 8; max(3, 5) = 5; 13 % 10
])
def test_listops_values_of_handwritten_expressions(expr, value):
    tree = parse_listops(expr)
    assert tree.label == value
    assert format_listops(tree) == expr


def test_listops_tree_layout():
    tree = parse_listops("[MAX 2 [MIN 3 4] 9]")
    vocab = listops_vocab()
    op, two, inner, nine = tree.children
    assert tree.word == -1 and op.word == vocab.stoi["MAX"] and op.label == -1
    assert (two.word, two.label, nine.word, nine.label) == (2, 2, 9, 9)
    assert [c.label for c in inner.children] == [-1, 3, 4] and inner.label == 3
    assert tree.height() == 2


def test_listops_generated_labels_are_values():
    data = listops(n_train=300, n_test=100, max_depth=4, max_args=4, seed=0)
    assert (len(data.train), len(data.dev), len(data.test)) == (300, 100, 100)
    assert data.num_classes == 10 and data.model_args == {"vocab_size": 15, "classes": 10}
    assert data.task == "tree_sentiment" and data.embeddings is None
    ops = {data.vocab.stoi[o] for o in ("MAX", "MIN", "MED", "SM")}
    heights = Counter()
    for tree in data.train + data.dev + data.test:
        heights[tree.height()] += 1
        for node in tree.nodes():
            if node.children:
                assert node.word == -1 and node.children[0].word in ops
                assert 3 <= len(node.children) <= 5  # the operator and 2..4 arguments
                assert node.label == evaluate(node, data.vocab)
            elif node.word in ops:
                assert node.label == -1
            else:
                assert node.label == node.word == int(data.vocab.itos[node.word])
    assert set(heights) == {1, 2, 3, 4}  # depths 1..max_depth all occur
    strings = [format_listops(t) for t in data.train + data.dev + data.test]
    assert len(set(strings)) == len(strings)  # no expression repeats across the splits
    assert len(set(t.label for t in data.train)) == 10


def test_listops_is_deterministic_per_seed():
    a, b = listops(50, 20, seed=7), listops(50, 20, seed=7)
    assert a.train == b.train and a.dev == b.dev and a.test == b.test
    c = listops(50, 20, seed=8)
    assert [format_listops(t) for t in c.train] != \
        [format_listops(t) for t in a.train]
    flat = listops(20, 5, max_depth=1, max_args=2, seed=0)
    assert all(t.height() == 1 and len(t.children) == 3 for t in flat.train)


def test_listops_argument_errors():
    with pytest.raises(ValueError, match="max_depth must be >= 1"):
        listops(max_depth=0)
    with pytest.raises(ValueError, match="cannot draw"):
        listops(n_train=500, n_test=10, max_depth=1, max_args=2)  # only 400 exist
    with pytest.raises(ValueError, match="unknown token"):
        parse_listops("[MAX 2 12]")
