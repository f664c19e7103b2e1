"""Text corpora: Vocab, batchify, the PTB reader, any-text corpora and the pydoc corpus."""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from dlrun.data import (ChecksumError, CorruptFileError, DataError, DatasetNotFoundError,
                        RemoteFile)
from dlrun.data import text as textmod
from dlrun.data.text import (EOS, UNK, PtbFiles, TextCorpus, Vocab, batchify, load_ptb, ptb,
                             pydoc_corpus, text)

OFFLINE = "http://127.0.0.1:9/"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_DATA = Path(os.environ.get("DLRUN_DATA") or SHARED_DATA)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# ---- Vocab ----

def test_vocab_build_orders_specials_then_counts_then_code_points():
    vocab = Vocab.build("b a c a b a <unk> d".split())
    # counts: a 3, b 2, then c, d (1 each, code-point order); <unk> first and only once
    assert vocab.itos == ["<unk>", "a", "b", "c", "d"]
    assert vocab.stoi == {"<unk>": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    assert len(vocab) == 5 and "c" in vocab and "z" not in vocab and vocab.unk_id == 0


def test_vocab_encode_decode_and_unknown_tokens():
    vocab = Vocab.build("x y y".split())
    ids = vocab.encode(["y", "x", "never", "y"])
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [1, 2, 0, 1])
    assert vocab.decode(ids) == ["y", "x", UNK, "y"]
    assert vocab.decode(np.array([[2, 1]])) == ["x", "y"]
    assert vocab.encode([]).shape == (0,)


def test_vocab_without_unk_refuses_unknown_tokens_and_bad_ids():
    vocab = Vocab(["a", "b"])
    assert vocab.unk_id is None
    with pytest.raises(KeyError, match="'zz'"):
        vocab.encode(["a", "zz"])
    with pytest.raises(IndexError, match="id 2 is outside 0..1"):
        vocab.decode([0, 2])
    with pytest.raises(IndexError, match="id -1"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="duplicate tokens"):
        Vocab(["a", "b", "a"])


def test_vocab_build_min_freq_and_max_size():
    tokens = "a a a b b c".split()
    assert Vocab.build(tokens, min_freq=2).itos == [UNK, "a", "b"]
    assert Vocab.build(tokens, max_size=2).itos == [UNK, "a"]
    assert Vocab.build(tokens, specials=(UNK, EOS)).itos == [UNK, EOS, "a", "b", "c"]


# ---- batchify ----

def test_batchify_is_time_major_columns_and_drops_remainder():
    ids = np.arange(11, dtype=np.int32)
    out = batchify(ids, 3)
    assert out.shape == (3, 3) and out.dtype == np.int32 and out.flags.c_contiguous
    # column b is the contiguous slice ids[3b:3b+3]; tokens 9, 10 are dropped
    np.testing.assert_array_equal(out, [[0, 3, 6], [1, 4, 7], [2, 5, 8]])
    np.testing.assert_array_equal(batchify(ids, 1)[:, 0], ids)


def test_batchify_errors():
    with pytest.raises(ValueError, match="fewer than one per column"):
        batchify(np.arange(3), 4)
    with pytest.raises(ValueError, match="positive integer"):
        batchify(np.arange(3), 0)
    with pytest.raises(ValueError, match="1-D"):
        batchify(np.zeros((2, 2)), 1)


# ---- PTB ----

PTB_TEXT = {  # Mikolov's layout: a leading space, words, a trailing space, a newline
    "ptb.train.txt": " the cat sat \n the dog sat on the <unk> \n a cat \n",
    "ptb.valid.txt": " the bird sat \n",
    "ptb.test.txt": " a dog \n on \n",
}


def write_ptb(folder: Path, texts=PTB_TEXT) -> PtbFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in textmod.PTB_FILENAMES:
        data = texts[name].encode()
        (folder / name).write_bytes(data)
        files.append(RemoteFile(name, sha256(data), (OFFLINE + name,)))
    return PtbFiles(*files)


def test_ptb_round_trip(tmp_path):
    corpus = load_ptb(tmp_path, write_ptb(tmp_path))
    vocab = corpus.vocab
    # from train only: the 3, cat 2, sat 2, <eos> 3 ... ; counts then code points
    assert vocab.itos == [UNK, "<eos>", "the", "cat", "sat", "a", "dog", "on"]
    assert isinstance(corpus, TextCorpus) and corpus.train.dtype == np.int32
    assert vocab.decode(corpus.train) == (
        "the cat sat <eos> the dog sat on the <unk> <eos> a cat <eos>".split())
    assert vocab.decode(corpus.valid) == ["the", UNK, "sat", EOS]  # bird is not in train
    assert vocab.decode(corpus.test) == ["a", "dog", EOS, "on", EOS]
    assert (corpus.train == vocab.stoi[EOS]).sum() == 3  # one <eos> per line
    assert corpus.task == "language_model" and corpus.model_args == {"vocab_size": 8}
    batches = batchify(corpus.train, 2)  # 14 tokens -> 7 steps of 2 columns
    assert batches.shape == (7, 2)
    assert vocab.decode(batches[:, 0]) == "the cat sat <eos> the dog sat".split()
    assert vocab.decode(batches[:, 1]) == "on the <unk> <eos> a cat <eos>".split()


def test_ptb_last_line_without_newline_and_blank_line(tmp_path):
    texts = dict(PTB_TEXT, **{"ptb.test.txt": " a\n\n dog"})
    corpus = load_ptb(tmp_path, write_ptb(tmp_path, texts))
    assert corpus.vocab.decode(corpus.test) == ["a", EOS, EOS, "dog", EOS]


def test_ptb_rejects_damaged_file_by_name(tmp_path):
    files = write_ptb(tmp_path)
    (tmp_path / "ptb.valid.txt").write_bytes(b" the bird \n")  # not the file the sums name
    with pytest.raises(ChecksumError) as e:
        load_ptb(tmp_path, files)
    assert str(tmp_path / "ptb.valid.txt") in str(e.value)


def test_ptb_rejects_non_utf8(tmp_path):
    folder = tmp_path
    files = write_ptb(folder)
    bad = b" ok \n caf\xe9 \n"
    (folder / "ptb.test.txt").write_bytes(bad)
    files = files._replace(test=RemoteFile("ptb.test.txt", sha256(bad), ()))
    match = r"not UTF-8 text: byte 0xe9 at offset 9 \(line 2\)"
    with pytest.raises(CorruptFileError, match=match) as e:
        load_ptb(folder, files)
    assert str(folder / "ptb.test.txt") in str(e.value)


def test_ptb_offline_names_all_three_files(tmp_path, monkeypatch):
    monkeypatch.setattr(textmod, "PTB_MIRRORS", [OFFLINE])
    with pytest.raises(DatasetNotFoundError) as e:
        ptb(root=tmp_path)
    message = str(e.value)
    assert str(tmp_path / "ptb") in message
    for name, digest in textmod.PTB_SHA256.items():
        assert name in message and digest in message and OFFLINE + name in message


def test_ptb_checksums_match_shared_sums():
    sums = SHARED_DATA / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"{sums} not present")
    listed = dict(line.split()[::-1] for line in sums.read_text().splitlines())
    for name, digest in textmod.PTB_SHA256.items():
        assert listed[f"ptb/{name}"] == digest


@pytest.mark.skipif(not (REAL_DATA / "ptb").is_dir(), reason="real PTB not present")
def test_real_ptb_counts():
    corpus = ptb(root=REAL_DATA)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929589, 73760, 82430)
    assert len(corpus.vocab) == 10000 and corpus.model_args == {"vocab_size": 10000}
    eos = corpus.vocab.stoi[EOS]
    assert [(s == eos).sum() for s in (corpus.train, corpus.valid, corpus.test)] == \
        [42068, 3370, 3761]
    assert batchify(corpus.train, 20).shape == (46479, 20)
    # valid and test have no word outside the train vocabulary: '<unk>' only where written
    assert corpus.vocab.decode(corpus.train[:5]) == ["aer", "banknote", "berlitz", "calloway",
                                                     "centrust"]


# ---- any text ----

def test_text_word_level(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a b a\n\n  c a  \nb b\nz a\n", encoding="utf-8")
    corpus = text(path, level="word", valid_fraction=0.2, test_fraction=0.2)
    # tokens: a b a <eos> c a <eos> b b <eos> z a <eos> (13, blank line gives nothing)
    # test = last round(2.6) = 3, valid = round(2.6) = 3 before it, train = first 7
    v = corpus.vocab
    assert v.decode(corpus.train) == "a b a <eos> c a <eos>".split()
    assert v.decode(corpus.valid) == ["b", "b", EOS]  # b is in train's vocabulary
    assert v.decode(corpus.test) == [UNK, "a", EOS]   # z is not
    assert v.itos == [UNK, "a", "<eos>", "b", "c"]


def test_text_char_level_and_crlf(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes("ab\r\nb\u00e9\n".encode("utf-8"))
    corpus = text(path, level="char", valid_fraction=0, test_fraction=0)
    assert corpus.vocab.decode(corpus.train) == ["a", "b", "\n", "b", "\u00e9", "\n"]
    assert len(corpus.valid) == len(corpus.test) == 0
    assert corpus.vocab.itos == [UNK, "\n", "b", "a", "\u00e9"]


def test_text_folder_reads_sorted_files_and_skips_hidden(tmp_path):
    (tmp_path / "b.txt").write_text("two")  # no final newline: still its own line
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("three four\n")
    (tmp_path / ".hidden").write_text("secret\n")
    corpus = text(tmp_path, valid_fraction=0, test_fraction=0)
    assert corpus.vocab.decode(corpus.train) == "one <eos> two <eos> three four <eos>".split()


def test_text_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no such text file or folder"):
        text(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no text files"):
        text(tmp_path / "empty")
    small = tmp_path / "small.txt"
    small.write_text("a b\n")
    with pytest.raises(DataError, match="3 tokens are too few"):
        text(small)
    with pytest.raises(ValueError, match="below 1"):
        text(small, valid_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="level must be 'word' or 'char'"):
        text(small, level="byte")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"line one\nline \xff two\n")
    with pytest.raises(CorruptFileError, match=r"byte 0xff at offset 14 \(line 2\)") as e:
        text(bad, level="char")
    assert str(bad) in str(e.value)


# ---- the embedded corpus ----

@pytest.mark.parametrize("level", ["word", "char"])
def test_pydoc_corpus_is_non_empty_and_deterministic(level):
    a, b = pydoc_corpus(level), pydoc_corpus(level)
    assert len(a.train) > 100_000 if level == "char" else len(a.train) > 50_000
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
    assert a.vocab == b.vocab
    n = len(a.train) + len(a.valid) + len(a.test)
    assert abs(len(a.valid) - 0.1 * n) <= 1 and abs(len(a.test) - 0.1 * n) <= 1
    assert a.model_args == {"vocab_size": len(a.vocab)} and a.task == "language_model"
    if level == "word":
        assert {"def", "class", "(", EOS} <= set(a.vocab.itos) and len(a.vocab) < 6000
    else:
        assert "\n" in a.vocab and len(a.vocab) < 200
