"""apps.tagger data: CoNLL / CoNLL-U readers, bad input, splits, generated and shared corpora."""

from __future__ import annotations

import pytest

from apps.common.errors import DataError
from apps.tagger import conll, teddy
from apps.tagger.data import Vocab, clip_chars, encode_batch, load_splits, normalize_word
from apps.tagger.schemes import spans

CONLLU = """# newdoc id = d1
# sent_id = 1
# text = I'm here.
1-2\tI'm\t_\t_\t_\t_\t_\t_\t_\t_
1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_
2\t'm\tbe\tAUX\tVBP\t_\t0\troot\t_\t_
2.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t0:root\t_
3\there\there\tADV\tRB\t_\t2\tadvmod\t_\t_
4\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

# newdoc id = d2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_

"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path):
    path = _write(tmp_path, "x.conllu", CONLLU)
    sents = conll.read_conllu(path, "upos")
    assert [s.tokens for s in sents] == [("I", "'m", "here", "."), ("Hi",)]
    assert [s.tags for s in sents] == [("PRON", "AUX", "ADV", "PUNCT"), ("INTJ",)]
    assert [s.doc for s in sents] == [0, 1]
    assert conll.read_conllu(path, "xpos")[0].tags == ("PRP", "VBP", "RB", ".")
    assert conll.looks_like_conllu(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("5\tx\tx\tNOUN\tNN\t_\t2\tdep\t_", "10 tab-separated columns"),
        ("5\tx\tx\tNOUNS\tNN\t_\t2\tdep\t_\t_", "not a UPOS tag"),
        ("5\tx\tx\t_\tNN\t_\t2\tdep\t_\t_", "no UPOS tag"),
        ("five\tx\tx\tNOUN\tNN\t_\t2\tdep\t_\t_", "bad CoNLL-U word ID"),
    ],
)
def test_malformed_conllu(tmp_path, line, message):
    path = _write(tmp_path, "bad.conllu", CONLLU.replace("3\there\there\tADV\tRB\t_\t2\tadvmod\t_\t_",
                                                         line))  # fmt: skip
    with pytest.raises(DataError, match=f"bad.conllu:8: .*{message}"):
        conll.read_conllu(path, "upos")


def test_conll_variants(tmp_path):
    space = _write(tmp_path, "a.txt", "-DOCSTART- O\n\nJohn I-PER\nlives O\n\n-DOCSTART- O\n\n"
                                      "Paris I-LOC\n# O\n")  # fmt: skip
    sents = conll.read_conll(space)
    assert [s.tokens for s in sents] == [("John", "lives"), ("Paris", "#")]
    assert [s.doc for s in sents] == [0, 1] and sents[1].line == 8
    four = _write(tmp_path, "b.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    assert conll.read_conll(four)[0].tags == ("B-ORG", "O")
    indexed = _write(tmp_path, "c.iob2", "# sent_id = 1\n# text = go to tampa\n1\tgo\tO\t-\t-\n"
                                         "2\ttampa\tB-LOC\t-\tann\n")  # fmt: skip
    assert conll.read_conll(indexed)[0].tokens == ("go", "tampa")
    assert conll.read_conll(indexed)[0].tags == ("O", "B-LOC")


def test_malformed_conll(tmp_path):
    one_col = _write(tmp_path, "a.conll", "John\tB-PER\nlives\n")
    with pytest.raises(DataError, match=r"a.conll:2: expected 'token<TAB>tag'"):
        conll.read_conll(one_col)
    ragged = _write(tmp_path, "b.conll", "John B-PER\nlives VBZ O\n")
    with pytest.raises(DataError, match="b.conll:2: 3 columns"):
        conll.read_conll(ragged)
    bad_utf8 = tmp_path / "c.conll"
    bad_utf8.write_bytes(b"John\tB-PER\n\xff\tO\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        conll.read_conll(bad_utf8)


def test_schemes_read_from_files(tmp_path):
    bioes = _write(tmp_path, "x.bioes", "New\tB-LOC\nYork\tE-LOC\nis\tO\nbig\tO\nBob\tS-PER\n")
    data = load_splits(str(bioes), seed=0)
    assert data.scheme == "BIOES"
    every = data.split("all")
    assert every[0].tags == ("B-LOC", "I-LOC", "O", "O", "B-PER")
    outside = _write(tmp_path, "y.conll", "John\tPERSON\n\nlives\tO\n")
    with pytest.raises(DataError, match=r"y.conll:1: tag 'PERSON' is outside"):
        load_splits(str(outside))
    mixed = _write(tmp_path, "z.conll", "John\tS-PER\n\nin\tO\nParis\tI-LOC\n")
    with pytest.raises(DataError, match="mixed tag schemes"):
        load_splits(str(mixed))
    with pytest.raises(DataError, match="--tags upos needs a CoNLL-U file"):
        load_splits(str(bioes), tag_set="upos")


def test_generated_teddy_is_deterministic_and_marked_generated():
    a = teddy.generate(200, seed=5, part="train")
    assert a == teddy.generate(200, seed=5, part="train")
    assert a != teddy.generate(200, seed=6, part="train")
    kinds = {s.tags[s.tokens.index("Teddy")] for s in a + teddy.generate(400, 5, "test")
             if "Teddy" in s.tokens[:6]}  # fmt: skip
    assert kinds == {"O", "B-PER"}  # the lecture's ambiguity occurs both ways
    for s in a:
        assert len(s.tokens) == len(s.tags) and all(t.strip() for t in s.tokens)
    data = load_splits("builtin:teddy", seed=5, generated=80)
    assert (len(data.train), len(data.val), len(data.test)) == (80, 10, 10)
    assert "GENERATED" in data.description
    train_words = {t for s in teddy.generate(2000, 5, "train") for t in s.tokens}
    test_names = {s.tokens[e.start] for s in teddy.generate(300, 5, "test") for e in
                  spans(s.tags) if e.type == "PER"}  # fmt: skip
    assert test_names - train_words  # unseen names reach the test split


def test_vocab_encoding(tmp_path):
    sents = [conll.Sentence(("Teddy", "bears", "2024"), ("O", "O", "O"))]
    vocab = Vocab.build(sents, max_words=10, min_count=1, max_chars=4, task="ner")
    assert vocab.words[:2] == ["", "[UNK]"] and normalize_word("2024") == "0000"
    assert vocab.encode_words(["teddy", "Zebra"]).tolist() == [vocab.words.index("teddy"), 1]
    assert clip_chars("abcdefgh", 4) == "abgh" and clip_chars("abc", 4) == "abc"
    batch = encode_batch(vocab, [["Teddy"], ["bears", "bears"]])
    assert batch["word_ids"].shape == (2, 2) and batch["word_ids"][0, 1] == 0
    assert batch["char_ids"].shape == (2, 2, 4) and (batch["char_ids"][0, 1] == 0).all()
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab


def test_tfds_offline_is_a_clear_error():
    from apps.common.sources import network_available

    if network_available():
        pytest.skip("network present: tfds would download CoNLL-2003")
    with pytest.raises(DataError, match="tfds:conll2003 is not downloaded"):
        load_splits("tfds:conll2003")


# ---------------------------------------------------------------- shared corpora
def test_ud_english_ewt_counts(shared_data):
    data = load_splits(str(shared_data / "ner" / "ud_english_ewt"), seed=1)
    assert data.task == "pos" and data.tag_set == "upos"
    # the official dev split is the test split here; counts from PROVENANCE.md
    assert len(data.test) == 2001 and sum(len(s.tokens) for s in data.test) == 25147
    assert len(data.train) + len(data.val) == 12544
    assert sum(len(s.tokens) for s in data.train + data.val) == 204577
    assert {t for s in data.test for t in s.tags} == set(conll.UPOS_TAGS)
    assert not {s.doc for s in data.train} & {s.doc for s in data.val}  # split by document


def test_wnut17_and_wikigold_counts(shared_data):
    wnut = load_splits(str(shared_data / "ner" / "wnut17"), seed=1)
    assert wnut.scheme == "IOB2" and len(wnut.test) == 1009
    assert sum(len(spans(s.tags)) for s in wnut.test) == 836
    assert len(wnut.train) + len(wnut.val) == 3394
    wiki = load_splits(str(shared_data / "ner" / "wikigold"), seed=1)
    assert wiki.scheme == "IOB1"
    every = wiki.train + wiki.val + wiki.test
    assert len(every) == 1696 and sum(len(spans(s.tags)) for s in every) == 3558
    assert all(t.split("-")[0] in ("O", "B", "I") for s in every for t in s.tags)
    docs = [{s.doc for s in part} for part in (wiki.train, wiki.val, wiki.test)]
    assert not (docs[0] & docs[1]) and not (docs[0] & docs[2]) and not (docs[1] & docs[2])
    assert 0.05 < len(wiki.test) / len(every) < 0.15
    again = load_splits(str(shared_data / "ner" / "wikigold"), seed=1)
    assert [s.tokens for s in again.test] == [s.tokens for s in wiki.test]
